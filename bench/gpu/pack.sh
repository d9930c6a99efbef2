#!/usr/bin/env bash
# Prepares what the GPU machine lacks, on this (CPU) machine, under .gpu-carry/ (ignored by git; pass it in `carry`):
# a compressed Node.js binary, the runtime node_modules, the compiled TypeScript and tests, and the part of ../shared
# the GPU checks read (the grey fixtures for test/13.cuda and bench/run.js, MNIST test for the end-to-end benchmark):
# ../shared lies beside the checkout and does not travel. Then it prints what would travel against the tool's 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${HVAE_SHARED:-$(cd .. && pwd)/shared}
npx tsc -p tsconfig.json
npx tsc -p tsconfig.test.json
rm -rf .gpu-carry && mkdir -p .gpu-carry
node_bin=$(command -v node)
xz -T2 -6 -c "$node_bin" > .gpu-carry/node.xz
tar -cJf .gpu-carry/node_modules.tar.xz --exclude='node_modules/typescript' --exclude='node_modules/.cache' node_modules
tar -cJf .gpu-carry/built.tar.xz lib .test-build
tar -cJf .gpu-carry/shared.tar.xz -C "$SHARED" fixtures/grey/weights.safetensors fixtures/grey/inputs.safetensors \
  fixtures/grey/noise.safetensors fixtures/grey/outputs.safetensors fixtures/grey/outputs.json data/mnist/t10k-images-idx3-ubyte.gz
du -sh .gpu-carry/*
tracked=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
carry=$(du -cb .gpu-carry/* | tail -1 | cut -f1)
total=$(( (tracked + carry) / 1048576 ))
echo "would travel: tracked files $(( tracked / 1048576 )) MiB + .gpu-carry $(( carry / 1048576 )) MiB = ${total} MiB (limit 64 MiB)"
if [ "$total" -ge 64 ]; then
  echo "over the limit: take the training state out of the tree for this call (bench/GPU.md, 'Fitting in 64 MiB')"
fi
echo "carry: [\".gpu-carry\"]  then run: bash bench/gpu/run.sh"
