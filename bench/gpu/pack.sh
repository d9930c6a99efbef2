#!/usr/bin/env bash
# Prepares what the GPU machine lacks, on this (CPU) machine, under .gpu-carry/ (ignored by git; pass it in `carry`):
# a compressed Node.js binary (the H100 machine has none), the runtime node_modules, the compiled TypeScript and
# tests, the part of ../shared the GPU checks read (the grey fixtures for test/13.cuda and bench/run.js, MNIST test for
# the end-to-end benchmark: ../shared lies beside the checkout and does not travel) and FashionMNIST test (bench/run.js
# scores real images; the machine has no Debian datasets). Then it prints what would travel against the 64 MiB.
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
FASHION=${HVAE_FASHION_DIR:-/usr/share/datasets/fashion-mnist}
staging=$(mktemp -d)
mkdir -p "$staging/datasets/fashion-mnist"
cp "$FASHION"/t10k-images-idx3-ubyte.gz "$FASHION"/t10k-labels-idx1-ubyte.gz "$staging/datasets/fashion-mnist/"
(cd "$SHARED" && tar -cf - fixtures/grey/weights.safetensors fixtures/grey/inputs.safetensors fixtures/grey/noise.safetensors \
  fixtures/grey/outputs.safetensors fixtures/grey/outputs.json data/mnist/t10k-images-idx3-ubyte.gz) | tar -xf - -C "$staging"
tar -cJf .gpu-carry/shared.tar.xz -C "$staging" .
rm -rf "$staging"
# Build tools: the H100 machine of stop 15 had cmake 4.4.3, ninja and g++ 13.3 (bench/GPU.md), so they are no longer
# carried by default; HVAE_GPU_TOOLS=1 adds cmake and ninja from their pip wheels (about 7 MiB compressed), which
# run.sh would put on PATH after the machine's own.
if [ "${HVAE_GPU_TOOLS:-0}" != 0 ]; then
  tools=$(mktemp -d)
  if pip download --quiet --no-deps --only-binary=:all: -d "$tools" cmake ninja >/dev/null 2>&1; then
    mkdir -p "$tools/x" "$tools/t/bin"
    for w in "$tools"/*.whl; do unzip -q -o "$w" -d "$tools/x"; done
    cp "$tools"/x/cmake/data/bin/cmake "$tools/t/bin/"
    cp "$tools"/x/ninja/data/bin/ninja "$tools/t/bin/" 2>/dev/null || true
    mkdir -p "$tools/t/share" && for d in "$tools"/x/cmake/data/share/cmake-*; do
      mkdir -p "$tools/t/share/$(basename "$d")" && cp -r "$d/Modules" "$d/Templates" "$tools/t/share/$(basename "$d")/"
    done
    tar -cf - -C "$tools/t" . | xz -T2 -9 > .gpu-carry/tools.tar.xz
  else
    echo "pack: no cmake/ninja wheels from pip; the GPU machine must have its own"
  fi
  rm -rf "$tools"
fi
# No CUDA addon is carried any more: prebuilds/linux-x64/ holds a relocatable one for PyTorch 2.14.1 (CUDA 13), made
# by scripts/check-libtorch2.sh, which the loader uses if the machine cannot build and its PyTorch is that version.
du -sh .gpu-carry/* 2>/dev/null
tracked=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
carry=$(du -cb .gpu-carry/* | tail -1 | cut -f1)
total=$(( (tracked + carry) / 1048576 ))
echo "would travel: tracked files $(( tracked / 1048576 )) MiB + .gpu-carry $(( carry / 1048576 )) MiB = ${total} MiB (limit 64 MiB)"
if [ "$total" -ge 64 ]; then
  echo "over the limit: take the training state (and if need be the bundled model) out of the tree for this call"
  echo "(bench/GPU.md, 'Fitting in 64 MiB')"
fi
echo "carry: [\".gpu-carry\"]  then run: bash bench/gpu/run.sh"
