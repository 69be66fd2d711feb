#!/usr/bin/env bash
# A real one-node Slurm cluster on localhost (slurmctld, slurmd, and slurmdbd on a MariaDB of
# its own, so that sacct shows the jobs) runs the tiny maze preset through the ready-made
# files: maze.sbatch as a 4-task array, then maze-report.sbatch with --dependency=afterok. The
# report must equal a single-process run of the same preset (summary.csv and
# generalisation.csv, timing columns aside). Needs root and apt (installs Debian's slurm-wlm,
# slurmdbd, munge and mariadb-server when missing); skips with a message otherwise. Every daemon it starts is stopped
# by its PID at the end, whatever happens.
#
#   bash experiments/cluster/test-local-slurm.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
# shellcheck source=experiments/cluster/local-slurm-common.sh
source experiments/cluster/local-slurm-common.sh

require_root_and_apt
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null \
    || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; then
    echo "== installing slurm-wlm, slurmdbd, munge and mariadb-server"
    DEBIAN_FRONTEND=noninteractive apt-get install -y slurm-wlm slurmdbd munge mariadb-server \
        >/dev/null
fi

echo "== building the maze binary"
cargo build --release -p experiments --bin maze 2>&1 | tail -1

start_work /tmp/fbrl-slurm.XXXXXX
start_munged

echo "== MariaDB and slurmdbd (accounting, for sacct)"
mariadb-install-db --user=root --datadir="$work/db" --auth-root-authentication-method=normal \
    >"$work/db-install.log" 2>&1
mariadbd --user=root --datadir="$work/db" --socket="$work/db.sock" --port=16306 \
    --bind-address=127.0.0.1 --pid-file="$work/db.pid" --log-error="$work/db.err" &
pids+=($!)
for _ in $(seq 100); do [[ -S "$work/db.sock" ]] && break; sleep 0.1; done
mariadb --socket="$work/db.sock" -uroot -e "CREATE DATABASE slurm_acct_db;
    CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
cat > "$work/slurmdbd.conf" <<CONF
AuthType=auth/munge
AuthInfo=socket=$work/munge/munge.socket
DbdHost=localhost
DbdPort=16819
SlurmUser=root
PidFile=$work/slurmdbd.pid
LogFile=$work/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=16306
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurm
CONF
chmod 600 "$work/slurmdbd.conf"

write_slurm_conf fbrltest 16817 16818 <<CONF
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=16819
AccountingStoragePass=$work/munge/munge.socket
JobAcctGatherType=jobacct_gather/linux
CONF

echo "== slurmdbd, slurmctld and slurmd"
slurmdbd -D &
pids+=($!)
for _ in $(seq 100); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.2; done
sacctmgr -i add cluster fbrltest >/dev/null
start_slurm

echo "== the tiny preset as a 4-task array plus the dependent report job"
export FBRL_PRESET=tiny FBRL_RUNS_DIR="$work/runs" FBRL_OUT="$work/out-slurm"
export FBRL_BIN="$repo/target/release/maze"
array=$(sbatch --parsable --array=0-3 --chdir="$work" "$repo/experiments/cluster/maze.sbatch")
report=$(sbatch --parsable --chdir="$work" --dependency="afterok:$array" \
    "$repo/experiments/cluster/maze-report.sbatch")
echo "array job $array, report job $report"
deadline=$((SECONDS + 600))
while squeue -h -j "$array,$report" 2>/dev/null | grep -q .; do
    if (( SECONDS > deadline )); then
        echo "FAIL: the jobs did not finish within 600 s"; squeue; exit 1
    fi
    sleep 1
done

echo "== sacct"
# Completed jobs reach the database shortly after they end.
for _ in $(seq 50); do
    [[ $(sacct -n -X -j "$array,$report" -o State | grep -c COMPLETED) -ge 5 ]] && break
    sleep 0.2
done
sacct -X -j "$array,$report" -o JobID,JobName%18,State,ExitCode,Start,End,AllocCPUS
if sacct -n -X -j "$array,$report" -o State | grep -qv COMPLETED; then
    echo "FAIL: a job did not complete"; tail -20 "$work"/fbrl-maze-*.log; exit 1
fi
for log in "$work"/fbrl-maze-*.log; do echo "--- $(basename "$log")"; tail -3 "$log"; done

echo "== the same preset in one process"
"$repo/target/release/maze" --preset tiny --runs-dir "$work/runs-single" \
    --out "$work/out-single" --quiet --shard 0/1 >/dev/null 2>&1

# Every column but the timing ones.
strip() { strip_columns "$1" steps_per_s wall_time_s_per_run; }
status=0
for f in summary.csv generalisation.csv; do
    if diff <(strip "$work/out-slurm/$f") <(strip "$work/out-single/$f") >/dev/null; then
        echo "same: $f ($(($(wc -l < "$work/out-slurm/$f") - 1)) rows)"
    else
        echo "FAIL: $f differs"; diff <(strip "$work/out-slurm/$f") <(strip "$work/out-single/$f") || true
        status=1
    fi
done
[[ $status -eq 0 ]] && echo "PASS: the Slurm array + report equal the single-process run"
exit $status
