#!/usr/bin/env node
// npm run make-prebuild: builds the addon (unless build/Release is current) and places it under
// prebuilds/<platform>-<arch>/hvae-native.napi.libtorch-<version>.<cpu|cuda>.node, with a JSON file recording the
// LibTorch it was built against. Refuses to place an addon that does not load.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const { sourceHash } = require('./source-hash.js');
const built = path.join(root, 'build', 'Release', 'hvae_native.node');
if (!fs.existsSync(built) || !process.argv.includes('--no-rebuild')) {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
  const r = spawnSync(process.execPath, [cmakeJs, 'compile'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
  require('./stamp-build.js').stampBuild(root);
}
// --no-rebuild takes build/Release as it is, so it must have been compiled from these sources: its stamp
// (scripts/stamp-build.js, written by npm run build:native and the install hook) says so.
if (!require('./stamp-build.js').stampIsCurrent(root)) {
  process.stderr.write(`build/Release was not compiled from the current sources (${sourceHash(root)}; no matching stamp): `
    + 'run npm run build:native (or drop --no-rebuild)\n');
  process.exit(1);
}
const probe = spawnSync(process.execPath, ['-e', `process.stdout.write(JSON.stringify(require(${JSON.stringify(built)}).versions()))`], { encoding: 'utf8' });
if (probe.status !== 0) {
  process.stderr.write(`the built addon does not load:\n${probe.stderr}\n`);
  process.exit(1);
}
const v = JSON.parse(probe.stdout);
const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
fs.mkdirSync(dir, { recursive: true });
const name = `hvae-native.napi.libtorch-${v.libtorch}.${v.flavour}.node`;
const dest = path.join(dir, name);
// Built against a LibTorch outside the system directories (a PyTorch wheel, an unpacked LibTorch archive): the
// loader can use it with the same LibTorch version found anywhere (a PyTorch install or LIBTORCH), by loading that
// LibTorch's libraries first (ts/native.ts). A system LibTorch's addon is matched by its path instead.
const relocatable = !/^\/usr\//.test(v.libtorchPath);
const meta = { libtorch: v.libtorch, flavour: v.flavour, libtorchPath: v.libtorchPath, relocatable, cxx11Abi: v.cxx11Abi, napi: 8, sourceHash: sourceHash(root), builtOn: new Date().toISOString() };
// Both files through a temporary name and a rename. The old sidecar goes first, so a crash between the two renames
// leaves a binary without a sidecar (which the loader and the install hook try only after everything else, having no
// recorded LibTorch or sources) rather than a new binary described by the old one's metadata.
fs.rmSync(`${dest}.json`, { force: true });
fs.copyFileSync(built, `${dest}.tmp`);
// A relocatable prebuild keeps no library search path: the loader loads its LibTorch first, by absolute path, and a
// path of the build machine's (often under /tmp) must not decide what it loads elsewhere (scripts/elf-runpath.js).
if (relocatable) {
  const removed = require('./elf-runpath.js').removeRunpaths(`${dest}.tmp`);
  if (removed.length) process.stdout.write(`prebuild: removed the search path ${removed.join(', ')}\n`);
}
fs.renameSync(`${dest}.tmp`, dest);
fs.writeFileSync(`${dest}.json.tmp`, `${JSON.stringify(meta, null, 2)}\n`);
fs.renameSync(`${dest}.json.tmp`, `${dest}.json`);
process.stdout.write(`prebuild: ${path.relative(root, dest)} (LibTorch ${v.libtorch}, ${v.flavour}, ${v.libtorchPath})\n`);
