version 1.0

# GROMACS tasks for wdl/gromacs.wdl: system preparation, one MD stage (grompp + mdrun), the
# production mdrun (CPU or GPU, checkpointed, resumable) and the analysis tables and plots.
# Every failure prints one "ERROR: ..." line: GROMACS's own "Fatal error" text, joined into one line.
# Shell safety: no String or File value is pasted into a command. Each arrives in a write_lines file, is read
# into a bash variable (a value holding a newline is refused) and is used only double-quoted or as a program
# argument; awk reads values from the environment (ENVIRON), never from its program text. The output prefix
# (name) is checked against the pattern of parameter_meta, force_field, water_model, box_type and stage against
# what GROMACS has, before any work.

task prepare_system {
    meta {
        description: "pdb2gmx (topology) -> editconf (box) -> solvate -> grompp + genion (neutralise and add salt)."
        outputs: {
            system: "Solvated, neutralised system (.gro)",
            topology: "topol.top and its .itp includes (position restraints, chains), tar.gz",
            atoms: "Number of atoms in the system",
            logs: "GROMACS logs of every step, tar.gz"
        }
    }

    parameter_meta {
        structure: "Protein structure, PDB format (gzip-compressed accepted)"
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
        strip_crystal_water: "Remove crystal waters (HOH/WAT) from the structure before pdb2gmx"
        docker_image: "Image with GROMACS"
        cpu: "Cores"
        memory_gb: "Memory requested, GiB"
        disk_gb: "Scratch disk, GiB"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
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
        Boolean strip_crystal_water = true
        String docker_image = "batchpipes/gromacs:04bebcaebad0"
        Int cpu = 1
        Int memory_gb = 2
        Int disk_gb = 10
        Int max_retries = 1
        Int batch_retries = 2
    }

    command <<<
        set -euo pipefail
        export GMX_MAXBACKUP=-1 LC_ALL=C
        # Every String and File input arrives in a file written by the engine (write_lines), is read into a
        # bash variable and used only double-quoted or as a program argument: no value is pasted into this script.
        fail() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
        one() {  # one LABEL FILE: the single line of FILE (a value holding a newline is refused)
            local -a lines_
            mapfile -t lines_ < "$2"
            [ "${#lines_[@]}" -eq 1 ] || fail "$1 holds a newline: give it as one line"
            printf '%s' "${lines_[0]}"
        }
        optional() {  # optional LABEL FILE: as one, empty when the optional input is not given
            local -a lines_
            mapfile -t lines_ < "$2"
            [ "${#lines_[@]}" -le 1 ] || fail "$1 holds a newline: give it as one line"
            printf '%s' "${lines_[0]:-}"
        }
        check_name() {  # the output prefix becomes file names: the pattern of parameter_meta
            local re='^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'
            [[ $1 =~ $re ]] || fail "name '$1' may hold only letters, digits, '.', '_' and '-', 1 to 64 characters starting with a letter or digit: rename it"
        }
        fatal() {  # fatal FILE: GROMACS's "Fatal error" text in one line (else the file's last line)
            local msg
            msg=$(awk '/^Fatal error:/ {f = 1; next} f && /^(For more information|-----)/ {exit} f && NF {printf "%s ", $0}' "$1")
            msg=${msg% }
            printf '%s' "${msg:-$(tail -n 1 "$1")}"
        }
        name=$(one name ~{write_lines([name])})
        check_name "$name"
        box=$(one box_type ~{write_lines([box_type])})
        case "$box" in
        cubic | dodecahedron | octahedron | triclinic) ;;
        *) fail "box_type is '$box': choose one of cubic, dodecahedron, octahedron, triclinic" ;;
        esac
        ff=$(one force_field ~{write_lines([force_field])})
        water=$(one water_model ~{write_lines([water_model])})
        structure=$(one structure ~{write_lines([structure])})
        shown=$(basename -- "$structure")

        gmx_step() {  # gmx_step WHAT ARGS...: run gmx ARGS, keep the log, report a fatal error in one line
            local what=$1
            shift
            if ! gmx -quiet "$@" > "logs/$what.log" 2>&1; then
                local msg residue
                msg=$(fatal "logs/$what.log")
                residue=$(sed -n "s/.*Residue '\([^']*\)' not found in residue topology database.*/\1/p" "logs/$what.log" | head -n 1)
                if [ "$what" = pdb2gmx ] && [ -n "$residue" ]; then
                    fail "structure '$shown' has residue '$residue', which force field $ff does not know (a ligand, ion or modified residue): remove its lines from the PDB or use a force field that has it"
                fi
                fail "gmx $what failed: $msg"
            fi
        }

        # the structure: PDB text; a gzip-compressed PDB is unpacked, mmCIF and other formats are refused
        src=$structure
        if [ "$(head -c 2 "$src" | od -An -tx1 | tr -d ' \n')" = 1f8b ]; then
            if ! gzip -dc < "$src" > input.pdb 2> /dev/null; then
                rm -f input.pdb
                fail "structure '$shown' is a damaged gzip file: give the PDB file again"
            fi
            src=input.pdb
        fi
        if grep -qE '^(data_|loop_|_atom_site\.)' "$src"; then
            fail "structure '$shown' is mmCIF, not PDB: download the entry in PDB format or convert it (e.g. gemmi convert in.cif out.pdb)"
        fi
        if ! grep -qE '^(ATOM  |HETATM)' "$src"; then
            fail "structure '$shown' is not a PDB file (no ATOM/HETATM records): give a protein structure in PDB format"
        fi

        prefix=$(gmx --version 2> /dev/null | awk -F': *' '/^Data prefix/ {print $2}')
        top="${prefix:-/usr}/share/gromacs/top"
        known=$(find "$top" -maxdepth 1 -name '*.ff' -printf '%f\n' | sed 's/\.ff$//' | sort)
        if ! grep -qxF -e "$ff" <<< "$known" || [ ! -f "$top/$ff.ff/forcefield.itp" ]; then
            fail "unknown force field '$ff': choose one of $(paste -sd, - <<< "$known")"
        fi
        if [ -z "$water" ] || ! WATER=$water awk '$1 == ENVIRON["WATER"] {found = 1} END {exit !found}' "$top/$ff.ff/watermodels.dat" 2> /dev/null; then
            known=$(awk '{print $1}' "$top/$ff.ff/watermodels.dat" 2> /dev/null | paste -sd, -)
            fail "water model '$water' is not one of force field $ff's: choose one of ${known:-none listed}"
        fi

        if ~{true="true" false="false" strip_crystal_water}; then
            { grep -vE '^(ATOM  |HETATM).{11}(HOH|WAT|DOD)' "$src" || true; } > clean.pdb
            grep -qE '^(ATOM  |HETATM)' clean.pdb || fail "structure '$shown' holds only water: give a protein structure"
        else
            cp "$src" clean.pdb
        fi
        mkdir -p logs
        gmx_step pdb2gmx pdb2gmx -f clean.pdb -o protein.gro -p topol.top -i posre.itp -ff "$ff" -water "$water" -ignh
        gmx_step editconf editconf -f protein.gro -o boxed.gro -c -d ~{box_distance_nm} -bt "$box"
        gmx_step solvate solvate -cp boxed.gro -cs spc216.gro -p topol.top -o solvated.gro
        cat > ions.mdp <<'MDP'
        integrator    = steep
        nsteps        = 0
        cutoff-scheme = Verlet
        coulombtype   = PME
        rcoulomb      = 1.0
        rvdw          = 1.0
        pbc           = xyz
        MDP
        gmx_step grompp-ions grompp -f ions.mdp -c solvated.gro -p topol.top -o ions.tpr
        echo SOL | gmx_step genion genion -s ions.tpr -o "$name.system.gro" -p topol.top -pname NA -nname CL -neutral -conc ~{salt_molar}
        tail -n +3 "$name.system.gro" | head -n -1 | wc -l > atoms.txt
        tar czf "$name.topology.tar.gz" topol.top ./*.itp
        tar czf "$name.prepare-logs.tar.gz" logs
    >>>

    output {
        File system = "~{name}.system.gro"
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
            mdp: "The merged mdp the stage ran with",
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
        name: {
            description: "Output prefix: the outputs are named <name>.*",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        docker_image: "Image with GROMACS"
        cpu: "Cores (OpenMP threads of one rank)"
        memory_gb: "Memory requested, GiB"
        disk_gb: "Scratch disk, GiB"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
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
        String name
        String docker_image = "batchpipes/gromacs:04bebcaebad0"
        Int cpu = 2
        Int memory_gb = 2
        Int disk_gb = 10
        Int max_retries = 1
        Int batch_retries = 2
    }

    command <<<
        set -euo pipefail
        export GMX_MAXBACKUP=-1 LC_ALL=C
        # Every String and File input arrives in a file written by the engine (write_lines), is read into a
        # bash variable and used only double-quoted or as a program argument: no value is pasted into this script.
        fail() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
        one() {  # one LABEL FILE: the single line of FILE (a value holding a newline is refused)
            local -a lines_
            mapfile -t lines_ < "$2"
            [ "${#lines_[@]}" -eq 1 ] || fail "$1 holds a newline: give it as one line"
            printf '%s' "${lines_[0]}"
        }
        optional() {  # optional LABEL FILE: as one, empty when the optional input is not given
            local -a lines_
            mapfile -t lines_ < "$2"
            [ "${#lines_[@]}" -le 1 ] || fail "$1 holds a newline: give it as one line"
            printf '%s' "${lines_[0]:-}"
        }
        check_name() {  # the output prefix becomes file names: the pattern of parameter_meta
            local re='^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'
            [[ $1 =~ $re ]] || fail "name '$1' may hold only letters, digits, '.', '_' and '-', 1 to 64 characters starting with a letter or digit: rename it"
        }
        fatal() {  # fatal FILE: GROMACS's "Fatal error" text in one line (else the file's last line)
            local msg
            msg=$(awk '/^Fatal error:/ {f = 1; next} f && /^(For more information|-----)/ {exit} f && NF {printf "%s ", $0}' "$1")
            msg=${msg% }
            printf '%s' "${msg:-$(tail -n 1 "$1")}"
        }
        gmx_step() {  # gmx_step WHAT ARGS...: run gmx ARGS, keep the log, report a fatal error in one line
            local what=$1
            shift
            gmx -quiet "$@" > "$what.out" 2>&1 || fail "$stage: gmx $what failed: $(fatal "$what.out")"
        }
        merge_mdp() {  # merge_mdp FILES...: key = value lines, later files win; '_' and '-' in keys are the same
            local f
            local -a paths=()
            for f in "$@"; do  # ./ keeps awk from reading a relative name with '=' as an assignment
                case "$f" in /*) paths+=("$f") ;; *) paths+=("./$f") ;; esac
            done
            STAGE=$stage awk '
                { sub(/\r$/, ""); line = $0; sub(/;.*/, "", line) }
                line ~ /^[ \t]*$/ { next }
                {
                    eq = index(line, "=")
                    key = substr(line, 1, eq - 1); val = substr(line, eq + 1)
                    gsub(/^[ \t]+|[ \t]+$/, "", key); gsub(/^[ \t]+|[ \t]+$/, "", val)
                }
                eq == 0 || key !~ /^[A-Za-z][A-Za-z0-9_-]*$/ {
                    printf "ERROR: %s: mdp line \"%s\" is not \"key = value\"\n", ENVIRON["STAGE"], $0 > "/dev/stderr"; bad = 1; exit 1
                }
                {
                    norm = tolower(key); gsub(/_/, "-", norm)
                    if (!(norm in v)) order[++n] = norm
                    k[norm] = key; v[norm] = val
                }
                END { if (bad) exit 1; for (i = 1; i <= n; i++) printf "%-26s = %s\n", k[order[i]], v[order[i]] }' "${paths[@]}"
        }

        stage=$(one stage ~{write_lines([stage])})
        case "$stage" in
        em | nvt | npt | md) ;;
        *) fail "unknown stage '$stage': choose em, nvt, npt or md" ;;
        esac
        name=$(one name ~{write_lines([name])})
        check_name "$name"
        structure=$(one structure ~{write_lines([structure])})
        topology=$(one topology ~{write_lines([topology])})
        restraint=$(optional restraint_reference ~{write_lines(select_all([restraint_reference]))})
        checkpoint=$(optional previous_checkpoint ~{write_lines(select_all([previous_checkpoint]))})
        user_mdp=$(optional mdp ~{write_lines(select_all([mdp]))})
        # the overrides stay in their file (merge_mdp reads it); one line per list item, else one held a newline
        overrides=~{write_lines(mdp_overrides)}
        mapfile -t lines < "$overrides"
        [ "${#lines[@]}" -eq ~{length(mdp_overrides)} ] || fail "$stage: an mdp override holds a newline: give each 'key = value' as its own list item"

        merge_mdp "${user_mdp:-/dev/null}" "$overrides" > /dev/null  # a line that is not key = value: refused now

        tar xzf "$topology"
        T=~{temperature_k}
        case "$stage" in
        em)
            cat > defaults.mdp <<'MDP'
        integrator          = steep
        emtol               = 1000.0
        emstep              = 0.01
        nstenergy           = 10
        cutoff-scheme       = Verlet
        nstlist             = 10
        coulombtype         = PME
        rcoulomb            = 1.0
        rvdw                = 1.0
        pbc                 = xyz
        MDP
            ;;
        *)
            cat > defaults.mdp <<'MDP'
        integrator          = md
        nstlog              = 1000
        nstcalcenergy       = 50
        constraints         = h-bonds
        constraint-algorithm = lincs
        cutoff-scheme       = Verlet
        nstlist             = 10
        coulombtype         = PME
        rcoulomb            = 1.0
        rvdw                = 1.0
        fourierspacing      = 0.16
        DispCorr            = EnerPres
        pbc                 = xyz
        tcoupl              = V-rescale
        tc-grps             = Protein Non-Protein
        tau-t               = 0.1 0.1
        MDP
            if [ "$stage" = nvt ]; then
                printf '%s\n' 'define = -DPOSRES' 'continuation = no' 'gen-vel = yes' 'gen-seed = 20261124' 'pcoupl = no' >> defaults.mdp
            else
                printf '%s\n' 'continuation = yes' 'gen-vel = no' 'pcoupl = C-rescale' 'pcoupltype = isotropic' \
                    'tau-p = 1.0' 'compressibility = 4.5e-5' 'refcoord-scaling = com' >> defaults.mdp
                if [ "$stage" = npt ]; then echo 'define = -DPOSRES' >> defaults.mdp; fi
            fi
            ;;
        esac
        merge_mdp defaults.mdp "${user_mdp:-/dev/null}" > base.mdp
        # the named inputs: one reference temperature per coupling group
        groups=$(awk -F'=' '{k = tolower($1); gsub(/[ \t_]/, "", k); gsub(/-/, "", k)} k == "tcgrps" {print $2}' base.mdp | wc -w)
        {
            echo "nsteps = ~{nsteps}"
            if [ "$stage" != em ]; then
                echo "dt = ~{timestep_ps}"
                echo "nstenergy = ~{energy_interval_steps}"
                echo "nstxout-compressed = ~{frame_interval_steps}"
                echo "ref-t = $(for _ in $(seq "${groups:-1}"); do printf '%s ' "$T"; done)"
                echo "gen-temp = $T"
                [ "$stage" = nvt ] || echo "ref-p = ~{pressure_bar}"
            fi
        } > inputs.mdp
        merge_mdp base.mdp inputs.mdp "$overrides" > merged.mdp.tmp
        mv merged.mdp.tmp "$name.$stage.mdp"

        args=(-f "$name.$stage.mdp" -c "$structure" -p topol.top -o "$name.$stage.tpr" -po mdout.mdp)
        if [ "$stage" = nvt ] || [ "$stage" = npt ]; then args+=(-r "${restraint:-$structure}"); fi
        if [ -n "$checkpoint" ]; then args+=(-t "$checkpoint"); fi
        if ! gmx -quiet grompp "${args[@]}" > grompp.out 2>&1; then
            unknown=$(sed -n "s/.*Unknown left-hand '\([^']*\)'.*/\1/p" grompp.out | paste -sd, -)
            if [ -n "$unknown" ]; then
                fail "$stage: unknown mdp key(s) $unknown (not a GROMACS 2022 mdp option): fix the spelling in the mdp file or overrides"
            fi
            fail "$stage: gmx grompp failed: $(fatal grompp.out)"
        fi
        cp grompp.out "$name.$stage.grompp.log"
        if ~{true="true" false="false" run_mdrun}; then
            gmx_step mdrun mdrun -deffnm "$name.$stage" -ntmpi 1 -ntomp ~{cpu}
            if [ "$stage" = em ] && ! grep -q 'converged to Fmax <' "$name.em.log"; then
                echo "WARNING: energy minimisation stopped at ~{nsteps} steps before reaching emtol" >&2
            fi
        fi
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
            checkpoint: "Final checkpoint: give it as resume_checkpoint (with this tpr) to continue",
            tpr: "The run input this run used (resume with it)",
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
        name: {
            description: "Output prefix: the outputs are named <name>.*",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        docker_image: "Image with GROMACS; with gpu = true it must be a CUDA build (gromacs-cuda): the workflow passes that one"
        cpu: "Cores (OpenMP threads of one rank)"
        memory_gb: "Memory requested, GiB"
        disk_gb: "Scratch disk, GiB"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
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
        String name
        String docker_image = "batchpipes/gromacs:04bebcaebad0"
        Int cpu = 2
        Int memory_gb = 2
        Int disk_gb = 20
        Int max_retries = 1
        Int batch_retries = 3
        String gpu_queue_arn = ""
        String cpu_queue_arn = ""
    }

    command <<<
        set -euo pipefail
        export GMX_MAXBACKUP=-1 LC_ALL=C
        # Every String and File input arrives in a file written by the engine (write_lines), is read into a
        # bash variable and used only double-quoted or as a program argument: no value is pasted into this script.
        fail() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
        one() {  # one LABEL FILE: the single line of FILE (a value holding a newline is refused)
            local -a lines_
            mapfile -t lines_ < "$2"
            [ "${#lines_[@]}" -eq 1 ] || fail "$1 holds a newline: give it as one line"
            printf '%s' "${lines_[0]}"
        }
        optional() {  # optional LABEL FILE: as one, empty when the optional input is not given
            local -a lines_
            mapfile -t lines_ < "$2"
            [ "${#lines_[@]}" -le 1 ] || fail "$1 holds a newline: give it as one line"
            printf '%s' "${lines_[0]:-}"
        }
        check_name() {  # the output prefix becomes file names: the pattern of parameter_meta
            local re='^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'
            [[ $1 =~ $re ]] || fail "name '$1' may hold only letters, digits, '.', '_' and '-', 1 to 64 characters starting with a letter or digit: rename it"
        }
        fatal() {  # fatal FILE: GROMACS's "Fatal error" text in one line (else the file's last line)
            local msg
            msg=$(awk '/^Fatal error:/ {f = 1; next} f && /^(For more information|-----)/ {exit} f && NF {printf "%s ", $0}' "$1")
            msg=${msg% }
            printf '%s' "${msg:-$(tail -n 1 "$1")}"
        }
        name=$(one name ~{write_lines([name])})
        check_name "$name"
        tpr=$(one tpr ~{write_lines([tpr])})
        checkpoint=$(optional resume_checkpoint ~{write_lines(select_all([resume_checkpoint]))})
        flags=(-ntmpi 1 -ntomp ~{cpu})
        if ~{true="true" false="false" gpu}; then
            if gmx --version 2> /dev/null | grep -qE '^GPU support: +disabled'; then
                fail "gpu is true but this image's GROMACS has no GPU support: use the gromacs-cuda image (gromacs_cuda_image)"
            fi
            # GPU-resident step: non-bonded, PME, bonded forces and the update/constraints on the GPU
            export GMX_ENABLE_DIRECT_GPU_COMM=1
            flags+=(-nb gpu -pme gpu -bonded gpu -update gpu)
        fi
        cp "$tpr" run.tpr
        if [ -n "$checkpoint" ]; then
            cp "$checkpoint" previous.cpt
            flags+=(-cpi previous.cpt -noappend)
        fi
        if ! gmx -quiet convert-tpr -s run.tpr -nsteps ~{nsteps} -o "$name.md.tpr" > convert.out 2>&1; then
            fail "production: cannot read the run input '$(basename -- "$tpr")': $(fatal convert.out)"
        fi
        if ! gmx -quiet mdrun -s "$name.md.tpr" -deffnm "$name.md" -cpt ~{checkpoint_minutes} "${flags[@]}" > mdrun.out 2>&1; then
            fail "production: gmx mdrun failed: $(fatal mdrun.out)"
        fi
        # a resumed run writes NAME.md.partNNNN.*: give the outputs their usual names
        for part in "$name".md.part*.*; do
            [ -e "$part" ] || continue
            mv "$part" "$name.md.${part##*.}"
        done
        [ -e "$name.md.xtc" ] || fail "production wrote no trajectory: set nstxout-compressed > 0"
        awk '/^Performance:/ {print $2}' "$name.md.log" | tail -n 1 > ns_per_day.txt
        [ -s ns_per_day.txt ] || echo 0 > ns_per_day.txt
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
        description: "Tables (TSV) and plots (PNG) of every stage: EM potential energy, NVT temperature, NPT pressure and density, production temperature and density, backbone RMSD and radius of gyration; a JSON summary."
        outputs: {
            summary: "JSON: EM Fmax and potential, NVT temperature and NPT density (mean over the stage and over its second half, after the thermostat/barostat have acted), production frames and times, RMSD, Rg, ns/day",
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
        name: {
            description: "Output prefix: the outputs are named <name>.*",
            pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
        }
        docker_image: "Image with GROMACS and gnuplot"
        cpu: "Cores"
        memory_gb: "Memory requested, GiB"
        disk_gb: "Scratch disk, GiB"
        max_retries: "Cromwell/miniwdl retries of a failed attempt"
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
        String name
        String docker_image = "batchpipes/gromacs:04bebcaebad0"
        Int cpu = 1
        Int memory_gb = 2
        Int disk_gb = 10
        Int max_retries = 1
        Int batch_retries = 2
    }

    command <<<
        set -euo pipefail
        export GMX_MAXBACKUP=-1 LC_ALL=C
        # Every String and File input arrives in a file written by the engine (write_lines), is read into a
        # bash variable and used only double-quoted or as a program argument: no value is pasted into this script.
        fail() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
        one() {  # one LABEL FILE: the single line of FILE (a value holding a newline is refused)
            local -a lines_
            mapfile -t lines_ < "$2"
            [ "${#lines_[@]}" -eq 1 ] || fail "$1 holds a newline: give it as one line"
            printf '%s' "${lines_[0]}"
        }
        optional() {  # optional LABEL FILE: as one, empty when the optional input is not given
            local -a lines_
            mapfile -t lines_ < "$2"
            [ "${#lines_[@]}" -le 1 ] || fail "$1 holds a newline: give it as one line"
            printf '%s' "${lines_[0]:-}"
        }
        check_name() {  # the output prefix becomes file names: the pattern of parameter_meta
            local re='^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'
            [[ $1 =~ $re ]] || fail "name '$1' may hold only letters, digits, '.', '_' and '-', 1 to 64 characters starting with a letter or digit: rename it"
        }
        fatal() {  # fatal FILE: GROMACS's "Fatal error" text in one line (else the file's last line)
            local msg
            msg=$(awk '/^Fatal error:/ {f = 1; next} f && /^(For more information|-----)/ {exit} f && NF {printf "%s ", $0}' "$1")
            msg=${msg% }
            printf '%s' "${msg:-$(tail -n 1 "$1")}"
        }
        name=$(one name ~{write_lines([name])})
        check_name "$name"
        em_log=$(optional em_log ~{write_lines(select_all([em_log]))})
        em_edr=$(optional em_edr ~{write_lines(select_all([em_edr]))})
        nvt_edr=$(optional nvt_edr ~{write_lines(select_all([nvt_edr]))})
        npt_edr=$(optional npt_edr ~{write_lines(select_all([npt_edr]))})
        md_edr=$(one md_edr ~{write_lines([md_edr])})
        md_trajectory=$(one md_trajectory ~{write_lines([md_trajectory])})
        md_tpr=$(one md_tpr ~{write_lines([md_tpr])})
        md_log=$(one md_log ~{write_lines([md_log])})
        mkdir -p tables plots
        table() {  # table EDR TERM COLUMN: one energy term against time -> tables/COLUMN.tsv
            if ! echo "$2" | gmx -quiet energy -f "$1" -o term.xvg > energy.out 2>&1; then
                fail "analysis: gmx energy found no '$2' in $(basename -- "$1")"
            fi
            xvg_table term.xvg "$3"
        }
        xvg_table() {  # xvg_table XVG COLUMN: first two columns of an xvg -> tables/COLUMN.tsv
            COLUMN=$2 awk 'BEGIN {print "time_ps\t" ENVIRON["COLUMN"]} !/^[#@]/ && NF >= 2 {print $1 "\t" $2}' "$1" > "tables/$2.tsv"
        }
        plot() {  # plot COLUMN TITLE (both fixed words of this script, never input values)
            gnuplot -e "set terminal png size 900,500; set output 'plots/$1.png'; set datafile separator '\t'; set key off; set grid; set title '$2'; set xlabel 'time (ps)'; set ylabel '$1'; plot 'tables/$1.tsv' using 1:2 every ::1 with lines lw 2"
        }
        mean() { awk -F'\t' 'NR > 1 {s += $2; n++} END {if (n) printf "%.4f", s / n; else printf "null"}' "tables/$1.tsv"; }
        second_half() { awk -F'\t' 'NR > 1 {v[++n] = $2} END {if (!n) {printf "null"; exit}; for (i = int(n / 2) + 1; i <= n; i++) {s += v[i]; m++}; printf "%.4f", s / m}' "tables/$1.tsv"; }
        last() { awk -F'\t' 'NR > 1 {v = $2} END {printf "%s", (v == "" ? "null" : v)}' "tables/$1.tsv"; }

        em_fmax=null; em_potential=null; em_converged=false
        if [ -n "$em_log" ]; then
            em_fmax=$(awk '/^Maximum force/ {v = $4} END {print (v == "" ? "null" : v + 0)}' "$em_log")
            em_potential=$(awk '/^Potential Energy/ {v = $4} END {print (v == "" ? "null" : v + 0)}' "$em_log")
            if grep -q 'converged to Fmax <' "$em_log"; then em_converged=true; fi
            table "$em_edr" Potential em_potential_kJ_mol
            plot em_potential_kJ_mol "Energy minimisation: potential energy (kJ/mol)"
        fi
        nvt_t=null; nvt_t2=null
        if [ -n "$nvt_edr" ]; then
            table "$nvt_edr" Temperature nvt_temperature_K
            plot nvt_temperature_K "NVT equilibration: temperature (K)"
            nvt_t=$(mean nvt_temperature_K)
            nvt_t2=$(second_half nvt_temperature_K)
        fi
        npt_density=null; npt_density2=null; npt_density0=null; npt_pressure=null
        if [ -n "$npt_edr" ]; then
            table "$npt_edr" Density npt_density_kg_m3
            table "$npt_edr" Pressure npt_pressure_bar
            plot npt_density_kg_m3 "NPT equilibration: density (kg/m^3)"
            plot npt_pressure_bar "NPT equilibration: pressure (bar)"
            npt_density=$(mean npt_density_kg_m3)
            npt_density2=$(second_half npt_density_kg_m3)
            npt_density0=$(awk -F'\t' 'NR == 2 {print $2 + 0}' tables/npt_density_kg_m3.tsv)
            npt_pressure=$(mean npt_pressure_bar)
        fi
        table "$md_edr" Temperature md_temperature_K
        table "$md_edr" Potential md_potential_kJ_mol
        plot md_temperature_K "Production: temperature (K)"
        plot md_potential_kJ_mol "Production: potential energy (kJ/mol)"
        if echo Density | gmx -quiet energy -f "$md_edr" -o term.xvg > density.out 2>&1; then
            xvg_table term.xvg md_density_kg_m3  # only with pressure coupling
            plot md_density_kg_m3 "Production: density (kg/m^3)"
        fi

        # whole molecules, protein centred, before structural analysis
        if ! printf 'Protein\nSystem\n' | gmx -quiet trjconv -s "$md_tpr" -f "$md_trajectory" -o centred.xtc -pbc mol -center > trjconv.out 2>&1; then
            fail "analysis: gmx trjconv could not read the trajectory '$(basename -- "$md_trajectory")'"
        fi
        printf 'Backbone\nBackbone\n' | gmx -quiet rms -s "$md_tpr" -f centred.xtc -o rmsd.xvg -tu ps > rms.out 2>&1
        xvg_table rmsd.xvg backbone_rmsd_nm
        echo Protein | gmx -quiet gyrate -s "$md_tpr" -f centred.xtc -o gyrate.xvg > gyrate.out 2>&1
        xvg_table gyrate.xvg radius_of_gyration_nm
        plot backbone_rmsd_nm "Production: backbone RMSD from the starting structure (nm)"
        plot radius_of_gyration_nm "Production: protein radius of gyration (nm)"

        frames=$(awk 'NR > 1' tables/backbone_rmsd_nm.tsv | wc -l)
        first=$(awk -F'\t' 'NR == 2 {print $1}' tables/md_temperature_K.tsv)
        final=$(awk -F'\t' 'NR > 1 {v = $1} END {print v}' tables/md_temperature_K.tsv)
        ns_day=$(awk '/^Performance:/ {v = $2} END {print (v == "" ? "null" : v)}' "$md_log")
        cat > summary.json.tmp <<JSON
        {
          "em_converged": $em_converged,
          "em_fmax_kj_mol_nm": $em_fmax,
          "em_potential_kj_mol": $em_potential,
          "nvt_mean_temperature_k": $nvt_t,
          "nvt_second_half_mean_temperature_k": $nvt_t2,
          "npt_initial_density_kg_m3": ${npt_density0:-null},
          "npt_mean_density_kg_m3": $npt_density,
          "npt_second_half_mean_density_kg_m3": $npt_density2,
          "npt_mean_pressure_bar": $npt_pressure,
          "md_mean_temperature_k": $(mean md_temperature_K),
          "md_frames": $frames,
          "md_first_time_ps": $first,
          "md_last_time_ps": $final,
          "md_final_backbone_rmsd_nm": $(last backbone_rmsd_nm),
          "md_mean_radius_of_gyration_nm": $(mean radius_of_gyration_nm),
          "md_ns_per_day": $ns_day
        }
        JSON
        mv summary.json.tmp "$name.summary.json"
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
