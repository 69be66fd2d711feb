#!/usr/bin/env bash
# Scaling of distributed PPO on this machine: env steps/s and time per update of CartPole
# (MLP of width 64 and of width 1024) with 8 envs × 128 steps per update, as
#   single  one process, 8 envs, 2 threads            (fbrl train --threads 2)
#   mpi-1   1 rank  × 8 envs, 1 thread                (mpirun -np 1 … --distributed mpi)
#   mpi-2   2 ranks × 4 envs, 1 thread each           (mpirun -np 2 … --distributed mpi)
# on the CPUs in FBRL_CPUS (default: all; `taskset -c` list), one rank per CPU when there are
# two. Writes results/distributed/scaling.csv; results/distributed/README.md reads it.
#
#   FBRL_CPUS=0,1 bash experiments/cluster/ddppo-scaling.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${CARGO_TARGET_DIR:-target}/release/fbrl"
out=results/distributed
work=$(mktemp -d /tmp/fbrl-scaling.XXXXXX)
trap 'rm -rf "$work"' EXIT
cpus="${FBRL_CPUS:-$(seq -s, 0 $(( $(nproc) - 1 )))}"
updates="${FBRL_UPDATES:-20}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
ncpus=$(( $(tr -cd , <<<"$cpus" | wc -c) + 1 ))
if (( ncpus < 2 )); then
    # Two ranks on one CPU: a waiting rank must yield it to the other.
    export OMPI_MCA_mpi_yield_when_idle=1
fi
echo "model,setup,ranks,envs_per_rank,threads_per_process,cpus,parameters,updates,time_per_update_s,env_steps_per_s,exchange_s_per_update,exchange_mb_per_update" > "$work/scaling.csv"

measure() { # model hidden setup
    local model=$1 hidden=$2 setup=$3 ranks envs threads log run
    case $setup in
        single) ranks=1; envs=8; threads=2 ;;
        mpi-1) ranks=1; envs=8; threads=1 ;;
        mpi-2) ranks=2; envs=4; threads=1 ;;
    esac
    run="$work/$model-$setup"
    log="$work/$model-$setup.log"
    local args=(train --quiet --env cartpole --policy mlp --hidden "$hidden" --num-envs "$envs"
        --num-steps 128 --num-minibatches 4 --total-steps $(( (updates + 1) * 8 * 128 ))
        --threads "$threads" --checkpoint-every 0 --tensorboard false --run-dir "$run")
    if [[ $setup == single ]]; then
        taskset -c "$cpus" "$bin" "${args[@]}" 2>"$log"
    else
        taskset -c "$cpus" mpirun -np "$ranks" --oversubscribe --bind-to none "$bin" "${args[@]}" \
            --distributed mpi 2>"$log"
    fi
    python3 - "$run/metrics.csv" "$log" "$model,$setup,$ranks,$envs,$threads,$ncpus" \
        "$hidden" >>"$work/scaling.csv" <<'PY'
import csv, re, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
log = open(sys.argv[2]).read()
# Time per update: the median difference of wall_time_s, the first update (warm-up) left out.
walls = [float(r["wall_time_s"]) for r in rows]
dt = statistics.median(b - a for a, b in zip(walls[1:], walls[2:]))
steps = 8 * 128
h = int(sys.argv[4])
# MLP actor-critic on CartPole (4 observations, 2 actions): 4→h→h, policy head h→2, value h→1.
params = (4 * h + h) + (h * h + h) + (h * 2 + 2) + (h + 1)
m = re.search(r"exchanges: (\d+) calls, ([\d.]+) MB sent, ([\d.]+) s in them", log)
n = len(rows)
ex_s = float(m.group(3)) / n if m else 0.0
ex_mb = float(m.group(2)) / n if m else 0.0
print(f"{sys.argv[3]},{params},{n},{dt:.4f},{steps / dt:.0f},{ex_s:.4f},{ex_mb:.2f}")
PY
    tail -1 "$work/scaling.csv"
}

for spec in mlp64:64 mlp1024:1024; do
    for setup in single mpi-1 mpi-2; do
        measure "${spec%%:*}" "${spec##*:}" "$setup"
    done
done
mkdir -p "$out"
cp "$work/scaling.csv" "$out/scaling.csv"
echo "wrote $out/scaling.csv"
