#!/usr/bin/env bash
# DD-PPO on one machine with mpirun: FBRL_RANKS ranks (default 2) of
# experiments/configs/ddppo_cartpole.toml (2 envs per rank, 1 thread each), one rank per core;
# then the same budget in one process with all the envs, for comparison. As root, Open MPI
# needs OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 (set here).
#
#   bash experiments/cluster/ddppo-local.sh            # runs/ddppo-local/{mpi,single}
#   # fewer free cores than ranks: no binding, and waiting ranks yield the CPU
#   FBRL_MPIRUN_ARGS="--bind-to none --mca mpi_yield_when_idle 1" bash experiments/cluster/ddppo-local.sh
#   mpirun -np 2 target/release/fbrl train --distributed mpi --resume runs/ddppo-local/mpi
set -euo pipefail
cd "$(dirname "$0")/../.."
ranks="${FBRL_RANKS:-2}"
out="${FBRL_RUNS_DIR:-runs/ddppo-local}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Containers forbid the cross-memory attach of Open MPI's shared-memory transport.
export OMPI_MCA_btl_vader_single_copy_mechanism=none
cargo build --release --features mpi --bin fbrl
bin="${CARGO_TARGET_DIR:-target}/release/fbrl"
mkdir -p "$out"
rm -rf "$out/mpi" "$out/single"
echo "== $ranks ranks (mpirun)"
# shellcheck disable=SC2086
mpirun -np "$ranks" --oversubscribe ${FBRL_MPIRUN_ARGS:---bind-to core} "$bin" train --distributed mpi \
    -c experiments/configs/ddppo_cartpole.toml --run-dir "$out/mpi" --quiet --log-every 50
echo "== one process with the envs of all ranks"
envs=$(( ranks * $(sed -n 's/^num_envs = //p' experiments/configs/ddppo_cartpole.toml) ))
"$bin" train -c experiments/configs/ddppo_cartpole.toml --num-envs "$envs" --seq-len 128 \
    --threads "$ranks" --run-dir "$out/single" --quiet --log-every 50
for run in mpi single; do
    python3 - "$out/$run/metrics.csv" "$run" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
tail = rows[-max(1, len(rows) // 10):]
ret = [float(r["return_mean"]) for r in tail if r["return_mean"] not in ("", "nan", "NaN")]
print(f"{sys.argv[2]:>6}: {len(rows)} updates, {rows[-1]['env_steps']} env steps, "
      f"mean return over the last 10 % of updates {sum(ret) / max(1, len(ret)):.1f}")
PY
done
