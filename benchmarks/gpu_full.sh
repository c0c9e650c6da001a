#!/usr/bin/env bash
# The full profile of every experiment on one GPU machine, with Q4's throughput benchmark, as one command
# for a machine that has no network and maybe no install of this project; the results come back as a bundle.
#
#   benchmarks/gpu_full.sh DATA_ARCHIVE OUT_DIR [PROFILE] [EXTRA build.py OPTIONS...]
#
# DATA_ARCHIVE is a .tar.gz of a data folder in torchvision's layout (MNIST/raw and FashionMNIST/raw), e.g.
#   tar -czf .devdata/data.tar.gz -C ../shared/data MNIST/raw FashionMNIST/raw
# OUT_DIR receives gpu.txt, build.log, cpu.log, throughput.txt and results.tar.gz, a bundle of the results:
# `build.py import OUT_DIR/results.tar.gz` brings them into a store, or commit it as
# experiments/reference/full.tar.gz. PROFILE defaults to full; smoke makes a dry run on a CPU.
#
# Where the work goes: Q3 and Q4 train on the GPU, one unit at a time, so Q4's timings are its own. Q1 and
# Q2 are float64 linear algebra that the CPU build already runs in full: they run beside them on the CPU
# cores the GPU work does not use, into a store of their own (each build holds its store's lock), which is
# imported into the GPU store at the end.
#
# BUDGET_S (default 3600) is the seconds this call may take: Q4 is interrupted in time to export what is
# done. Q3 gets Q3_LIMIT_S (default 120) on the GPU before it moves to the CPU cores. The stores stay on
# the machine (/tmp, not OUT_DIR), so running the same command again resumes: Q4 after its last finished
# epoch, everything finished as "up to date".
set -euo pipefail
start=$SECONDS
archive=$1 out=$2 profile=${3:-full}
shift $(( $# < 3 ? $# : 3 ))
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
budget=${BUDGET_S:-3600}
store=${STORE:-/tmp/full-store}
cpu_store=$store-cpu
data=$store-data
mkdir -p "$out" "$data"
[[ -e $data/.unpacked ]] || { tar -xzf "$archive" -C "$data" && touch "$data/.unpacked"; }
export PYTHONUNBUFFERED=1 PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
opts=(--profile "$profile" --set q4.dataset=fashion-mnist --data-dir "$data" "$@")
build=("$python" "$here/build.py")
left() { local n=$(( budget - (SECONDS - start) - ${1:-0} )); echo $(( n > 1 ? n : 1 )); }

cores=$(nproc)
gpu_cores=() cpu_cores=()
if (( cores >= 8 )); then  # the GPU's feeder threads keep 4 cores to themselves
  gpu_cores=(taskset -c 0-3) cpu_cores=(taskset -c "4-$(( cores - 1 ))")
fi
cpu() { "${cpu_cores[@]}" "${build[@]}" run "$@" --device cpu --store "$cpu_store" "${opts[@]}"; }

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  echo "cores $cores"
} | tee "$out/gpu.txt"
device=$("$python" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")

on_cpu=(q1 q2) stored=()  # what runs on the CPU; what is in $store at the end
cpu "${on_cpu[@]}" >>"$out/cpu.log" 2>&1 &
cpu_jobs=($!)
{
  if timeout -s INT "${Q3_LIMIT_S:-120}" "${gpu_cores[@]}" "${build[@]}" run q3 --device "$device" --store "$store" "${opts[@]}"; then
    stored+=(q3)
  else
    echo "q3 failed or outran Q3_LIMIT_S on $device: it runs on the CPU instead (cpu.log)"
    on_cpu+=(q3)
    cpu q3 >>"$out/cpu.log" 2>&1 &
    cpu_jobs+=($!)
  fi
  # SIGINT stops Q4 like Ctrl-C: finished units and the last finished epoch stay for the next call
  if timeout -s INT "$(left 40)" "${gpu_cores[@]}" "${build[@]}" run q4 --device "$device" \
    --store "$store" "${opts[@]}"; then
    stored+=(q4)
  else
    echo "q4 stopped (exit $?): run the same command again to resume"
  fi
} > >(tee -a "$out/build.log") 2>&1

status=0
wait "${cpu_jobs[@]}" || status=$?
if "${build[@]}" export --profile "$profile" --store "$cpu_store" "${on_cpu[@]}" -o "$cpu_store.tar.gz" &&
  "${build[@]}" import "$cpu_store.tar.gz" --store "$store"; then
  stored+=("${on_cpu[@]}")
fi > >(tee -a "$out/build.log") 2>&1
"${build[@]}" export --profile "$profile" --store "$store" "${stored[@]}" -o "$out/results.tar.gz" || status=$?
"${build[@]}" status "${opts[@]}" --store "$store" > >(tee -a "$out/build.log") 2>&1 || true

if [[ $profile == full ]]; then steps=(--steps 30 --warmup 5); else steps=(--steps 1 --warmup 0 --batch 8); fi
if [[ " ${stored[*]} " == *" q4 "* ]] && (( $(left) > 45 )); then  # Q4 first
  timeout "$(left 15)" "$python" "$here/benchmarks/q4_throughput.py" "${steps[@]}" 2>&1 |
    tee "$out/throughput.txt" || true
fi
exit "$status"
