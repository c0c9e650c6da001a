#!/usr/bin/env bash
# Question 4's full profile on one GPU, with the throughput benchmark: the GPU check of issue #5,
# as one command for a machine that has no network and maybe no install of this project.
#
#   benchmarks/gpu_q4_full.sh DATA_ARCHIVE OUT_DIR [PROFILE] [EXTRA build.py OPTIONS...]
#
# DATA_ARCHIVE is a .tar.gz of a data folder in torchvision's layout (FashionMNIST/raw/*-ubyte), e.g.
#   tar -czf .devdata/fashion-mnist.tar.gz -C ../shared/data FashionMNIST/raw
# OUT_DIR receives gpu.txt, throughput.txt, q4.log and results.tar.gz (the store, $STORE or
# /tmp/q4-store; unpack it into results/ and `build.py render --profile full` shows the run). PROFILE defaults to full; smoke
# makes a quick dry run of this script on a CPU.
set -euo pipefail
archive=$1 out=$2 profile=${3:-full}
shift $(( $# < 3 ? $# : 3 ))
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
data=$(mktemp -d)
mkdir -p "$out"
tar -xzf "$archive" -C "$data"
export PYTHONUNBUFFERED=1 PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
} | tee "$out/gpu.txt"

# the store stays on the machine (not in OUT_DIR), so a second call resumes the models a first finished
store=${STORE:-/tmp/q4-store}
"$python" "$here/build.py" run q4 --profile "$profile" --set q4.dataset=fashion-mnist \
  --data-dir "$data" --store "$store" "$@" 2>&1 | tee "$out/q4.log"
tar -czf "$out/results.tar.gz" -C "$store" --exclude=./.work --exclude=./.lock .  # no checkpoints

if [[ $profile == full ]]; then steps=(); else steps=(--steps 1 --warmup 0 --batch 8); fi
"$python" "$here/benchmarks/q4_throughput.py" "${steps[@]}" 2>&1 | tee "$out/throughput.txt"
