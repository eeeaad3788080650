version 1.0

import "tasks/gromacs.wdl" as gmx

workflow gromacs {
    meta {
        description: "GROMACS molecular dynamics of a protein (or protein-nucleic acid complex) in water, from a structure as downloaded from the RCSB: preparation (PDBFixer: model, altloc, chains, waters, heterogens, nonstandard residues, missing atoms; force-field checks) -> pdb2gmx -> box -> solvate -> ions -> energy minimisation -> NVT -> NPT -> production MD (CPU or GPU, checkpointed, resumable) -> analysis tables and plots. With resume_checkpoint and resume_tpr, only the production run (continued) and its analysis run."
        author: "batchpipes"
        outputs: {
            summary: "JSON summary: EM Fmax and potential, mean NVT temperature, mean NPT density, production frames, RMSD, Rg, RMSF, secondary structure, ns/day; the preparation and system reports; warnings",
            prepared_structure: "The prepared structure (PDB) pdb2gmx read; not when resuming",
            preparation_report: "What preparation changed (JSON): model used, chains, altlocs, waters and heterogens removed, residues replaced, atoms added; not when resuming",
            preparation_report_text: "The preparation report as text; not when resuming",
            system_report: "Net charge, ions added and salt concentration of the system (JSON); not when resuming",
            tables: "TSV tables: energies, temperature, pressure, density, RMSD, radius of gyration, per-residue RMSF, secondary structure",
            plots: "PNG plots of the tables",
            system: "Solvated, neutralised system (.gro); not when resuming",
            topology: "topol.top and its .itp includes, tar.gz; not when resuming",
            atoms: "Number of atoms in the system; not when resuming",
            em_log: "Energy minimisation mdrun log; not when resuming",
            nvt_log: "NVT mdrun log; not when resuming",
            npt_log: "NPT mdrun log; not when resuming",
            nvt_mdp_used: "The merged mdp NVT ran with (defaults, your mdp file, the named inputs, the overrides); not when resuming",
            production_tpr: "Production run input (resume with it and checkpoint)",
            trajectory: "Production trajectory (.xtc)",
            production_edr: "Production energies (.edr)",
            production_log: "Production mdrun log",
            final_structure: "Final coordinates of production (.gro)",
            checkpoint: "Final production checkpoint (resume with it and production_tpr)",
            ns_per_day: "Production mdrun's performance, ns/day"
        }
    }

    parameter_meta {
        structure: "Structure as downloaded from the RCSB: PDB or mmCIF (detected by content), gzip-compressed accepted"
        name: {
            description: "Output prefix: the outputs are named <name>.*",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        force_field: {
            description: "GROMACS force field (folder <name>.ff of the GROMACS data directory): oplsaa, amber99sb-ildn, charmm27, gromos54a7, ...",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$",
            pattern_help: "this is not a force field name: give a <name>.ff folder of GROMACS 2022, e.g. oplsaa, amber99sb-ildn, charmm27"
        }
        water_model: {
            description: "Water model of the force field (spce, tip3p, tip4p, ...)",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$",
            pattern_help: "this is not a water model name: give one of the force field's water models, e.g. spce, tip3p, tip4p"
        }
        box_type: {
            description: "Box shape around the protein",
            choices: ["cubic", "dodecahedron", "octahedron", "triclinic"]
        }
        box_distance_nm: "Minimum protein-to-box-edge distance, nm"
        salt_molar: "NaCl added after neutralising, mol/L"
        model: "Model to use (1-based) of an entry with several MODELs (NMR); reported"
        chains: {
            description: "Chain IDs to keep (author chain names); empty: all chains",
            pattern: "^[A-Za-z0-9]{1,4}$",
            pattern_help: "this is not a chain ID: give the author chain IDs of the file (letters and digits, e.g. A)"
        }
        altloc: {
            description: "Alternate location to keep (e.g. A or B); empty: the first of each atom",
            pattern: "^[A-Za-z0-9]?$",
            pattern_help: "this is not an alternate location: give one letter (e.g. A), or leave it empty for the first"
        }
        keep_water: "Keep crystal waters (default: removed)"
        keep_heterogens: {
            description: "Residue names of heterogens to keep (ions such as ZN, CA that the force field knows); others are removed; ligands need parameters of their own (out of scope: see docs/gromacs.md)",
            pattern: "^[A-Za-z0-9]{1,5}$",
            pattern_help: "this is not a residue name: give RCSB residue names of heterogens (e.g. ZN, CA)"
        }
        replace_nonstandard: "Replace nonstandard residues by their standard parents (MSE -> MET, ...)"
        add_missing_atoms: "Add missing heavy atoms (hydrogens come from pdb2gmx)"
        add_missing_loops: "Also add missing internal residues (loops) from SEQRES; never the termini"
        seed: "Random seed of ion placement (genion), generated velocities and thermostat/barostat noise: identical inputs give identical systems"
        allow_unconverged_em: "Go on when energy minimisation stops before Fmax < emtol; the summary and the CLI's final message flag it. Default: fail with one line"
        temperature_k: "Temperature of NVT, NPT and production, K"
        pressure_bar: "Pressure of NPT and production, bar"
        timestep_ps: "MD time step, ps"
        em_steps: "Maximum steepest-descent steps (stops earlier at Fmax < emtol, 1000 kJ/mol/nm by default)"
        nvt_steps: "NVT equilibration steps"
        npt_steps: "NPT equilibration steps"
        production_steps: "Production steps (total, counted from the start of production)"
        energy_interval_steps: "Steps between energy frames (NVT, NPT, production)"
        frame_interval_steps: "Steps between production trajectory frames"
        em_mdp: "Your mdp file for energy minimisation, merged over the defaults"
        nvt_mdp: "Your mdp file for NVT, merged over the defaults"
        npt_mdp: "Your mdp file for NPT, merged over the defaults"
        production_mdp: "Your mdp file for production, merged over the defaults"
        em_mdp_overrides: "mdp lines 'key = value' for energy minimisation, applied last"
        nvt_mdp_overrides: "mdp lines 'key = value' for NVT, applied last"
        npt_mdp_overrides: "mdp lines 'key = value' for NPT, applied last"
        production_mdp_overrides: "mdp lines 'key = value' for production, applied last"
        gpu: "Run production on a GPU (CUDA image, gpuCount, GPU-resident mdrun)"
        gpu_count: "GPUs for production when gpu is true"
        simd: {
            description: "CPU production engine: auto (the best SIMD build of the image this CPU runs: AVX_512, AVX2_256, else Debian's SSE4.1 build) or one level",
            choices: ["auto", "AVX_512", "AVX2_256", "SSE4.1"]
        }
        checkpoint_minutes: "Minutes between production checkpoints"
        resume_checkpoint: "Checkpoint of an earlier production run to continue from (Spot interruption, or extending a run)"
        resume_tpr: "production_tpr of the run that wrote resume_checkpoint; with it, setup and equilibration are skipped"
        cpu: "Cores of the setup, equilibration and analysis tasks"
        production_cpu: "Cores of the production task"
        memory_gb: "Memory of each task, GiB"
        gromacs_image: "Image with CPU GROMACS (pinned by content hash)"
        gromacs_cuda_image: "Image with CUDA GROMACS for gpu = true (pinned by content hash; built on a GPU host and pushed to your registry)"
        gpu_queue_arn: "Cromwell on AWS: Batch queue of GPU instances for production when gpu is true (filled in by batchpipes aws cromwell-command)"
        cpu_queue_arn: "Cromwell on AWS: Batch queue for production when gpu is false (filled in by batchpipes aws cromwell-command)"
    }

    input {
        File structure
        String name = "protein"
        String force_field = "oplsaa"
        String water_model = "spce"
        String box_type = "dodecahedron"
        Float box_distance_nm = 1.0
        Float salt_molar = 0.15
        Int model = 1
        Array[String] chains = []
        String altloc = ""
        Boolean keep_water = false
        Array[String] keep_heterogens = []
        Boolean replace_nonstandard = true
        Boolean add_missing_atoms = true
        Boolean add_missing_loops = false
        Int seed = 20261124
        Boolean allow_unconverged_em = false
        Float temperature_k = 300.0
        Float pressure_bar = 1.0
        Float timestep_ps = 0.002
        Int em_steps = 5000
        Int nvt_steps = 50000
        Int npt_steps = 50000
        Int production_steps = 500000
        Int energy_interval_steps = 500
        Int frame_interval_steps = 5000
        File? em_mdp
        File? nvt_mdp
        File? npt_mdp
        File? production_mdp
        Array[String] em_mdp_overrides = []
        Array[String] nvt_mdp_overrides = []
        Array[String] npt_mdp_overrides = []
        Array[String] production_mdp_overrides = []
        Boolean gpu = false
        Int gpu_count = 1
        String simd = "auto"
        Int checkpoint_minutes = 15
        File? resume_checkpoint
        File? resume_tpr
        Int cpu = 2
        Int production_cpu = 8
        Int memory_gb = 4
        String gromacs_image = "batchpipes/gromacs:c6682bbcff86"
        String gromacs_cuda_image = "batchpipes/gromacs-cuda:8da52da357c3"
        String gpu_queue_arn = ""
        String cpu_queue_arn = ""
    }

    Boolean continue_only = defined(resume_checkpoint) && defined(resume_tpr)

    if (!continue_only) {
        call gmx.prepare_structure {
            input:
                structure = structure,
                name = name,
                force_field = force_field,
                model = model,
                chains = chains,
                altloc = altloc,
                keep_water = keep_water,
                keep_heterogens = keep_heterogens,
                replace_nonstandard = replace_nonstandard,
                add_missing_atoms = add_missing_atoms,
                add_missing_loops = add_missing_loops,
                docker_image = gromacs_image,
                memory_gb = memory_gb
        }

        call gmx.prepare_system {
            input:
                structure = prepare_structure.prepared,
                name = name,
                force_field = force_field,
                water_model = water_model,
                box_type = box_type,
                box_distance_nm = box_distance_nm,
                salt_molar = salt_molar,
                seed = seed,
                docker_image = gromacs_image,
                memory_gb = memory_gb
        }

        call gmx.md_stage as minimize {
            input:
                stage = "em",
                structure = prepare_system.system,
                topology = prepare_system.topology,
                nsteps = em_steps,
                allow_unconverged_em = allow_unconverged_em,
                mdp = em_mdp,
                mdp_overrides = em_mdp_overrides,
                name = name,
                docker_image = gromacs_image,
                cpu = cpu,
                memory_gb = memory_gb
        }

        call gmx.md_stage as nvt {
            input:
                stage = "nvt",
                structure = select_first([minimize.gro]),
                topology = prepare_system.topology,
                nsteps = nvt_steps,
                seed = seed,
                temperature_k = temperature_k,
                timestep_ps = timestep_ps,
                energy_interval_steps = energy_interval_steps,
                mdp = nvt_mdp,
                mdp_overrides = nvt_mdp_overrides,
                name = name,
                docker_image = gromacs_image,
                cpu = cpu,
                memory_gb = memory_gb
        }

        call gmx.md_stage as npt {
            input:
                stage = "npt",
                structure = select_first([nvt.gro]),
                topology = prepare_system.topology,
                previous_checkpoint = nvt.checkpoint,
                nsteps = npt_steps,
                seed = seed,
                temperature_k = temperature_k,
                pressure_bar = pressure_bar,
                timestep_ps = timestep_ps,
                energy_interval_steps = energy_interval_steps,
                mdp = npt_mdp,
                mdp_overrides = npt_mdp_overrides,
                name = name,
                docker_image = gromacs_image,
                cpu = cpu,
                memory_gb = memory_gb
        }

        call gmx.md_stage as production_input {
            input:
                stage = "md",
                structure = select_first([npt.gro]),
                topology = prepare_system.topology,
                previous_checkpoint = npt.checkpoint,
                nsteps = production_steps,
                seed = seed,
                temperature_k = temperature_k,
                pressure_bar = pressure_bar,
                timestep_ps = timestep_ps,
                energy_interval_steps = energy_interval_steps,
                frame_interval_steps = frame_interval_steps,
                mdp = production_mdp,
                mdp_overrides = production_mdp_overrides,
                run_mdrun = false,
                name = name,
                docker_image = gromacs_image,
                cpu = 1,
                memory_gb = memory_gb
        }
    }

    call gmx.production {
        input:
            tpr = select_first([resume_tpr, production_input.tpr]),
            nsteps = production_steps,
            resume_checkpoint = resume_checkpoint,
            checkpoint_minutes = checkpoint_minutes,
            gpu = gpu,
            gpu_count = gpu_count,
            simd = simd,
            name = name,
            docker_image = if gpu then gromacs_cuda_image else gromacs_image,
            gpu_queue_arn = gpu_queue_arn,
            cpu_queue_arn = cpu_queue_arn,
            cpu = production_cpu,
            memory_gb = memory_gb
    }

    call gmx.analysis {
        input:
            em_log = minimize.log,
            em_edr = minimize.edr,
            nvt_edr = nvt.edr,
            npt_edr = npt.edr,
            md_edr = production.edr,
            md_trajectory = production.trajectory,
            md_tpr = production.run_input,
            md_log = production.log,
            preparation = prepare_structure.report,
            system_report = prepare_system.system_report,
            name = name,
            docker_image = gromacs_image,
            memory_gb = memory_gb
    }

    output {
        File summary = analysis.summary
        File? prepared_structure = prepare_structure.prepared
        File? preparation_report = prepare_structure.report
        File? preparation_report_text = prepare_structure.report_text
        File? system_report = prepare_system.system_report
        Array[File] tables = analysis.tables
        Array[File] plots = analysis.plots
        File? system = prepare_system.system
        File? topology = prepare_system.topology
        Int? atoms = prepare_system.atoms
        File? em_log = minimize.log
        File? nvt_log = nvt.log
        File? npt_log = npt.log
        File? nvt_mdp_used = nvt.merged_mdp
        File production_tpr = production.run_input
        File trajectory = production.trajectory
        File production_edr = production.edr
        File production_log = production.log
        File final_structure = production.gro
        File checkpoint = production.checkpoint
        Float ns_per_day = production.ns_per_day
    }
}
