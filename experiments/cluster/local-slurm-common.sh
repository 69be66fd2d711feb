# Shared by the tests that run a real one-node Slurm cluster on localhost
# (test-local-slurm.sh, test-local-slurm-ddppo.sh): sourced, not run. It skips without root
# and apt, makes the work folder, starts munged, writes slurm.conf and starts slurmctld and
# slurmd; every daemon started through it is stopped by its PID at the end (an EXIT trap),
# whatever happens.

# Skips the test (exit 0, with a message) unless it runs as root with apt-get.
require_root_and_apt() {
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        echo "SKIP: this test needs root and apt-get (it installs and starts slurm-wlm and munge)"
        exit 0
    fi
}

# Makes the work folder `$work` (from the mktemp template $1) and sets `$host` and the list of
# daemon PIDs `$pids` that the EXIT trap stops. With `remove_work=1` set before, the trap also
# removes the work folder unless FBRL_KEEP=1.
start_work() {
    work=$(mktemp -d "$1")
    chmod 755 "$work"
    host=$(hostname -s)
    pids=()
    trap stop_daemons EXIT
}

# Stops every daemon in `$pids`: TERM, up to 5 s, then KILL.
stop_daemons() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    echo "== stopped daemons (pids ${pids[*]:-none})"
    if [[ "${remove_work:-}" == 1 && "${FBRL_KEEP:-}" != 1 ]]; then rm -rf "$work"; fi
}

# Starts munged with a fresh key and its socket in "$work/munge".
start_munged() {
    echo "== munged"
    mkdir -p "$work/munge"
    dd if=/dev/urandom of="$work/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$work/munge/munge.key"
    munged --foreground --force --key-file="$work/munge/munge.key" \
        --socket="$work/munge/munge.socket" --pid-file="$work/munge/munged.pid" \
        --log-file="$work/munge/munged.log" --seed-file="$work/munge/munged.seed" &
    pids+=($!)
    for _ in $(seq 50); do [[ -S "$work/munge/munge.socket" ]] && break; sleep 0.1; done
}

# Writes "$work/slurm.conf" for one node with 2 CPUs and exports SLURM_CONF. $1: the cluster's
# name, $2 and $3: slurmctld's and slurmd's ports; the rest of the lines (e.g. accounting)
# come from stdin.
write_slurm_conf() {
    echo "== slurm.conf (one node, 2 CPUs)"
    mkdir -p "$work/state" "$work/spool"
    {
        cat <<CONF
ClusterName=$1
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$work/munge/munge.socket
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
SlurmctldPort=$2
SlurmdPort=$3
CONF
        cat
        cat <<CONF
MinJobAge=3600
NodeName=$host CPUs=2 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    } > "$work/slurm.conf"
    export SLURM_CONF="$work/slurm.conf"
}

# Starts slurmctld and slurmd and waits until the node is idle.
start_slurm() {
    slurmctld -D -i -f "$SLURM_CONF" &
    pids+=($!)
    slurmd -D -f "$SLURM_CONF" &
    pids+=($!)
    for _ in $(seq 100); do
        state=$(sinfo -h -n "$host" -o %t 2>/dev/null || true)
        [[ "$state" == idle* ]] && break
        sleep 0.2
    done
    sinfo
}

# Prints the CSV file $1 without the columns named by the other arguments (timing columns).
strip_columns() {
    python3 - "$@" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
drop = {i for i, h in enumerate(rows[0]) if h in sys.argv[2:]}
for r in rows:
    print(",".join(c for i, c in enumerate(r) if i not in drop))
PY
}
