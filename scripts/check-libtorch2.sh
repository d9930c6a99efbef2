#!/usr/bin/env bash
# Builds the addon against current LibTorch 2.x releases (the C++ library inside PyTorch wheels), in a throwaway git
# worktree, so that the 2.x side of the code is compiled and tested without a GPU machine:
#   - a CPU wheel: build, then the whole test suite on that build;
#   - a CUDA wheel: build and link only (its CUDA libraries come from other wheels and are not loaded here). This is
#     the build the GPU machine does, through the same CMake path (a CUDA LibTorch imported without the toolkit).
#     Where a Python has that wheel installed with its nvidia-* libraries (HVAE_TORCH_CUDA_PYTHON), the build is made
#     against that install instead, and the whole test suite runs on it (on the CPU: the CUDA build's CPU paths,
#     and its typed errors for CUDA requests on a machine without a GPU).
# Each build then becomes a relocatable prebuild (scripts/prebuild.js), which is loaded from a fresh process with
# build/ removed, the loader finding its LibTorch through LIBTORCH or a Python's torch package and loading it first;
# the parity tests run on it. HVAE_TORCH2_PREBUILDS=1 copies those prebuilds into the checkout's prebuilds/.
# The checkout's own build/, lib/ and prebuilds are not touched. The worktree holds the working tree as it is now,
# uncommitted edits included.
#
#   bash scripts/check-libtorch2.sh
#   HVAE_TORCH_CPU_WHEEL=/path/torch-2.x+cpu.whl HVAE_TORCH_CUDA_WHEEL=/path/torch-2.x.whl bash scripts/check-libtorch2.sh
#
# Wheels are looked for in $HVAE_TORCH_*_WHEEL, then in pip's find-links folders, then with `pip download` (which
# works offline where pip has a local index). A leg without a wheel is skipped and says so; that is not a failure.
# Exit status 1 on any build or test failure. The last line is "libtorch2: passed N, failed N" (tests of the CPU leg
# plus one count per build).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${HVAE_TORCH2_DIR:-/tmp/hvae-libtorch2}
mkdir -p "$work/wheels"
passed=0
failed=0

is_cuda_wheel() { [ -n "$(unzip -Z1 "$1" 'torch/lib/libtorch_cuda.so' 2>/dev/null)" ]; }

# find_wheel cpu|cuda: prints a path or nothing.
find_wheel() {
  local kind=$1 w dirs d
  w=$( [ "$kind" = cpu ] && echo "${HVAE_TORCH_CPU_WHEEL:-}" || echo "${HVAE_TORCH_CUDA_WHEEL:-}")
  if [ -n "$w" ]; then echo "$w"; return; fi
  dirs="$work/wheels $(pip config get global.find-links 2>/dev/null) $(pip config get :env:.find-links 2>/dev/null)"
  for d in $dirs; do
    for w in "$d"/torch-2.*.whl; do
      [ -f "$w" ] || continue
      if [ "$kind" = cuda ] && is_cuda_wheel "$w"; then echo "$w"; return; fi
      if [ "$kind" = cpu ] && ! is_cuda_wheel "$w"; then echo "$w"; return; fi
    done
  done
  # pip's choice: on most indexes a CUDA wheel (the PyPI default), so it serves the CUDA leg. Pinned to the version
  # of the committed CUDA prebuild (HVAE_TORCH_CUDA_VERSION), so that a new PyTorch release cannot change what CI
  # builds against, and no newest multi-GB wheel is fetched on every clean run.
  if [ "$kind" = cuda ]; then
    timeout 600 pip download --quiet --no-deps --only-binary=:all: -d "$work/wheels" "torch==${HVAE_TORCH_CUDA_VERSION:-2.14.1}" >/dev/null 2>&1 || true
    for w in "$work"/wheels/torch-2.*.whl; do
      [ -f "$w" ] && is_cuda_wheel "$w" && { echo "$w"; return; }
    done
  fi
}

# unpack WHEEL: prints the Torch_DIR of the unpacked wheel (headers, libraries and CMake files only).
unpack() {
  local wheel=$1 dest="$work/unpacked/$(basename "$1" .whl)"
  if [ ! -f "$dest/.done" ]; then
    rm -rf "$dest" && mkdir -p "$dest"
    unzip -q "$wheel" 'torch/lib/*' 'torch/include/*' 'torch/share/*' 'torch/version.py' -d "$dest" >&2 || return 1
    touch "$dest/.done"
  fi
  echo "$dest/torch/share/cmake/Torch"
}

tree="$work/tree"
git -C "$root" worktree remove --force "$tree" >/dev/null 2>&1 || rm -rf "$tree"
git -C "$root" worktree prune
git -C "$root" worktree add --quiet --detach "$tree" HEAD || { echo "libtorch2: passed 0, failed 1"; exit 1; }
(cd "$root" && git ls-files -m -o --exclude-standard -z | xargs -0 -r cp --parents -t "$tree" 2>/dev/null) || true
ln -s "$root/node_modules" "$tree/node_modules"
# Tests, benchmarks and dataset roots look for ../shared beside the checkout: give the worktree the same neighbour.
[ -d "$root/../shared" ] && ln -sfn "$(cd "$root/.." && pwd)/shared" "$work/shared"
rm -rf "$tree/prebuilds"   # only the build under test may load
cd "$tree" || exit 1

# build LEG TORCH_DIR: configure and compile into build/; 0 on success.
build() {
  local leg=$1 dir=$2 log="$work/build-$1.txt" start
  rm -rf build
  echo "libtorch2 [$leg]: building against $dir"
  start=$(date +%s)
  # Through npx, so that cmake-js sees npm's configuration (nodedir, for the Node headers on an offline machine).
  if ! env Torch_DIR="$dir" LIBTORCH= npx --no-install cmake-js compile >"$log" 2>&1; then
    grep -E 'error|Error' "$log" | head -40
    echo "libtorch2 [$leg]: build FAILED (log: $log)"
    return 1
  fi
  node scripts/stamp-build.js 2>>"$log" || return 1   # compiled from these sources (scripts/prebuild.js checks)
  grep -E 'hvae-native:|warning:' "$log" | sed "s/^/libtorch2 [$leg]: /"
  echo "libtorch2 [$leg]: built in $(( $(date +%s) - start )) s"
}

# relocated LEG FROM ENV...: makes a relocatable prebuild of build/, removes build/, moves the LibTorch it was built
# against from FROM to FROM.moved (so nothing can load from the build-time path), and loads the prebuild through the
# package's loader from a fresh process, the environment telling it where LibTorch now is (LIBTORCH or a Python);
# then runs the parity and loader tests on it and moves FROM back. FROM empty: no move. 0 on success.
relocated() {
  local leg=$1 from=$2 f st
  shift 2
  rm -rf prebuilds
  node scripts/prebuild.js --no-rebuild | sed "s/^/libtorch2 [$leg]: /" || return 1
  f=$(ls prebuilds/linux-x64/*.node 2>/dev/null | head -1)
  [ -n "$f" ] && grep -q '"relocatable": true' "$f.json" || { echo "libtorch2 [$leg]: no relocatable prebuild"; return 1; }
  mkdir -p "$work/prebuilds" && cp "$f" "$f.json" "$work/prebuilds/"
  rm -rf build
  if [ -n "$from" ]; then
    rm -rf "$from.moved" && mv "$from" "$from.moved" || return 1
    trap 'mv "'"$from"'.moved" "'"$from"'"' EXIT
  fi
  env "$@" node -e "
    const v = require('.').versions;
    console.log('libtorch2 [$leg]: relocated prebuild loaded: ' + require('path').basename(v.addon) + ' on LibTorch ' + v.libtorch + ' from ' + v.libtorchPath + ' (' + v.libtorchSource + ')');
    process.exit(v.addon.includes('/prebuilds/') && v.libtorchSource.startsWith('preloaded') ? 0 : 1)"
  st=$?
  [ $st = 0 ] || echo "libtorch2 [$leg]: the relocatable prebuild did not load through the loader"
  # npm's install hook must choose it too, rather than start a build.
  if [ $st = 0 ]; then
    local hook
    # HVAE_FORCE_BUILD (which .ci/run exports for the main build) would make the hook skip every prebuild.
    hook=$(env "$@" HVAE_FORCE_BUILD= node scripts/install.js --check 2>&1)
    echo "$hook" | sed "s/^/libtorch2 [$leg]: install hook: /"
    echo "$hook" | grep -q "using the prebuilt addon prebuilds/linux-x64/$(basename "$f")" || { echo "libtorch2 [$leg]: npm's install hook did not choose the relocatable prebuild"; st=1; }
  fi
  if [ $st = 0 ]; then
    env "$@" npx mocha --no-config --timeout 120000 --require .test-build/setup.js .test-build/10.loader.test.js .test-build/20.parity.test.js > "$work/tests-$leg-relocated.txt" 2>&1
    st=$?
    grep -E '^ +[0-9]+ (passing|failing)|^ +[0-9]+\) ' "$work/tests-$leg-relocated.txt" | sed "s/^/libtorch2 [$leg] relocated: /"
  fi
  if [ -n "$from" ]; then
    mv "$from.moved" "$from" && trap - EXIT
  fi
  return $st
}

# tests LEG: the whole suite on build/; adds to the counts.
tests() {
  local leg=$1 p f
  if npx tsc -p tsconfig.json && npx tsc -p tsconfig.test.json; then
    npx mocha > "$work/tests-$leg.txt" 2>&1
    grep -E '^ +[0-9]+ (passing|failing|pending)|^ +[0-9]+\) ' "$work/tests-$leg.txt" | sed "s/^/libtorch2 [$leg]: /"
    p=$(grep -Eo '^ +[0-9]+ passing' "$work/tests-$leg.txt" | tail -1 | grep -Eo '[0-9]+' || echo 0)
    f=$(grep -Eo '^ +[0-9]+ failing' "$work/tests-$leg.txt" | tail -1 | grep -Eo '[0-9]+' || echo 0)
    if [ "$p" = 0 ] && [ "$f" = 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f))
  else
    echo "libtorch2 [$leg]: TypeScript build failed"; failed=$((failed + 1))
  fi
}

rm -rf "$work/prebuilds"

# Leg 1: CPU wheel, build and test.
wheel=$(find_wheel cpu)
if [ -z "$wheel" ]; then
  echo "libtorch2 [cpu]: skipped (no PyTorch 2.x CPU wheel: set HVAE_TORCH_CPU_WHEEL)"
elif ! dir=$(unpack "$wheel"); then
  echo "libtorch2 [cpu]: could not unpack $wheel"; failed=$((failed + 1))
elif ! build cpu "$dir"; then
  failed=$((failed + 1))
elif ! node -e "const v = require('./build/Release/hvae_native.node').versions(); console.log('libtorch2 [cpu]: addon ' + JSON.stringify(v)); process.exit(v.libtorch.startsWith('2.') ? 0 : 1)"; then
  echo "libtorch2 [cpu]: the addon does not report LibTorch 2.x"; failed=$((failed + 1))
else
  passed=$((passed + 1))
  tests cpu
  # $dir is <unpacked wheel>/torch/share/cmake/Torch.
  wheel_dir=$(cd "$dir/../../../.." && pwd)
  if relocated cpu "$wheel_dir" LIBTORCH="$wheel_dir.moved/torch" HVAE_PYTHON=/nonexistent; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
fi

# Leg 2: CUDA wheel. With an installed CUDA PyTorch (HVAE_TORCH_CUDA_PYTHON): build, test, relocate. Without: build
# and link against the unpacked wheel.
cuda_py=${HVAE_TORCH_CUDA_PYTHON:-}
if [ -n "$cuda_py" ]; then
  cuda_torch=$("$cuda_py" -c 'import importlib.util as u; print(u.find_spec("torch").submodule_search_locations[0])' 2>/dev/null)
  if [ -z "$cuda_torch" ] || [ ! -f "$cuda_torch/lib/libtorch_cuda.so" ]; then
    echo "libtorch2 [cuda]: HVAE_TORCH_CUDA_PYTHON=$cuda_py has no CUDA torch package"; failed=$((failed + 1)); cuda_py=
  elif ! build cuda "$cuda_torch/share/cmake/Torch"; then
    failed=$((failed + 1)); cuda_py=
  elif ! node -e "const v = require('./build/Release/hvae_native.node').versions(); console.log('libtorch2 [cuda]: addon ' + JSON.stringify(v)); process.exit(v.flavour === 'cuda' ? 0 : 1)"; then
    echo "libtorch2 [cuda]: the addon does not load or is not a CUDA build"; failed=$((failed + 1)); cuda_py=
  else
    passed=$((passed + 1))
    cp build/Release/hvae_native.node "$work/hvae_native.cuda.node"
    tests cuda
    cp "$work/hvae_native.cuda.node" build/Release/hvae_native.node
    # A virtual environment can be moved whole (its nvidia-* libraries move with torch); another Python is not moved.
    venv=$("$cuda_py" -c 'import sys; print(sys.prefix)' 2>/dev/null)
    if [ -n "$venv" ] && [ -f "$venv/pyvenv.cfg" ] && [ "$(dirname "$cuda_py")" = "$venv/bin" ]; then
      from=$venv; moved_py="$venv.moved/bin/$(basename "$cuda_py")"
    else
      from=; moved_py=$cuda_py
    fi
    if relocated cuda "$from" LIBTORCH= HVAE_PYTHON="$moved_py"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  fi
  [ -z "$cuda_py" ] && echo "libtorch2 [cuda]: the installed CUDA PyTorch leg failed"
else
  wheel=$(find_wheel cuda)
  if [ -z "$wheel" ]; then
    echo "libtorch2 [cuda]: skipped (no PyTorch 2.x CUDA wheel: set HVAE_TORCH_CUDA_WHEEL)"
  elif ! dir=$(unpack "$wheel"); then
    echo "libtorch2 [cuda]: could not unpack $wheel"; failed=$((failed + 1))
  elif ! build cuda "$dir"; then
    failed=$((failed + 1))
  elif needed=$(readelf -d build/Release/hvae_native.node 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ') &&
       [ "${needed#*libtorch_cuda.so}" = "$needed" ]; then
    # The NEEDED entries are read into a string first: `ldd ... | grep -q` under pipefail failed at random (grep's early
    # exit can kill ldd with SIGPIPE), failing this check for an addon that was linked (stop 15).
    echo "libtorch2 [cuda]: the addon is not linked to libtorch_cuda.so (the CUDA backend would never register)"
    failed=$((failed + 1))
  else
    echo "libtorch2 [cuda]: linked to libtorch_cuda.so (NEEDED: $needed)"
    # Not a prebuild: it cannot be loaded here to record its facts (its CUDA libraries are not installed). With
    # HVAE_TORCH_CUDA_PYTHON the leg above makes and checks the committed CUDA prebuild.
    passed=$((passed + 1))
  fi
fi

if [ -n "${HVAE_TORCH2_PREBUILDS:-}" ] && ls "$work"/prebuilds/*.node >/dev/null 2>&1; then
  mkdir -p "$root/prebuilds/linux-x64"
  cp "$work"/prebuilds/* "$root/prebuilds/linux-x64/"
  echo "libtorch2: copied $(ls "$work"/prebuilds/*.node | xargs -n1 basename | tr '\n' ' ')into prebuilds/linux-x64/"
fi

echo "libtorch2: passed ${passed}, failed ${failed}"
[ "$failed" = 0 ]
