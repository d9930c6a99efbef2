'use strict';
// A hash of everything the addon is built from (native sources and CMakeLists.txt): a prebuild is used only when
// it was built from exactly these sources, so a stale binary can never stand in for the current code.
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
