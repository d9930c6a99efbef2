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
echo "== build tools"
if [ -f .gpu-carry/tools.tar.xz ] && { ! command -v cmake >/dev/null || ! { command -v ninja || command -v make; } >/dev/null; }; then
  echo "cmake or a build tool is missing: adding the carried cmake/ninja to PATH (after the machine's own)"
  mkdir -p /tmp/hvae-tools && tar -xJf .gpu-carry/tools.tar.xz -C /tmp/hvae-tools && export PATH=$PATH:/tmp/hvae-tools/bin
fi
for t in cmake ninja make g++ c++ nvcc; do printf '%s: ' "$t"; command -v "$t" || echo "absent"; done
cmake --version 2>/dev/null | head -1; g++ --version 2>/dev/null | head -1
TORCH_LIB=$("$PY" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)
TORCH_VER=$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null)
# Harmless for a local build (its RUNPATH names the wheel's lib/); the committed prebuild needs none of it either.
[ -n "$TORCH_LIB" ] && export LD_LIBRARY_PATH=$TORCH_LIB:${LD_LIBRARY_PATH:-}
echo "== build (LibTorch from Python's torch)"
export HVAE_PYTHON=$PY
t0=$(date +%s)
node node_modules/cmake-js/bin/cmake-js compile > "$OUT/build.log" 2>&1
build_rc=$?
grep -E 'hvae-native:|warning:|error' "$OUT/build.log" | head -40; tail -5 "$OUT/build.log"
echo "build rc $build_rc, seconds: $(( $(date +%s) - t0 ))"
if [ "$build_rc" != 0 ]; then
  rm -f build/Release/hvae_native.node
  if [ -f "prebuilds/linux-x64/hvae-native.napi.libtorch-$TORCH_VER.cuda.node" ]; then
    # Relocatable: the loader finds this Python's torch (HVAE_PYTHON) and loads its libraries before the addon.
    echo "== the build failed: the loader will use the committed prebuild for LibTorch $TORCH_VER (cuda)"
  else
    echo "== the build failed and no prebuild matches PyTorch $TORCH_VER (have: $(ls prebuilds/linux-x64 2>/dev/null | grep '\.node' | tr '\n' ' '))"
  fi
fi
node -e "console.log(JSON.stringify(require('./lib/index.js').versions))" | tee "$OUT/versions.json"
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
