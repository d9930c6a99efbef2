#!/usr/bin/env node
// npm's install hook: use a prebuilt addon that loads against the LibTorch on this machine, else build one with
// cmake-js. Plain JavaScript (it runs before the TypeScript is compiled).
//   HVAE_SKIP_BUILD=1   skip entirely (e.g. when packaging on a machine without LibTorch)
//   HVAE_FORCE_BUILD=1  always build from source (the loader then prefers that build: scripts/stamp-build.js)
// (0, false, no, off and the empty string leave either variable off.)
//   --check             only say which addon would be used; exit 1 where it would build (scripts/check-libtorch2.sh)
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const log = (m) => process.stderr.write(`hvae-native: ${m}\n`);
const on = (name) => process.env[name] !== undefined && !/^(|0|false|no|off)$/i.test(process.env[name].trim());

if (on('HVAE_SKIP_BUILD')) {
  log('HVAE_SKIP_BUILD is set: not building the native addon');
  process.exit(0);
}

const { sourceHash } = require('./source-hash.js');
const currentHash = sourceHash(root);

const nativeJs = path.join(root, 'lib', 'native.js');
function loads(file) {
  // Through the package's own loader where it is compiled (a relocatable prebuild needs its LibTorch loaded first,
  // from a PyTorch install or LIBTORCH), else a plain require (a checkout before its first TypeScript build).
  const code = fs.existsSync(nativeJs)
    ? `require(${JSON.stringify(nativeJs)}).loadNative().versions()`
    : `require(${JSON.stringify(file)}).versions()`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', env: { ...process.env, HVAE_NATIVE_PATH: file } });
  if (r.status !== 0) {
    // The loader's first line of explanation (its ERR_HVAE_LOAD lists what it tried), else the raw error.
    const lines = (r.stderr || '').split('\n').map((l) => l.trim());
    const why = lines.find((l) => l.startsWith(`- ${file}`)) ?? lines.find((l) => /Error/.test(l)) ?? `exit status ${r.status}`;
    log(`${path.relative(root, file)} does not load here: ${why.replace(`- ${file}: `, '').slice(0, 300)}`);
  }
  return r.status === 0;
}

if (!on('HVAE_FORCE_BUILD')) {
  const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  // CUDA prebuilds first where an NVIDIA driver is present (the loader's order; a CUDA one loads only where its PyTorch is).
  const gpu = fs.existsSync('/proc/driver/nvidia/version');
  const candidates = (fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.node')) : [])
    .sort((a, b) => (gpu ? Number(b.includes('.cuda.')) - Number(a.includes('.cuda.')) : 0) || a.localeCompare(b))
    .map((f) => path.join(dir, f));
  for (const file of candidates) {
    let meta = {};
    try { meta = JSON.parse(fs.readFileSync(`${file}.json`, 'utf8')); } catch { /* no sidecar */ }
    if (meta.sourceHash !== currentHash) {
      log(`prebuild ${path.relative(root, file)} was built from other sources (${meta.sourceHash ?? 'unknown'} != ${currentHash}); not used`);
      continue;
    }
    if (meta.relocatable && !fs.existsSync(nativeJs)) {
      // Only the package's loader can load a relocatable prebuild (it loads the prebuild's LibTorch first, from a
      // PyTorch install or LIBTORCH); a plain require would leave its libraries to the dynamic linker's search.
      log(`prebuild ${path.relative(root, file)} needs the compiled loader (lib/native.js), which this checkout has not built yet; not tried`);
      continue;
    }
    if (loads(file)) {
      log(`using the prebuilt addon ${path.relative(root, file)}`);
      process.exit(0);
    }
  }
  const local = path.join(root, 'build', 'Release', 'hvae_native.node');
  if (fs.existsSync(local) && loads(local)) {
    log('the addon in build/Release loads: nothing to build (HVAE_FORCE_BUILD=1 rebuilds)');
    process.exit(0);
  }
}

if (process.argv.includes('--check')) {
  log('no prebuilt or local addon loads here: npm install would build one');
  process.exit(1);
}

let cmakeJs;
try {
  cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
} catch {
  log('cmake-js is not installed; run npm install first');
  process.exit(1);
}
log('building the native addon with cmake-js (LibTorch: LIBTORCH / Torch_DIR, then Python torch, then the system one)');
const r = spawnSync(process.execPath, [cmakeJs, 'compile'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  log('the build failed. Common causes and fixes:');
  log('  - LibTorch not found: sudo apt-get install libtorch-dev, or pip install torch, or export LIBTORCH=/path/to/libtorch');
  log('  - cmake or a C++17 compiler missing: sudo apt-get install cmake g++');
  log('  Then run: npm rebuild hvae-native. See README "Troubleshooting".');
  process.exit(r.status ?? 1);
}
require('./stamp-build.js').stampBuild(root);
