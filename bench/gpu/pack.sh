#!/usr/bin/env bash
# Prepares what the GPU machine lacks, on this (CPU) machine: a compressed Node.js binary and the runtime
# node_modules, plus the compiled TypeScript and tests, under .gpu-carry/ (ignored by git; pass it in `carry`).
# The GPU machine has PyTorch with CUDA (hence LibTorch + its CMake files) but maybe no Node.
set -euo pipefail
cd "$(dirname "$0")/../.."
npx tsc -p tsconfig.json
npx tsc -p tsconfig.test.json
rm -rf .gpu-carry && mkdir -p .gpu-carry
node_bin=$(command -v node)
xz -T2 -6 -c "$node_bin" > .gpu-carry/node.xz
tar -cJf .gpu-carry/node_modules.tar.xz --exclude='node_modules/typescript' --exclude='node_modules/.cache' node_modules
tar -cJf .gpu-carry/built.tar.xz lib .test-build
du -sh .gpu-carry/*
echo "carry: [\".gpu-carry\"]  then run: bash bench/gpu/run.sh"
