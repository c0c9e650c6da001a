#!/usr/bin/env bash
# The full profile of every experiment on one GPU machine, with Q4's throughput benchmark, as one command
# for a machine that has no network and maybe no install of this project; the results come back as a bundle.
#
#   benchmarks/gpu_full.sh DATA_ARCHIVE OUT_DIR [PROFILE [build.py run OPTIONS...]]
#   benchmarks/gpu_full.sh .devdata/data.tar.gz out full --set q4.dataset=fashion-mnist   # without SVHN
#
# DATA_ARCHIVE is a .tar.gz of a data folder in torchvision's layout (MNIST/raw, and SVHN or FashionMNIST/raw
# for Q4), e.g.  tar -czf .devdata/data.tar.gz -C ../shared/data MNIST/raw FashionMNIST/raw
# OUT_DIR receives gpu.txt, build.log and cpu.log, results.tar.gz (a bundle of the results finished so far:
# `build.py import OUT_DIR/results.tar.gz` brings them into a store, or commit it as
# experiments/reference/full.tar.gz) and, once Q4 is done, throughput.txt and (all four done, full profile)
# targets.txt, the study against issue #24's targets (benchmarks/gpu_study.py). PROFILE defaults to full; smoke
# makes a dry run on a CPU (timing LeNet-5 alone). Exit status 0: every experiment is in the bundle; 3: some
# are not yet (run the same command again to resume them); 1: an experiment failed.
#
# Where the work goes: Q3 and Q4 train on the GPU, one unit at a time, so Q4's timings are its own. Q1 and
# Q2 are float64 linear algebra that the CPU build already runs in full: they run beside them on the CPU
# cores the GPU work does not use (with 8 cores or more; 4 are kept for the GPU's feeder), into a store of
# their own (each build holds its store's lock), imported into the GPU store at the end.
#
# BUDGET_S (default 3600) is the seconds this call may take: Q4 and the CPU jobs are interrupted in time to
# export what is done. Q3 gets Q3_LIMIT_S (default 120) on the GPU before it moves to the CPU cores. The
# stores stay on the machine (STORE, default /tmp/full-store; not OUT_DIR), so running the same command
# again resumes: Q4 after its last finished epoch, everything finished as "up to date".
set -euo pipefail
start=$SECONDS
archive=$1 out=$2 profile=${3:-full}
shift $(( $# < 3 ? $# : 3 ))
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
budget=${BUDGET_S:-3600}
store=${STORE:-/tmp/full-store}
cpu_store=$store-cpu
data=$store-data-$(sha256sum "$archive" | cut -c1-12)  # another archive unpacks afresh
mkdir -p "$out" "$data"
[[ -e $data/.unpacked ]] || { tar -xzf "$archive" -C "$data" && touch "$data/.unpacked"; }
export PYTHONUNBUFFERED=1 PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
opts=(--profile "$profile" --data-dir "$data" "$@")
# what status (which takes no run options) judges the results by: the --set, --seed and --strict-versions given
args=("$@") judged=()
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --set | -s | --seed)
      (( i + 1 < ${#args[@]} )) || { echo "${args[i]} needs a value" >&2; exit 2; }
      judged+=("${args[i]}" "${args[i + 1]}") i=$((i + 1)) ;;
    --set=* | -s?* | --seed=* | --strict-versions | --no-strict-versions) judged+=("${args[i]}") ;;
  esac
done
build=("$python" "$here/build.py")
left() { local n=$(( budget - (SECONDS - start) - ${1:-0} )); echo $(( n > 1 ? n : 1 )); }
log() { tee -a "$out/build.log"; }

# this process's CPUs (a container's may not start at 0): the first 4 feed the GPU, the rest run Q1 and Q2
read -r gpu_list cpu_list < <("$python" -c 'import os
c = sorted(os.sched_getaffinity(0))
print(",".join(map(str, c[:4])), ",".join(map(str, c[4:]))) if len(c) >= 8 else print()')
gpu_cores=() cpu_cores=()
if [[ -n $cpu_list ]]; then gpu_cores=(taskset -c "$gpu_list") cpu_cores=(taskset -c "$cpu_list"); fi
# SIGINT stops a build like Ctrl-C: finished units and the last finished epoch stay for the next call
cpu() { timeout -s INT "$(left 30)" "${cpu_cores[@]}" "${build[@]}" run "$@" --device cpu --store "$cpu_store" \
  "${opts[@]}" >>"$out/cpu.log" 2>&1; }
gpu() { timeout -s INT "$1" "${gpu_cores[@]}" "${build[@]}" run "${@:2}" --device "$device" --store "$store" \
  "${opts[@]}"; }

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  echo "cpus $(nproc); GPU work on ${gpu_list:-all}; CPU work on ${cpu_list:-all}"
} | tee "$out/gpu.txt"
device=$("$python" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")

failed=0 stored=()  # stored: what is in $store, to export
stopped() {  # a build's exit: 124 is the budget's timeout (resumable), anything else a failure
  echo "$1 stopped (exit $2): $([[ $2 == 124 ]] && echo "run the same command again to resume" || echo "see the log")"
  [[ $2 == 124 ]] || failed=1
}
cpu q1 q2 &
cpu_jobs=("$!:q1 q2")
{
  if gpu "${Q3_LIMIT_S:-120}" q3; then
    stored+=(q3)
  else
    echo "q3 on $device stopped (exit $?; 124: Q3_LIMIT_S ran out): it runs on the CPU instead (cpu.log)"
    rm -rf "$store/.work/$profile"/q3-*  # nothing will resume from the GPU's partial run
    cpu q3 &
    cpu_jobs+=("$!:q3")
  fi
  gpu "$(left 40)" q4 && stored+=(q4) || stopped q4 $?
} > >(log) 2>&1

for job in "${cpu_jobs[@]}"; do  # each on its own: `wait` of several returns the last one's status only
  wait "${job%%:*}" || stopped "${job#*:} on the CPU" $? > >(log)
done
for name in q1 q2 q3; do  # what the CPU finished joins the GPU store, each on its own
  if [[ " ${stored[*]-} " != *" $name "* ]] &&
    "${build[@]}" export --profile "$profile" --store "$cpu_store" "$name" -o "$cpu_store.tar.gz" --force &&
    "${build[@]}" import "$cpu_store.tar.gz" --store "$store"; then
    stored+=("$name")
  fi > >(log) 2>&1
done
if (( ${#stored[@]} )); then
  "${build[@]}" export --profile "$profile" --store "$store" "${stored[@]}" -o "$out/results.tar.gz" --force 2>&1 | log
fi
"${build[@]}" status --profile "$profile" --data-dir "$data" "${judged[@]}" --store "$store" 2>&1 | log || true

steps=(--levers each --seeds 1)  # each model's own images/s, as the experiment trains it
if [[ $profile == full ]]; then steps+=(--steps 30 --warmup 5); else steps+=(--steps 1 --warmup 0 --batch 8 --models lenet5); fi
if [[ " ${stored[*]-} " == *" q4 "* ]] && (( $(left) > 45 )); then  # Q4's training comes first
  timeout "$(left 15)" "$python" "$here/benchmarks/q4_levers.py" "${steps[@]}" 2>&1 |
    tee "$out/throughput.txt" || true
fi
if [[ $profile == full ]] && (( ${#stored[@]} == 4 )); then  # the study against issue #24's targets
  "$python" "$here/benchmarks/gpu_study.py" "$out/results.tar.gz" 2>&1 | tee "$out/targets.txt" || true
fi
if (( failed )); then exit 1; fi
if (( ${#stored[@]} < 4 )); then
  echo "the bundle holds ${stored[*]:-nothing} so far: run the same command again to finish" | log
  exit 3
fi
