#!/usr/bin/env bash
# Set-up for a fresh clone on Debian/Ubuntu: installs what is missing (as root; otherwise prints the exact
# commands), installs npm packages and builds the addon and the TypeScript. Idempotent: fast when all is there.
#   bash scripts/setup.sh            # system packages + npm ci + build
#   bash scripts/setup.sh --system   # system packages only
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have_libtorch() {
  [ -n "${LIBTORCH:-}" ] && return 0
  [ -n "${Torch_DIR:-}" ] && return 0
  ls /usr/lib/*-linux-gnu/cmake/Torch/TorchConfig.cmake >/dev/null 2>&1 && return 0
  for py in python3 /usr/bin/python3; do
    p=$("$py" -c 'import torch.utils, os; print(torch.utils.cmake_prefix_path)' 2>/dev/null) || continue
    [ -f "$p/Torch/TorchConfig.cmake" ] && return 0
  done
  return 1
}
have_libtorch || need+=(libtorch-dev)
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
command -v cmake >/dev/null || need+=(cmake)
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || command -v ninja >/dev/null || need+=(make)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}"
  else
    echo "setup: missing system packages. Run:"
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${need[*]}"
    echo "then run this command again."
    exit 1
  fi
fi
[ "${1:-}" = "--system" ] && exit 0

command -v node >/dev/null || { echo "setup: Node.js >= 20 is required (https://nodejs.org)"; exit 1; }
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  # npm ci already built everything; after a pull, rebuild what changed.
  node scripts/install.js
  npx tsc -p tsconfig.json
fi
