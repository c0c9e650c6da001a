#!/usr/bin/env bash
# The full profile of every experiment on one GPU, with Q4's throughput benchmark, as one command for a
# machine that has no network and maybe no install of this project; the results come back as a bundle.
#
#   benchmarks/gpu_full.sh DATA_ARCHIVE OUT_DIR [PROFILE] [EXTRA build.py OPTIONS...]
#
# DATA_ARCHIVE is a .tar.gz of a data folder in torchvision's layout (MNIST/raw and FashionMNIST/raw), e.g.
#   tar -czf .devdata/data.tar.gz -C ../shared/data MNIST/raw FashionMNIST/raw
# OUT_DIR receives gpu.txt, throughput.txt, build.log and results.tar.gz, a bundle of the results:
# `build.py import OUT_DIR/results.tar.gz` brings them into a store, or commit it as
# experiments/reference/full.tar.gz. PROFILE defaults to full; smoke makes a dry run on a CPU.
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

# the store stays on the machine (not in OUT_DIR), so a second call resumes the units a first finished
store=${STORE:-/tmp/full-store}
"$python" "$here/build.py" run --profile "$profile" --set q4.dataset=fashion-mnist \
  --data-dir "$data" --store "$store" "$@" 2>&1 | tee "$out/build.log"
"$python" "$here/build.py" export --profile "$profile" --store "$store" -o "$out/results.tar.gz"

if [[ $profile == full ]]; then steps=(); else steps=(--steps 1 --warmup 0 --batch 8); fi
"$python" "$here/benchmarks/q4_throughput.py" "${steps[@]}" 2>&1 | tee "$out/throughput.txt"
