version 1.0

# GROMACS tasks for wdl/gromacs.wdl: structure preparation, system preparation, one MD stage (grompp + mdrun), the
# production mdrun (CPU or GPU, checkpointed, resumable) and the analysis tables and plots.
# Programs: prepare-structure (containers/gromacs/prepare_structure.py, gemmi + PDBFixer, gromacs image only;
# tests/test_prepare_structure.py) and gromacs-tasks for the rest (containers/shared/gromacs_tasks.py, in the
# gromacs and gromacs-cuda images; tests/test_gromacs_scripts.py): mdp defaults and merging, the checks of the
# inputs, the GROMACS steps, GROMACS's "Fatal error" text joined into one "ERROR: ..." line, tables and summary.
# Failures are deterministic (max_retries 0); AWS Batch retries a Spot reclaim (batch_retries).
# Shell safety: no String or File value is pasted into a command. Each arrives in a write_lines file that
# gromacs-tasks reads (a value holding a newline is refused); Int, Float and Boolean values are arguments.
# The output prefix (name) is checked against the pattern of parameter_meta, force_field, water_model, box_type and
# stage against what GROMACS has, before any work.

task prepare_structure {
    meta {
        description: "Structure preparation before pdb2gmx, with gemmi and PDBFixer: PDB or mmCIF (detected by content, gzip accepted); one model, one alternate location, the chosen chains; waters and heterogens removed (except those kept); nonstandard residues replaced (MSE -> MET, ...); missing heavy atoms (and optionally missing loops) added. Then the force-field checks: nucleic acids need a force field that has them, and every residue must be known to the force field. Writes what it changed."
        outputs: {
            prepared: "The prepared structure (PDB) that pdb2gmx reads",
            report: "Preparation report, JSON: format, models and model used, chains, alternate locations, waters and heterogens removed, residues replaced, atoms and residues added, force-field checks",
            report_text: "The same report as text, for people"
        }
    }

    parameter_meta {
        structure: "Structure as downloaded from the RCSB: PDB or mmCIF (by content, not extension), gzip-compressed accepted"
        name: {
            description: "Output prefix: the outputs are named <name>.*",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        force_field: "GROMACS force field the structure is checked against (a <name>.ff folder of the GROMACS data directory)"
        model: "Model to use (1-based) of a file with several MODELs (NMR entries); reported"
        chains: {
            description: "Chain IDs to keep (author chain names as in the file); empty: all chains",
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
            description: "Residue names of heterogens to keep (e.g. ZN, CA); every other heterogen is removed. A kept heterogen the force field does not know is refused: ligand parametrisation is out of scope",
            pattern: "^[A-Za-z0-9]{1,5}$",
            pattern_help: "this is not a residue name: give RCSB residue names of heterogens (e.g. ZN, CA)"
        }
        replace_nonstandard: "Replace nonstandard residues by their standard parents (MSE -> MET, ...)"
        add_missing_atoms: "Add missing heavy atoms of residues (hydrogens come from pdb2gmx)"
        add_missing_loops: "Also add missing internal residues (loops) from the entry's SEQRES; never the missing termini"
        docker_image: "Image with GROMACS, gemmi and PDBFixer"
        cpu: "Cores"
        memory_gb: "Memory requested, GiB"
        disk_gb: "Scratch disk, GiB"
        max_retries: "Cromwell/miniwdl retries of a failed attempt (0: failures here are deterministic; Spot reclaims are retried by AWS Batch, batch_retries)"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        File structure
        String name
        String force_field
        Int model = 1
        Array[String] chains = []
        String altloc = ""
        Boolean keep_water = false
        Array[String] keep_heterogens = []
        Boolean replace_nonstandard = true
        Boolean add_missing_atoms = true
        Boolean add_missing_loops = false
        String docker_image = "batchpipes/gromacs:c6682bbcff86"
        Int cpu = 1
        Int memory_gb = 2
        Int disk_gb = 10
        Int max_retries = 0
        Int batch_retries = 2
    }

    command <<<
        set -euo pipefail
        prepare-structure \
            --name ~{write_lines([name])} \
            --structure ~{write_lines([structure])} \
            --force_field ~{write_lines([force_field])} \
            --model ~{model} \
            --chains ~{write_lines(chains)} \
            --chains_count ~{length(chains)} \
            --altloc ~{write_lines([altloc])} \
            --keep_water ~{keep_water} \
            --keep_heterogens ~{write_lines(keep_heterogens)} \
            --keep_heterogens_count ~{length(keep_heterogens)} \
            --replace_nonstandard ~{replace_nonstandard} \
            --add_missing_atoms ~{add_missing_atoms} \
            --add_missing_loops ~{add_missing_loops}
    >>>

    output {
        File prepared = "~{name}.prepared.pdb"
        File report = "~{name}.preparation.json"
        File report_text = "~{name}.preparation.txt"
    }

    runtime {
        docker: docker_image
        cpu: cpu
        memory: "~{memory_gb} GiB"
        disks: "local-disk ~{disk_gb} SSD"
        maxRetries: max_retries
        awsBatchRetryAttempts: batch_retries
    }
}

task prepare_system {
    meta {
        description: "pdb2gmx (topology) -> editconf (box) -> solvate -> grompp + genion (neutralise whatever the net charge, add salt; fixed seed). Checks from the topology that the system is neutral."
        outputs: {
            system: "Solvated, neutralised system (.gro)",
            system_report: "JSON: solute charge, Na+ and Cl- added, waters, box volume, salt concentration in the box, genion seed",
            topology: "topol.top and its .itp includes (position restraints, chains), tar.gz",
            atoms: "Number of atoms in the system",
            logs: "GROMACS logs of every step, tar.gz"
        }
    }

    parameter_meta {
        structure: "Prepared structure (PDB) from prepare_structure"
        name: {
            description: "Output prefix: the outputs are named <name>.*",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        force_field: "GROMACS force field name (a <name>.ff folder of the GROMACS data directory), e.g. oplsaa, amber99sb-ildn, charmm27"
        water_model: "Water model of the force field (its watermodels.dat), e.g. spce, tip3p"
        box_type: {
            description: "editconf box type",
            choices: ["cubic", "dodecahedron", "octahedron", "triclinic"]
        }
        box_distance_nm: "Minimum distance between the protein and the box edge, nm"
        salt_molar: "NaCl concentration added after neutralising, mol/L"
        seed: "Seed of genion's random choice of the waters replaced by ions (same seed, same system)"
        docker_image: "Image with GROMACS"
        cpu: "Cores"
        memory_gb: "Memory requested, GiB"
        disk_gb: "Scratch disk, GiB"
        max_retries: "Cromwell/miniwdl retries of a failed attempt (0: failures here are deterministic; Spot reclaims are retried by AWS Batch, batch_retries)"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        File structure
        String name
        String force_field
        String water_model
        String box_type
        Float box_distance_nm
        Float salt_molar
        Int seed = 20261124
        String docker_image = "batchpipes/gromacs:c6682bbcff86"
        Int cpu = 1
        Int memory_gb = 2
        Int disk_gb = 10
        Int max_retries = 0
        Int batch_retries = 2
    }

    command <<<
        set -euo pipefail
        gromacs-tasks prepare-system \
            --name ~{write_lines([name])} \
            --structure ~{write_lines([structure])} \
            --force_field ~{write_lines([force_field])} \
            --water_model ~{write_lines([water_model])} \
            --box_type ~{write_lines([box_type])} \
            --box_distance_nm ~{box_distance_nm} \
            --salt_molar ~{salt_molar} \
            --seed ~{seed}
    >>>

    output {
        File system = "~{name}.system.gro"
        File system_report = "~{name}.system.json"
        File topology = "~{name}.topology.tar.gz"
        Int atoms = read_int("atoms.txt")
        File logs = "~{name}.prepare-logs.tar.gz"
    }

    runtime {
        docker: docker_image
        cpu: cpu
        memory: "~{memory_gb} GiB"
        disks: "local-disk ~{disk_gb} SSD"
        maxRetries: max_retries
        awsBatchRetryAttempts: batch_retries
    }
}

task md_stage {
    meta {
        description: "One MD stage: the stage's default mdp, then the user's mdp file, then the step count, temperature, pressure and time step, then key overrides (later wins); grompp; mdrun unless only the run input (.tpr) is wanted."
        outputs: {
            tpr: "Run input of the stage",
            merged_mdp: "The merged mdp the stage ran with",
            gro: "Final coordinates (mdrun only)",
            edr: "Energies (mdrun only)",
            log: "mdrun log (mdrun only)",
            checkpoint: "Final checkpoint with velocities (MD stages)",
            grompp_log: "grompp output"
        }
    }

    parameter_meta {
        stage: {
            description: "Stage: em (steepest descent), nvt, npt (position-restrained equilibration), md (production run input)",
            choices: ["em", "nvt", "npt", "md"]
        }
        structure: "Coordinates (.gro) to start from"
        topology: "topology tar.gz from prepare_system"
        restraint_reference: "Reference coordinates for position restraints (nvt, npt); default: structure"
        previous_checkpoint: "Checkpoint of the previous stage (velocities, thermostat and barostat state)"
        nsteps: "Steps (em: maximum steps; it stops at Fmax < emtol)"
        temperature_k: "Reference temperature, K"
        pressure_bar: "Reference pressure, bar"
        timestep_ps: "Time step, ps"
        energy_interval_steps: "Steps between energy frames"
        frame_interval_steps: "Steps between compressed trajectory frames (0: none)"
        mdp: "mdp file of the user's, merged over the stage's defaults"
        mdp_overrides: "mdp lines 'key = value', applied last"
        run_mdrun: "false: stop after grompp (the production run input)"
        seed: "Seed of the generated velocities (nvt: gen-seed) and of the thermostat's and barostat's random terms (ld-seed, every MD stage)"
        allow_unconverged_em: "em: go on when the minimisation stops before Fmax < emtol (flagged in the run's summary); false: fail with one line"
        name: {
            description: "Output prefix: the outputs are named <name>.*",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        docker_image: "Image with GROMACS"
        cpu: "Cores (OpenMP threads of one rank)"
        memory_gb: "Memory requested, GiB"
        disk_gb: "Scratch disk, GiB"
        max_retries: "Cromwell/miniwdl retries of a failed attempt (0: failures here are deterministic; Spot reclaims are retried by AWS Batch, batch_retries)"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        String stage
        File structure
        File topology
        File? restraint_reference
        File? previous_checkpoint
        Int nsteps
        Float temperature_k = 300.0
        Float pressure_bar = 1.0
        Float timestep_ps = 0.002
        Int energy_interval_steps = 100
        Int frame_interval_steps = 0
        File? mdp
        Array[String] mdp_overrides = []
        Boolean run_mdrun = true
        Int seed = 20261124
        Boolean allow_unconverged_em = false
        String name
        String docker_image = "batchpipes/gromacs:c6682bbcff86"
        Int cpu = 2
        Int memory_gb = 2
        Int disk_gb = 10
        Int max_retries = 0
        Int batch_retries = 2
    }

    command <<<
        set -euo pipefail
        gromacs-tasks md-stage \
            --stage ~{write_lines([stage])} \
            --name ~{write_lines([name])} \
            --structure ~{write_lines([structure])} \
            --topology ~{write_lines([topology])} \
            --restraint_reference ~{write_lines(select_all([restraint_reference]))} \
            --previous_checkpoint ~{write_lines(select_all([previous_checkpoint]))} \
            --mdp ~{write_lines(select_all([mdp]))} \
            --mdp_overrides ~{write_lines(mdp_overrides)} \
            --mdp_override_count ~{length(mdp_overrides)} \
            --nsteps ~{nsteps} \
            --temperature_k ~{temperature_k} \
            --pressure_bar ~{pressure_bar} \
            --timestep_ps ~{timestep_ps} \
            --energy_interval_steps ~{energy_interval_steps} \
            --frame_interval_steps ~{frame_interval_steps} \
            --cpu ~{cpu} \
            --seed ~{seed} \
            --run_mdrun ~{run_mdrun} \
            --allow_unconverged_em ~{allow_unconverged_em}
    >>>

    output {
        File tpr = "~{name}.~{stage}.tpr"
        File merged_mdp = "~{name}.~{stage}.mdp"
        File grompp_log = "~{name}.~{stage}.grompp.log"
        File? gro = "~{name}.~{stage}.gro"
        File? edr = "~{name}.~{stage}.edr"
        File? log = "~{name}.~{stage}.log"
        File? checkpoint = "~{name}.~{stage}.cpt"
    }

    runtime {
        docker: docker_image
        cpu: cpu
        memory: "~{memory_gb} GiB"
        disks: "local-disk ~{disk_gb} SSD"
        maxRetries: max_retries
        awsBatchRetryAttempts: batch_retries
    }
}

task production {
    meta {
        description: "Production mdrun from a run input (.tpr), on CPU or GPU (GPU-resident: non-bonded, PME, bonded and update on the GPU). Writes a checkpoint every checkpoint_minutes and at the end; resumes from a checkpoint when one is given."
        outputs: {
            trajectory: "Compressed trajectory (.xtc)",
            edr: "Energies",
            log: "mdrun log",
            gro: "Final coordinates",
            checkpoint: "Final checkpoint: give it as resume_checkpoint (with this run_input) to continue",
            run_input: "The run input this run used, with nsteps set (resume with it)",
            ns_per_day: "mdrun's performance figure, ns/day"
        }
    }

    parameter_meta {
        tpr: "Run input (.tpr)"
        nsteps: "Total steps of the run counted from its start (resuming continues up to this step)"
        resume_checkpoint: "Checkpoint (.cpt) of an earlier, interrupted or shorter run of this tpr"
        checkpoint_minutes: "Minutes between checkpoints"
        gpu: "Run on a GPU: gpuCount and GPU-resident mdrun flags (give a CUDA image as docker_image)"
        gpu_count: "GPUs requested when gpu is true"
        simd: {
            description: "CPU mdrun engine: auto (the best SIMD build of the image this CPU runs: AVX_512, AVX2_256, else Debian's SSE4.1 build), or one level (fails with one line where the CPU lacks it); ignored with gpu = true",
            choices: ["auto", "AVX_512", "AVX2_256", "SSE4.1"]
        }
        name: {
            description: "Output prefix: the outputs are named <name>.*",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        docker_image: "Image with GROMACS; with gpu = true it must be a CUDA build (gromacs-cuda): the workflow passes that one"
        cpu: "Cores (OpenMP threads of one rank)"
        memory_gb: "Memory requested, GiB"
        disk_gb: "Scratch disk, GiB"
        max_retries: "Cromwell/miniwdl retries of a failed attempt (0: failures here are deterministic; Spot reclaims are retried by AWS Batch, batch_retries)"
        batch_retries: "AWS Batch retries (Spot reclaim)"
        gpu_queue_arn: "AWS Batch queue of GPU instances, used when gpu is true (Cromwell on AWS; ignored by miniwdl)"
        cpu_queue_arn: "AWS Batch queue used when gpu is false (Cromwell on AWS; ignored by miniwdl)"
    }

    input {
        File tpr
        Int nsteps
        File? resume_checkpoint
        Int checkpoint_minutes = 15
        Boolean gpu = false
        Int gpu_count = 1
        String simd = "auto"
        String name
        String docker_image = "batchpipes/gromacs:c6682bbcff86"
        Int cpu = 2
        Int memory_gb = 2
        Int disk_gb = 20
        Int max_retries = 0
        Int batch_retries = 3
        String gpu_queue_arn = ""
        String cpu_queue_arn = ""
    }

    command <<<
        set -euo pipefail
        gromacs-tasks production \
            --name ~{write_lines([name])} \
            --tpr ~{write_lines([tpr])} \
            --resume_checkpoint ~{write_lines(select_all([resume_checkpoint]))} \
            --simd ~{write_lines([simd])} \
            --nsteps ~{nsteps} \
            --checkpoint_minutes ~{checkpoint_minutes} \
            --cpu ~{cpu} \
            --gpu ~{gpu}
    >>>

    output {
        File trajectory = "~{name}.md.xtc"
        File edr = "~{name}.md.edr"
        File log = "~{name}.md.log"
        File gro = "~{name}.md.gro"
        File checkpoint = "~{name}.md.cpt"
        File run_input = "~{name}.md.tpr"
        Float ns_per_day = read_float("ns_per_day.txt")
    }

    runtime {
        docker: docker_image
        cpu: cpu
        memory: "~{memory_gb} GiB"
        gpuCount: if gpu then gpu_count else 0
        queueArn: if gpu then gpu_queue_arn else cpu_queue_arn
        disks: "local-disk ~{disk_gb} SSD"
        maxRetries: max_retries
        awsBatchRetryAttempts: batch_retries
    }
}

task analysis {
    meta {
        description: "Tables (TSV) and plots (PNG) of every stage: EM potential energy, NVT temperature, NPT pressure and density, production temperature and density, backbone RMSD, radius of gyration, per-residue C-alpha RMSF and DSSP secondary structure over the trajectory; a JSON summary with the preparation and system reports and the run's warnings."
        outputs: {
            summary: "JSON: EM Fmax and potential, NVT temperature and NPT density (mean over the stage and over its second half, after the thermostat/barostat have acted), production frames and times, RMSD, Rg, largest RMSF, mean helix and sheet fractions, ns/day; the preparation and system reports; warnings (e.g. an energy minimisation allowed to go on unconverged)",
            tables: "TSV tables, one per quantity",
            plots: "PNG plots of the tables"
        }
    }

    parameter_meta {
        em_log: "Energy minimisation log"
        em_edr: "Energy minimisation energies"
        nvt_edr: "NVT energies"
        npt_edr: "NPT energies"
        md_edr: "Production energies"
        md_trajectory: "Production trajectory (.xtc)"
        md_tpr: "Production run input"
        md_log: "Production mdrun log"
        preparation: "Preparation report (JSON) of prepare_structure, copied into the summary"
        system_report: "System report (JSON) of prepare_system, copied into the summary"
        name: {
            description: "Output prefix: the outputs are named <name>.*",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        docker_image: "Image with GROMACS and gnuplot"
        cpu: "Cores"
        memory_gb: "Memory requested, GiB"
        disk_gb: "Scratch disk, GiB"
        max_retries: "Cromwell/miniwdl retries of a failed attempt (0: failures here are deterministic; Spot reclaims are retried by AWS Batch, batch_retries)"
        batch_retries: "AWS Batch retries (Spot reclaim)"
    }

    input {
        File? em_log
        File? em_edr
        File? nvt_edr
        File? npt_edr
        File md_edr
        File md_trajectory
        File md_tpr
        File md_log
        File? preparation
        File? system_report
        String name
        String docker_image = "batchpipes/gromacs:c6682bbcff86"
        Int cpu = 1
        Int memory_gb = 2
        Int disk_gb = 10
        Int max_retries = 0
        Int batch_retries = 2
    }

    command <<<
        set -euo pipefail
        gromacs-tasks analysis \
            --name ~{write_lines([name])} \
            --em_log ~{write_lines(select_all([em_log]))} \
            --em_edr ~{write_lines(select_all([em_edr]))} \
            --nvt_edr ~{write_lines(select_all([nvt_edr]))} \
            --npt_edr ~{write_lines(select_all([npt_edr]))} \
            --md_edr ~{write_lines([md_edr])} \
            --md_trajectory ~{write_lines([md_trajectory])} \
            --md_tpr ~{write_lines([md_tpr])} \
            --md_log ~{write_lines([md_log])} \
            --preparation ~{write_lines(select_all([preparation]))} \
            --system_report ~{write_lines(select_all([system_report]))}
    >>>

    output {
        File summary = "~{name}.summary.json"
        Array[File] tables = glob("tables/*.tsv")
        Array[File] plots = glob("plots/*.png")
    }

    runtime {
        docker: docker_image
        cpu: cpu
        memory: "~{memory_gb} GiB"
        disks: "local-disk ~{disk_gb} SSD"
        maxRetries: max_retries
        awsBatchRetryAttempts: batch_retries
    }
}
