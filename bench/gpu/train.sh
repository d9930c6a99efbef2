#!/usr/bin/env bash
# Second GPU call, on the machine run.sh has just set up (node in /tmp/nodebin, node_modules and the CUDA build kept
# in the ignored folders while the machine is warm): resumes the bundled model's training run on CUDA for SECONDS
# (default 420), stops it with SIGINT (it finishes the step and saves), and sends the state back in 15 MiB parts:
#   $OUT/state.tar.part-aa, -ab, ...  (models/training: last.safetensors, best.safetensors when this call made a new
#   best, metrics.jsonl, train.log)
# Back on the CPU machine: cat <files_at>/state.tar.part-* | tar -x -C models/training
# Then follow models/README.md (record the run; node scripts/bundle-model.js if the best epoch changed).
set -uo pipefail
cd "$(dirname "$0")/../.."
SECONDS_BOX=${1:-420}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/train.log") 2>&1
[ -x /tmp/nodebin/node ] && export PATH=/tmp/nodebin:$PATH
command -v node >/dev/null || { echo "train.sh: no node here: run bench/gpu/run.sh first on this (warm) machine"; exit 1; }
[ -d node_modules ] || { echo "train.sh: no node_modules: run bench/gpu/run.sh first on this (warm) machine"; exit 1; }
[ -f lib/cli.js ] || { [ -f .gpu-carry/built.tar.xz ] && tar -xJf .gpu-carry/built.tar.xz; }
PY=${HVAE_PYTHON:-python3}
TORCH_LIB=$("$PY" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)
[ -n "$TORCH_LIB" ] && export LD_LIBRARY_PATH=$TORCH_LIB:${LD_LIBRARY_PATH:-}
export HVAE_PYTHON=$PY
mkdir -p /tmp/hvae-train-data/fashion-mnist
cp .gpu-train/*.gz /tmp/hvae-train-data/fashion-mnist/ 2>/dev/null || true
export HVAE_DATA=/tmp/hvae-train-data
DEVICE=${HVAE_TRAIN_DEVICE:-cuda}  # cpu: a dry run of this script on a CPU machine
# The run's arithmetic (models/README.md records which epochs ran in which): bfloat16 mixed precision since epoch 28.
PRECISION=${HVAE_TRAIN_PRECISION:-bfloat16}
node -e "const v = require('./lib/index.js').versions; console.log(JSON.stringify(v)); if (!v.cuda && process.argv[1] !== 'cpu') process.exit(1)" "$DEVICE" || { echo "train.sh: the loaded addon has no CUDA"; exit 1; }
touch /tmp/train-start
tail -2 models/training/metrics.jsonl | cut -c1-200
echo "== training on $DEVICE in $PRECISION for ${SECONDS_BOX} s"
# SIGINT: the trainer ends the current step, saves last.safetensors and exits; -k: killed 90 s later if it has not.
timeout -s INT -k 90 "$SECONDS_BOX" node lib/cli.js train --data FashionMNIST:train --out models/training --epochs 1000 \
  --images-every 0 --resume --device "$DEVICE" --precision "$PRECISION"
echo "train rc $?"
tail -5 models/training/metrics.jsonl | cut -c1-300
files="last.safetensors metrics.jsonl train.log"
[ models/training/best.safetensors -nt /tmp/train-start ] && files="$files best.safetensors"
tar -cf - -C models/training $files | split -b 15M - "$OUT/state.tar.part-"
ls -la "$OUT"
