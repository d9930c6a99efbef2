'use strict';
// Reads and removes the library search paths (DT_RUNPATH, DT_RPATH) of a 64-bit little-endian ELF shared object,
// such as a built addon. A build against a PyTorch wheel or an unpacked LibTorch records that LibTorch's directory
// as its RUNPATH; a relocatable prebuild is loaded after its LibTorch has been loaded by absolute path
// (ts/native.ts), so it needs no search path, and one naming a build machine's directory (often under /tmp) would
// let whoever can create that directory on a user's machine supply the libraries the addon loads.
// Removing an entry is what `patchelf --remove-rpath` does: the later entries of the dynamic array move up by one
// and the array keeps its DT_NULL end. The path's text stays, unreferenced, in .dynstr.
const fs = require('node:fs');

const DT_NULL = 0n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;
const SHT_DYNAMIC = 6;

/** The dynamic section of an ELF image: its file offset, size and the file offset of its string table. */
function dynamicSection(buf) {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46) throw new Error('not an ELF file');
  if (buf[4] !== 2 || buf[5] !== 1) throw new Error('not a 64-bit little-endian ELF file');
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  if (shoff === 0 || shoff + shnum * shentsize > buf.length) throw new Error('ELF section headers out of range');
  const section = (i) => {
    const o = shoff + i * shentsize;
    return { type: buf.readUInt32LE(o + 4), offset: Number(buf.readBigUInt64LE(o + 0x18)), size: Number(buf.readBigUInt64LE(o + 0x20)), link: buf.readUInt32LE(o + 0x28) };
  };
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (s.type !== SHT_DYNAMIC) continue;
    if (s.link >= shnum || s.offset + s.size > buf.length) throw new Error('ELF dynamic section out of range');
    return { offset: s.offset, size: s.size, strtab: section(s.link).offset };
  }
  throw new Error('no dynamic section (not a shared object?)');
}

function cString(buf, at) {
  const end = buf.indexOf(0, at);
  return buf.toString('utf8', at, end < 0 ? buf.length : end);
}

/** The library search paths recorded in an ELF file: [{ tag: 'RUNPATH' | 'RPATH', value }]. */
function readRunpaths(file) {
  const buf = fs.readFileSync(file);
  const d = dynamicSection(buf);
  const out = [];
  for (let o = d.offset; o + 16 <= d.offset + d.size; o += 16) {
    const tag = buf.readBigInt64LE(o);
    if (tag === DT_NULL) break;
    if (tag === DT_RUNPATH || tag === DT_RPATH) out.push({ tag: tag === DT_RUNPATH ? 'RUNPATH' : 'RPATH', value: cString(buf, d.strtab + Number(buf.readBigUInt64LE(o + 8))) });
  }
  return out;
}

/** Removes every DT_RUNPATH and DT_RPATH entry of an ELF file in place (through a temporary file and a rename).
 * Returns the paths removed. */
function removeRunpaths(file) {
  const buf = fs.readFileSync(file);
  const d = dynamicSection(buf);
  const entries = [];
  for (let o = d.offset; o + 16 <= d.offset + d.size; o += 16) {
    entries.push(buf.subarray(o, o + 16));
    if (buf.readBigInt64LE(o) === DT_NULL) break;
  }
  const removed = [];
  const kept = entries.filter((e) => {
    const tag = e.readBigInt64LE(0);
    if (tag !== DT_RUNPATH && tag !== DT_RPATH) return true;
    removed.push(cString(buf, d.strtab + Number(e.readBigUInt64LE(8))));
    return false;
  }).map((e) => Buffer.from(e));
  if (removed.length === 0) return removed;
  kept.forEach((e, i) => e.copy(buf, d.offset + i * 16));
  buf.fill(0, d.offset + kept.length * 16, d.offset + entries.length * 16);  // DT_NULL in the freed slots
  const mode = fs.statSync(file).mode;
  fs.writeFileSync(`${file}.tmp`, buf, { mode });
  fs.renameSync(`${file}.tmp`, file);
  return removed;
}

module.exports = { readRunpaths, removeRunpaths };
if (require.main === module) {
  const [cmd, ...files] = process.argv.slice(2);
  for (const f of files) {
    if (cmd === 'read') console.log(`${f}: ${JSON.stringify(readRunpaths(f))}`);
    else if (cmd === 'remove') console.log(`${f}: removed ${JSON.stringify(removeRunpaths(f))}`);
    else { console.error('usage: node scripts/elf-runpath.js read|remove FILE...'); process.exit(2); }
  }
}
