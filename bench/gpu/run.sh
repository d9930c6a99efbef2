#!/usr/bin/env bash
# On the GPU machine (one call of the device tool): unpack what pack.sh prepared, build the addon against
# PyTorch's LibTorch with CUDA, run the test suite with CUDA tests enabled, then the GPU benchmarks.
# Output goes to $OUT (or ./gpu-out). Safe to run on a CPU machine too (CUDA tests then skip, saying why).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1
echo "== machine"; date; uname -a; nvidia-smi || true; nproc; free -g | head -2
if ! command -v node >/dev/null; then
  echo "== node from .gpu-carry"
  mkdir -p /tmp/nodebin && xz -dc .gpu-carry/node.xz > /tmp/nodebin/node && chmod +x /tmp/nodebin/node
  export PATH=/tmp/nodebin:$PATH
fi
node --version
if [ ! -d node_modules ] && [ -f .gpu-carry/node_modules.tar.xz ]; then tar -xJf .gpu-carry/node_modules.tar.xz; fi
if [ -f .gpu-carry/built.tar.xz ]; then tar -xJf .gpu-carry/built.tar.xz; fi
if [ -f .gpu-carry/shared.tar.xz ] && [ ! -d ../shared/fixtures ]; then
  mkdir -p /tmp/hvae-shared && tar -xJf .gpu-carry/shared.tar.xz -C /tmp/hvae-shared && export HVAE_SHARED=/tmp/hvae-shared
fi
PY=${HVAE_PYTHON:-python3}
echo "== python torch"; "$PY" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available(), torch.utils.cmake_prefix_path)'
command -v cmake || "$PY" -m pip show cmake 2>/dev/null | head -2 || echo "no cmake on PATH"
echo "== build (LibTorch from Python's torch)"
export HVAE_PYTHON=$PY
t0=$(date +%s)
node node_modules/cmake-js/bin/cmake-js compile 2>&1 | tail -25
echo "build seconds: $(( $(date +%s) - t0 ))"
node -e "console.log(JSON.stringify(require('./build/Release/hvae_native.node').versions()))" | tee "$OUT/versions.json"
echo "== tests (CUDA enabled)"
# Only what the GPU adds: the CUDA tests, plus the bridge and async tests on this build. The rest of the suite needs
# ../shared in full and Debian's FashionMNIST, which that machine has not; CI runs it on CPU.
HVAE_TEST_CUDA=1 node node_modules/mocha/bin/mocha.js --no-config --require .test-build/setup.js --timeout 120000 --spec .test-build/13.cuda.test.js --spec .test-build/11.bridge.test.js --spec .test-build/14.precision.test.js \
  --spec .test-build/12.async.test.js 2>&1 | tail -60 | tee "$OUT/tests.txt"
if [ -f bench/run.js ]; then
  echo "== benchmarks"
  node bench/run.js --device cuda --out "$OUT/results-gpu.json" 2>&1 | tail -60
fi
echo "== done"; date
