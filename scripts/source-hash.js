'use strict';
// A hash of everything the addon is built from (native sources and CMakeLists.txt): a prebuild is used only when
// it was built from exactly these sources, so a stale binary can never stand in for the current code.
// The node-addon-api version is deliberately left out: its headers are compiled into the binary, which calls only
// Node-API (ABI-stable across Node versions), so a prebuild made with one version of the headers runs unchanged
// where another is installed; hashing the installed version would turn every committed prebuild away after a
// patch release of the headers. To rebuild with new headers anyway: HVAE_FORCE_BUILD=1 npm rebuild hvae-native.
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

function sourceHash(root = path.resolve(__dirname, '..')) {
  const h = crypto.createHash('sha256');
  const files = ['CMakeLists.txt', ...fs.readdirSync(path.join(root, 'native')).filter((f) => /\.(cc|h)$/.test(f)).sort().map((f) => `native/${f}`)];
  for (const f of files) {
    h.update(f);
    h.update(fs.readFileSync(path.join(root, f)));
  }
  return h.digest('hex').slice(0, 16);
}
module.exports = { sourceHash };
if (require.main === module) console.log(sourceHash());
