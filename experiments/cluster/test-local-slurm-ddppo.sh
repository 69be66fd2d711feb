#!/usr/bin/env bash
# A real one-node Slurm cluster on localhost (munged, slurmctld, slurmd; no accounting) runs
# experiments/cluster/ddppo.sbatch as a 2-task job (`srun --mpi=pmix`, or pmi2 when this
# Slurm lacks the PMIx plugin), stopping after a few updates; the same command under
# `mpirun -np 2` must give the same metrics (timing columns aside) and the same weights.
# The work folder (runs, logs) is removed at the end unless FBRL_KEEP=1.
# Needs root and apt (installs Debian's slurm-wlm and munge when missing); skips with a
# message otherwise. Every daemon it starts is stopped by its PID at the end.
#
#   bash experiments/cluster/test-local-slurm-ddppo.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
# shellcheck source=experiments/cluster/local-slurm-common.sh
source experiments/cluster/local-slurm-common.sh

require_root_and_apt
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    echo "== installing slurm-wlm and munge"
    DEBIAN_FRONTEND=noninteractive apt-get install -y slurm-wlm munge >/dev/null
fi
command -v mpirun >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y openmpi-bin libopenmpi-dev >/dev/null

echo "== building fbrl with the mpi feature"
cargo build --release --features mpi --bin fbrl 2>&1 | tail -1
bin="${CARGO_TARGET_DIR:-$repo/target}/release/fbrl"

remove_work=1
start_work /tmp/fbrl-slurm-ddppo.XXXXXX
start_munged

write_slurm_conf fbrlddppo 16827 16828 </dev/null
start_slurm

plugin=pmix
srun --mpi=list 2>&1 | grep -q pmix || plugin=pmi2
echo "== srun's MPI plugin: $plugin"

cat > "$work/cfg.toml" <<CONF
total_steps = 20480
num_envs = 2
num_steps = 64
threads = 1
checkpoint_every = 2
tensorboard = false
[env]
kind = "cartpole"
[policy]
kind = "mlp"
[ppo]
num_minibatches = 2
CONF

echo "== ddppo.sbatch: 1 node x 2 tasks"
export FBRL_BIN="$bin" FBRL_CONFIG="$work/cfg.toml" FBRL_RUN_DIR="$work/run-slurm"
export FBRL_SRUN_MPI=$plugin OMPI_MCA_btl_vader_single_copy_mechanism=none
# Waiting ranks yield the CPU (the test may run with fewer free cores than ranks).
export OMPI_MCA_mpi_yield_when_idle=1
job=$(sbatch --parsable --nodes=1 --ntasks-per-node=2 --chdir="$repo" \
    --output="$work/ddppo-%j.log" "$repo/experiments/cluster/ddppo.sbatch")
deadline=$((SECONDS + 600))
while squeue -h -j "$job" 2>/dev/null | grep -q .; do
    if (( SECONDS > deadline )); then echo "FAIL: the job did not finish within 600 s"; exit 1; fi
    sleep 1
done
cat "$work"/ddppo-*.log
state=$(scontrol show job "$job" 2>/dev/null | sed -n 's/.*JobState=\([A-Z]*\).*/\1/p')
[[ "$state" == COMPLETED ]] || { echo "FAIL: job $job ended $state"; exit 1; }

echo "== the same run under mpirun -np 2"
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np 2 --oversubscribe \
    --bind-to none "$bin" train --distributed mpi --quiet -c "$work/cfg.toml" \
    --run-dir "$work/run-mpirun"

strip() { strip_columns "$1" wall_time_s steps_per_s; }
status=0
if diff <(strip "$work/run-slurm/metrics.csv") <(strip "$work/run-mpirun/metrics.csv") >/dev/null; then
    echo "same: metrics.csv ($(($(wc -l < "$work/run-slurm/metrics.csv") - 1)) rows, timing aside)"
else
    echo "FAIL: metrics.csv differs"
    diff <(strip "$work/run-slurm/metrics.csv") <(strip "$work/run-mpirun/metrics.csv") || true
    status=1
fi
# The weights' hash every rank records in the checkpoint (model.bpk also holds parameter ids,
# which differ between processes).
hashes() {
    python3 - "$1/checkpoint/$(cat "$1/checkpoint/latest")/ranks.json" <<'PY'
import json, sys
print(" ".join(r["weights_hash"] for r in json.load(open(sys.argv[1]))))
PY
}
if [[ "$(hashes "$work/run-slurm")" == "$(hashes "$work/run-mpirun")" ]]; then
    echo "same: the final weights (hashes $(hashes "$work/run-slurm"))"
else
    echo "FAIL: the final weights differ: $(hashes "$work/run-slurm") vs $(hashes "$work/run-mpirun")"
    status=1
fi
[[ $status -eq 0 ]] && echo "PASS: srun --mpi=$plugin and mpirun give the same 2-rank run"
exit $status
