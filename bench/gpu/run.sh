#!/usr/bin/env bash
# On the GPU machine (one call of the device tool): unpack what pack.sh prepared, build the addon against
# PyTorch's LibTorch with CUDA, run the CUDA tests, the GPU benchmark table and the device-memory run.
# Everything is written under $OUT (or ./gpu-out) as it happens, so a call cut off by its time limit still brings
# back what it measured: run.log (all output, the benchmark's and the memory run's logs included), build.log,
# tests.txt, versions.json, results-gpu.json (rewritten after every row), memory.json, and the built addon as a
# prebuild (prebuild.node + prebuild.json) to commit here. That is 8 files, the most the device tool brings back:
# anything more must go into run.log.
# Safe to run on a CPU machine too (the CUDA tests then skip, saying why; HVAE_GPU_BENCH_S=0 skips the benchmark).
#
# Time boxes (seconds; each step is killed at its box, the rest still runs):
#   HVAE_GPU_BENCH_S (300)   bench/run.js --device cuda --only a,b
#   HVAE_GPU_MEMORY_S (120)  bench/memory.js --device cuda over HVAE_GPU_MEMORY_IMAGES (1,000,000) images
#   HVAE_GPU_TESTS_S (120)   the CUDA, bridge, async and precision tests
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1
echo "== machine"; date; uname -a; nvidia-smi || true; nproc; free -g | head -2
if ! command -v node >/dev/null; then
  # Kept in /tmp while the machine stays warm: a second call (train.sh) finds it there.
  if [ ! -x /tmp/nodebin/node ]; then
    echo "== node from .gpu-carry"
    mkdir -p /tmp/nodebin && xz -dc .gpu-carry/node.xz > /tmp/nodebin/node && chmod +x /tmp/nodebin/node
  fi
  export PATH=/tmp/nodebin:$PATH
fi
node --version
if [ ! -d node_modules ] && [ -f .gpu-carry/node_modules.tar.xz ]; then tar -xJf .gpu-carry/node_modules.tar.xz; fi
if [ -f .gpu-carry/built.tar.xz ]; then tar -xJf .gpu-carry/built.tar.xz; fi
if [ -f .gpu-carry/shared.tar.xz ] && [ ! -d ../shared/fixtures ]; then
  mkdir -p /tmp/hvae-shared && tar -xJf .gpu-carry/shared.tar.xz -C /tmp/hvae-shared && export HVAE_SHARED=/tmp/hvae-shared
fi
# FashionMNIST test (bench/run.js scores real images), from pack.sh, as a data root.
[ -d /tmp/hvae-shared/datasets ] && export HVAE_DATA=/tmp/hvae-shared/datasets
PY=${HVAE_PYTHON:-python3}
echo "== python torch"; "$PY" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available(), torch.backends.cudnn.version(), torch.utils.cmake_prefix_path)'
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
export HVAE_PYTHON=$PY
if node scripts/install.js --check; then
  echo "== build skipped: an addon for these sources and this LibTorch already loads"
else
  echo "== build (LibTorch from Python's torch)"
  t0=$(date +%s)
  node node_modules/cmake-js/bin/cmake-js compile > "$OUT/build.log" 2>&1 && node scripts/stamp-build.js >> "$OUT/build.log" 2>&1
  build_rc=$?
  grep -E 'hvae-native:|warning:|error' "$OUT/build.log" | head -40; tail -5 "$OUT/build.log"
  echo "build rc $build_rc, seconds: $(( $(date +%s) - t0 ))"
  if [ "$build_rc" != 0 ]; then
    rm -f build/Release/hvae_native.node
    if [ -f "prebuilds/linux-x64/hvae-native.napi.libtorch-$TORCH_VER.cuda.node" ]; then
      echo "== the build failed: the loader will use the committed prebuild for LibTorch $TORCH_VER (cuda)"
    else
      echo "== the build failed and no prebuild matches PyTorch $TORCH_VER (have: $(ls prebuilds/linux-x64 2>/dev/null | grep '\.node$' | tr '\n' ' '))"
    fi
  else
    # The addon as a relocatable prebuild for this PyTorch, brought back to be committed (bench/GPU.md).
    node scripts/prebuild.js --no-rebuild && for f in prebuilds/linux-x64/hvae-native.napi.libtorch-"$TORCH_VER".cuda.node*; do
      case "$f" in *.json) cp "$f" "$OUT/prebuild.json" ;; *) cp "$f" "$OUT/prebuild.node" ;; esac
    done
  fi
fi
node -e "console.log(JSON.stringify(require('./lib/index.js').versions))" | tee "$OUT/versions.json"
echo "== tests (CUDA enabled)"
# Only what the GPU adds: the CUDA tests, plus the bridge, async and precision tests on this build. The rest of the
# suite needs ../shared in full and Debian's FashionMNIST, which that machine has not; CI runs it on CPU.
HVAE_TEST_CUDA=1 timeout "${HVAE_GPU_TESTS_S:-120}" node node_modules/mocha/bin/mocha.js --no-config --require .test-build/setup.js \
  --timeout 120000 --spec .test-build/13.cuda.test.js --spec .test-build/11.bridge.test.js --spec .test-build/14.precision.test.js \
  --spec .test-build/12.async.test.js > "$OUT/tests.txt" 2>&1
echo "tests rc $?"
grep -E 'passing|failing|pending|✔|[0-9]+\) ' "$OUT/tests.txt" | head -80
if [ "${HVAE_GPU_BENCH_S:-300}" != 0 ]; then
  echo "== benchmarks (time box ${HVAE_GPU_BENCH_S:-300} s)"
  timeout "${HVAE_GPU_BENCH_S:-300}" node bench/run.js --device cuda --only "${HVAE_GPU_BENCH_ONLY:-a,b}" --out "$OUT/results-gpu.json" 2>&1
  echo "bench rc $?"
fi
if [ "${HVAE_GPU_MEMORY_S:-120}" != 0 ]; then
  echo "== memory: ${HVAE_GPU_MEMORY_IMAGES:-1000000} images on CUDA (time box ${HVAE_GPU_MEMORY_S:-120} s)"
  timeout "${HVAE_GPU_MEMORY_S:-120}" node bench/memory.js --device cuda --images "${HVAE_GPU_MEMORY_IMAGES:-1000000}" --batch 2000 \
    > "$OUT/memory.json" 2> /tmp/hvae-memory.log
  echo "memory rc $?"
  tail -3 /tmp/hvae-memory.log; cut -c1-400 "$OUT/memory.json"
fi
echo "== done"; date
