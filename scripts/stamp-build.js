#!/usr/bin/env node
// Records, beside a local build (build/Release/hvae_native.node), the hash of the sources it was just compiled from
// (build/Release/hvae_native.node.json). The loader (ts/native.ts) puts a local build stamped with the current
// sources ahead of every prebuild: one compiled on this machine, from these sources, against the LibTorch the build
// found, is what `npm rebuild` or HVAE_FORCE_BUILD=1 asked for. Run only right after a successful compile
// (npm run build:native, scripts/install.js, scripts/prebuild.js): it certifies whatever binary is there.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { sourceHash } = require('./source-hash.js');

function stampBuild(root = path.resolve(__dirname, '..')) {
  const built = path.join(root, 'build', 'Release', 'hvae_native.node');
  if (!fs.existsSync(built)) throw new Error(`no local build at ${built}`);
  const meta = { local: true, sourceHash: sourceHash(root), builtOn: new Date().toISOString() };
  const dest = `${built}.json`;
  fs.writeFileSync(`${dest}.tmp`, `${JSON.stringify(meta, null, 2)}\n`);
  fs.renameSync(`${dest}.tmp`, dest);
  return meta;
}
/** Whether build/Release holds a build stamped with the current sources (the loader and make-prebuild ask). */
function stampIsCurrent(root = path.resolve(__dirname, '..')) {
  const built = path.join(root, 'build', 'Release', 'hvae_native.node');
  try {
    return fs.existsSync(built) && JSON.parse(fs.readFileSync(`${built}.json`, 'utf8')).sourceHash === sourceHash(root);
  } catch {
    return false;  // no stamp, or an unreadable one
  }
}
module.exports = { stampBuild, stampIsCurrent };
if (require.main === module) {
  try {
    const m = stampBuild();
    process.stderr.write(`hvae-native: build/Release/hvae_native.node stamped with sources ${m.sourceHash}\n`);
  } catch (e) {
    process.stderr.write(`hvae-native: ${e.message}\n`);
    process.exit(1);
  }
}
