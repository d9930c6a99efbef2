#!/usr/bin/env bash
# Prepares the second GPU call, resuming the bundled model's training run on CUDA (bench/gpu/train.sh): FashionMNIST
# train (26 MiB) under .gpu-train/ (ignored by git; pass it in `carry`). The training state itself travels as a
# tracked file (models/training/last.safetensors, 30 MiB). Node, node_modules and the CUDA build are NOT carried:
# train.sh runs on the machine that run.sh has just set up, kept warm by calling at once (bench/GPU.md). To fit in
# 64 MiB the bundled model (10 MiB, not read by training) must be untracked for the call:
#   git rm -q --cached models/fashionmnist.safetensors && echo models/fashionmnist.safetensors >> .git/info/exclude
#   ... run(carry: [".gpu-train"], command: "bash bench/gpu/train.sh SECONDS", timeout_s: SECONDS + 100) ...
#   SECONDS = status.budget_left_s - 150, at most 420 (bench/GPU.md, "How to run")
#   git reset -q -- models/fashionmnist.safetensors && sed -i '\#^models/fashionmnist.safetensors$#d' .git/info/exclude
set -euo pipefail
cd "$(dirname "$0")/../.."
FASHION=${HVAE_FASHION_DIR:-/usr/share/datasets/fashion-mnist}
rm -rf .gpu-train && mkdir -p .gpu-train
cp "$FASHION"/train-images-idx3-ubyte.gz "$FASHION"/train-labels-idx1-ubyte.gz .gpu-train/
du -sh .gpu-train/* models/training/last.safetensors
tracked=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
carry=$(du -cb .gpu-train/* | tail -1 | cut -f1)
total=$(( (tracked + carry) / 1048576 ))
echo "would travel: tracked files $(( tracked / 1048576 )) MiB + .gpu-train $(( carry / 1048576 )) MiB = ${total} MiB (limit 64 MiB)"
[ "$total" -lt 64 ] || echo "over the limit: untrack models/fashionmnist.safetensors for the call (see the header of this script)"
