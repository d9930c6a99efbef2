/**
 * Bad input: every kind of broken file is an HVAEError naming the file and the problem; `skipUnreadable`; and a
 * seeded fuzz test of the IDX, NPY and CIFAR parsers (random bytes, truncations and mutations of valid files).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import { HVAEError } from '../lib/errors.js';
import { openCifarBatches, parseCifarBatch } from '../lib/data/cifar.js';
import { openImageFolder, openImageTar } from '../lib/data/images.js';
import { openIdx, parseIdx, writeIdx } from '../lib/data/idx.js';
import { parseNorbHeader } from '../lib/data/norb.js';
import { encodeNpy, openNpy, parseNpy } from '../lib/data/npy.js';
import { openNpz } from '../lib/data/npz.js';
import { Rng } from '../lib/data/random.js';
import { openRaw, writeRaw } from '../lib/data/raw.js';
import { encodeMat, openSvhnMat } from '../lib/data/mat.js';
import { fetchDataset, loadDataset } from '../lib/data/datasets.js';
import type { FetchLike } from '../lib/data/datasets.js';
import { ArrayDataset, batches, concat, readAll, RecordFileDataset } from '../lib/data/stream.js';
import { buildTar, readTar } from '../lib/data/tar.js';
import { buildZip } from '../lib/data/zip.js';
import { SHARED, tmpDir } from './setup.js';

const MNIST_LABELS = path.join(SHARED, 'data', 'mnist', 't10k-labels-idx1-ubyte.gz');

/** Asserts an HVAEError with `code` whose message matches every pattern. */
function isErr(code: string, ...patterns: (RegExp | string)[]) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof HVAEError, `expected an HVAEError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const p of patterns) {
      if (typeof p === 'string') assert.ok(e.message.includes(p), `message lacks ${JSON.stringify(p)}: ${e.message}`);
      else assert.match(e.message, p);
    }
    return true;
  };
}

async function greyPng(w: number, h: number, v = 100): Promise<Buffer> {
  return sharp(Buffer.alloc(w * h, v), { raw: { width: w, height: h, channels: 1 } }).toColourspace('b-w').png().toBuffer();
}

describe('40.data.errors: bad input', function () {
  this.timeout(60000);

  it('truncated gzip: ERR_HVAE_FORMAT naming the file, "truncated"', async () => {
    const dir = tmpDir();
    const f = path.join(dir, 'labels.gz');
    const gz = fs.readFileSync(MNIST_LABELS);
    fs.writeFileSync(f, gz.subarray(0, gz.length >> 1));
    await assert.rejects(openIdx(f), isErr('ERR_HVAE_FORMAT', f, /truncated/));
    const img = path.join(dir, 'img.idx');
    await writeIdx(img, [3, 2, 2], new Uint8Array(12));
    await assert.rejects(openIdx(img, { labels: f }), isErr('ERR_HVAE_FORMAT', f, /truncated/));
  });

  it('corrupt gzip: ERR_HVAE_FORMAT naming the file, "corrupt"', async () => {
    const dir = tmpDir();
    const f = path.join(dir, 'labels.gz');
    const gz = Buffer.from(fs.readFileSync(MNIST_LABELS));
    for (let i = 100; i < 140; i++) gz[i] ^= 0x5a;
    fs.writeFileSync(f, gz);
    await assert.rejects(openIdx(f), isErr('ERR_HVAE_FORMAT', f, /corrupt/));
    // A damaged CRC alone is caught too.
    const crc = Buffer.from(fs.readFileSync(MNIST_LABELS));
    crc[crc.length - 6] ^= 1;
    fs.writeFileSync(f, crc);
    await assert.rejects(openIdx(f), isErr('ERR_HVAE_FORMAT', f, /corrupt/));
  });

  it('wrong IDX magic, unknown type, truncated data, trailing bytes, a label file as images', async () => {
    const dir = tmpDir();
    const f = path.join(dir, 'x.idx');
    fs.writeFileSync(f, Buffer.from([0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 1]));
    await assert.rejects(openIdx(f), isErr('ERR_HVAE_FORMAT', f, /wrong magic number 50 4b 03 04/));
    fs.writeFileSync(f, Buffer.from([0, 0, 0x07, 1, 0, 0, 0, 1, 0]));
    await assert.rejects(openIdx(f), isErr('ERR_HVAE_FORMAT', f, /unknown element type 0x07/));
    await writeIdx(f, [4, 3, 3], new Uint8Array(36));
    fs.truncateSync(f, 16 + 30);
    await assert.rejects(openIdx(f), isErr('ERR_HVAE_FORMAT', f, /truncated IDX file: dimensions 4x3x3 need 52 bytes, the file has 46/));
    fs.appendFileSync(f, Buffer.alloc(10));
    await assert.rejects(openIdx(f), isErr('ERR_HVAE_FORMAT', f, /4 unexpected bytes/));
    await assert.rejects(openIdx(MNIST_LABELS), isErr('ERR_HVAE_FORMAT', MNIST_LABELS, /3 \(\[n, h, w\]\) or 4/));
  });

  it('image and label counts that disagree', async () => {
    const dir = tmpDir();
    await writeIdx(path.join(dir, 'img.idx'), [5, 2, 2], new Uint8Array(20));
    await writeIdx(path.join(dir, 'lab.idx'), [4], [0, 1, 2, 3]);
    await assert.rejects(openIdx(path.join(dir, 'img.idx'), { labels: path.join(dir, 'lab.idx') }),
      isErr('ERR_HVAE_FORMAT', 'img.idx', 'counts disagree: 5 images', 'lab.idx holds 4 labels'));
    fs.writeFileSync(path.join(dir, 'x.npy'), encodeNpy([5, 2, 2], new Uint8Array(20)));
    fs.writeFileSync(path.join(dir, 'y.npy'), encodeNpy([3], Int32Array.from([0, 1, 2])));
    await assert.rejects(openNpy(path.join(dir, 'x.npy'), { labels: path.join(dir, 'y.npy') }), isErr('ERR_HVAE_FORMAT', 'x.npy', /counts disagree/));
  });

  it('NPY, NPZ, CIFAR, raw and tar problems are named', async () => {
    const dir = tmpDir();
    const f = path.join(dir, 'f.npy');
    fs.writeFileSync(f, encodeNpy([2, 2], Int32Array.from([1, 2, 3, 4])));
    await assert.rejects(openNpy(f), isErr('ERR_HVAE_FORMAT', f, /images must be uint8/));
    fs.writeFileSync(f, Buffer.from('not numpy at all'));
    await assert.rejects(openNpy(f), isErr('ERR_HVAE_FORMAT', f, /wrong magic number/));
    const z = path.join(dir, 'a.npz');
    fs.writeFileSync(z, Buffer.from('PK but not really a zip'));
    await assert.rejects(openNpz(z), isErr('ERR_HVAE_FORMAT', z, /not a zip archive/));
    const good = buildZip([{ name: 'x.npy', data: encodeNpy([2, 2, 2], new Uint8Array(8)), deflate: true }]);
    fs.writeFileSync(z, good.subarray(0, good.length - 30));
    await assert.rejects(openNpz(z), isErr('ERR_HVAE_FORMAT', z));
    const bad = Buffer.from(good);
    bad[40] ^= 0xff;  // inside the deflated data
    fs.writeFileSync(z, bad);
    await assert.rejects(openNpz(z), isErr('ERR_HVAE_FORMAT', z, 'x.npy'));
    const c = path.join(dir, 'data_batch_1.bin');
    fs.writeFileSync(c, Buffer.alloc(3073 * 2 - 5));
    await assert.rejects(openCifarBatches([c]), isErr('ERR_HVAE_FORMAT', c, /not a whole number of 3073-byte records/));
    const rec = Buffer.alloc(3073);
    rec[0] = 42;
    fs.writeFileSync(c, rec);
    const ds = await openCifarBatches([c]);
    await assert.rejects(ds.read([0]), isErr('ERR_HVAE_FORMAT', c, /label 42/));
    const j = path.join(dir, 'd.json');
    fs.writeFileSync(j, '{"shape": [2, 1, 2, 2], "dtype": "float32", "file": "x"}');
    await assert.rejects(openRaw(j), isErr('ERR_HVAE_FORMAT', j, /"dtype" must be "uint8"/));
    fs.writeFileSync(path.join(dir, 'x'), Buffer.alloc(7));
    fs.writeFileSync(j, '{"shape": [2, 1, 2, 2], "dtype": "uint8", "file": "x"}');
    await assert.rejects(openRaw(j), isErr('ERR_HVAE_FORMAT', path.join(dir, 'x'), /truncated: the file has 7 bytes/));
    fs.writeFileSync(j, '{"shape": [2, 1, 2');
    await assert.rejects(openRaw(j), isErr('ERR_HVAE_FORMAT', j, /not valid JSON/));
    const t = path.join(dir, 't.tar.gz');
    const tgz = buildTar([{ name: 'a/1.png', data: await greyPng(4, 4) }, { name: 'a/2.png', data: Buffer.alloc(5000, 7) }], { gzip: true });
    fs.writeFileSync(t, tgz.subarray(0, tgz.length - 40));
    await assert.rejects(openImageTar(t), isErr('ERR_HVAE_FORMAT', t, /truncated/));
    const plain = buildTar([{ name: 'a/1.png', data: Buffer.alloc(3000, 1) }]);
    fs.writeFileSync(t, plain.subarray(0, 1500));
    await assert.rejects(async () => { for await (const _ of readTar(t)) { /* drain */ } }, isErr('ERR_HVAE_FORMAT', t, /truncated tar archive/));
    const hdr = Buffer.from(plain);
    hdr[10] ^= 0x20;
    fs.writeFileSync(t, hdr);
    await assert.rejects(async () => { for await (const _ of readTar(t)) { /* drain */ } }, isErr('ERR_HVAE_FORMAT', t, /checksum/));
    await assert.rejects(openIdx(path.join(dir, 'missing.idx')), isErr('ERR_HVAE_DATA', 'missing.idx', /not found/));
  });

  it('a folder with mixed image sizes: ERR_HVAE_SHAPE naming both files', async () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'a.png'), await greyPng(8, 8));
    fs.writeFileSync(path.join(dir, 'b.png'), await greyPng(9, 8));
    await assert.rejects(openImageFolder(dir), isErr('ERR_HVAE_SHAPE', dir, 'b.png is 1x8x9', 'a.png is 1x8x8', /size: \[h, w\]/));
    const ok = await openImageFolder(dir, { size: [8, 8] });
    assert.equal(ok.length, 2);
    const rgb = await sharp(Buffer.alloc(8 * 8 * 3, 50), { raw: { width: 8, height: 8, channels: 3 } }).png().toBuffer();
    fs.writeFileSync(path.join(dir, 'b.png'), rgb);
    await assert.rejects(openImageFolder(dir), isErr('ERR_HVAE_SHAPE', 'b.png is 3x8x8', /channels: 1 or 3/));
    assert.deepEqual((await openImageFolder(dir, { channels: 3 })).shape, [3, 8, 8]);
  });

  it('an unreadable file: ERR_HVAE_FORMAT naming it; skipUnreadable skips and reports it', async () => {
    const dir = tmpDir();
    fs.mkdirSync(path.join(dir, 'A'));
    for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(dir, 'A', `${i}.png`), await greyPng(6, 6, i));
    fs.writeFileSync(path.join(dir, 'A', 'broken.png'), Buffer.from('definitely not a PNG'));
    const full = await greyPng(6, 6);
    fs.writeFileSync(path.join(dir, 'A', 'cut.png'), full.subarray(0, full.length - 20));
    await assert.rejects(openImageFolder(dir), isErr('ERR_HVAE_FORMAT', /A\/(broken|cut)\.png: cannot decode image/));
    const skippedNames: string[] = [];
    const ds = await openImageFolder(dir, { skipUnreadable: true, onSkip: (f) => skippedNames.push(f) });
    assert.equal(ds.length, 5);
    assert.deepEqual(ds.skipped.map((s) => s.file), ['A/broken.png', 'A/cut.png']);
    assert.match(ds.skipped[0].reason, /cannot decode image/);
    assert.deepEqual(skippedNames.sort(), ['A/broken.png', 'A/cut.png']);
    if (process.getuid?.() !== 0) {
      fs.chmodSync(path.join(dir, 'A', '0.png'), 0o000);
      await assert.rejects(openImageFolder(dir, { skipUnreadable: false }), isErr('ERR_HVAE_IO', '0.png', /permission denied/));
      fs.chmodSync(path.join(dir, 'A', '0.png'), 0o644);
    }
    const t = path.join(tmpDir(), 'x.tar');
    fs.writeFileSync(t, buildTar([{ name: 'ok.png', data: await greyPng(3, 3) }, { name: 'bad.png', data: Buffer.from('xx') }]));
    await assert.rejects(openImageTar(t), isErr('ERR_HVAE_FORMAT', `${t}:bad.png`));
    const tds = await openImageTar(t, { skipUnreadable: true });
    assert.equal(tds.length, 1);
    assert.equal(tds.skipped.length, 1);
  });

  it('empty datasets: ERR_HVAE_DATA', async () => {
    const dir = tmpDir();
    await assert.rejects(openImageFolder(dir), isErr('ERR_HVAE_DATA', dir, /no images found \(empty dataset/));
    fs.writeFileSync(path.join(dir, 'bad.png'), 'x');
    await assert.rejects(openImageFolder(dir, { skipUnreadable: true }), isErr('ERR_HVAE_DATA', /all 1 image files are unreadable/));
    const f = path.join(dir, 'e.idx');
    await writeIdx(f, [0, 28, 28], new Uint8Array(0));
    await assert.rejects(openIdx(f), isErr('ERR_HVAE_DATA', f, /0 images/));
    fs.writeFileSync(path.join(dir, 'e.npy'), encodeNpy([0, 2, 2], new Uint8Array(0)));
    await assert.rejects(openNpy(path.join(dir, 'e.npy')), isErr('ERR_HVAE_DATA', /0 images/));
    const t = path.join(dir, 'e.tar.gz');
    fs.writeFileSync(t, buildTar([], { gzip: true }));
    await assert.rejects(openImageTar(t), isErr('ERR_HVAE_DATA', t, /no images found/));
    fs.writeFileSync(t, zlib.gzipSync(Buffer.alloc(0)));
    await assert.rejects(openImageTar(t), isErr('ERR_HVAE_FORMAT', t, /empty archive/));
    const c = path.join(dir, 'c.bin');
    fs.writeFileSync(c, Buffer.alloc(0));
    await assert.rejects(openCifarBatches([c]), isErr('ERR_HVAE_FORMAT', c, /empty/));
  });

  it('bad indices and options: ERR_HVAE_OPTION / ERR_HVAE_SHAPE', async () => {
    const ds = new ArrayDataset({ name: 'tiny', images: new Uint8Array(8), shape: [1, 2, 2] });
    await assert.rejects(ds.read([2]), isErr('ERR_HVAE_OPTION', 'tiny', /index 2 .* out of range; the dataset has 2 images/));
    await assert.rejects(ds.read([0.5]), isErr('ERR_HVAE_OPTION'));
    await assert.rejects(async () => { for await (const _ of batches(ds, { batchSize: 0 })) { /* */ } }, isErr('ERR_HVAE_OPTION', /batchSize/));
    assert.throws(() => concat([ds, new ArrayDataset({ name: 'other', images: new Uint8Array(9), shape: [1, 3, 3] })]), isErr('ERR_HVAE_SHAPE', 'other has 1x3x3', 'tiny has 1x2x2'));
    const f = path.join(tmpDir(), 'short.bin');
    fs.writeFileSync(f, Buffer.alloc(10));
    const lying = new RecordFileDataset({ name: 'short', file: f, length: 4, shape: [1, 2, 2], dataOffset: 0 });
    await assert.rejects(readAll(lying), isErr('ERR_HVAE_FORMAT', f, /truncated/));
  });
});

describe('40.data.errors: options, outputs and archives (stop 25 review)', function () {
  this.timeout(60000);

  it('writers under /proc fail with ERR_HVAE_IO instead of hanging in a recursive mkdir', async () => {
    const ds = new ArrayDataset({ name: 'tiny', images: new Uint8Array(8), shape: [1, 2, 2] });
    const t0 = Date.now();
    await assert.rejects(writeRaw(ds, '/proc/hvae-nope/out.json'), isErr('ERR_HVAE_IO', '/proc/hvae-nope'));
    await assert.rejects(fetchDataset('MNIST', { split: 'test', root: '/proc/hvae-nope', baseUrl: 'http://127.0.0.1:1' }), isErr('ERR_HVAE_IO', 'cannot create'));
    assert.ok(Date.now() - t0 < 20000);
  });

  it('fetchDataset: bad timeoutMs and root, an own-property split, a server that sends less than it announced, an ignored abort', async () => {
    const root = tmpDir();
    await assert.rejects(fetchDataset('MNIST', { split: 'test', root, timeoutMs: -1 }), isErr('ERR_HVAE_OPTION', 'timeoutMs'));
    await assert.rejects(fetchDataset('MNIST', { split: 'test', root: '' }), isErr('ERR_HVAE_OPTION', 'root'));
    await assert.rejects(fetchDataset('MNIST', { split: 'constructor' as 'test', root }), isErr('ERR_HVAE_OPTION', "no 'constructor' split"));
    await assert.rejects(loadDataset('MNIST', { split: 'toString' as 'test' }), isErr('ERR_HVAE_OPTION', "no 'toString' split"));
    const body = (chunks: number, onChunk?: () => void) => (async function* () {
      for (let i = 0; i < chunks; i++) { onChunk?.(); yield new Uint8Array(100); }
    })();
    const short: FetchLike = async () => ({ ok: true, status: 200, statusText: 'OK', headers: { get: () => '1000' }, body: body(3) });
    await assert.rejects(fetchDataset('MNIST', { split: 'test', root, baseUrl: 'http://mirror.invalid', fetchImpl: short }), (e: unknown) => {
      isErr('ERR_HVAE_DATA', 'incomplete download: 300 of 1000 bytes')(e);
      assert.doesNotMatch((e as Error).message, /offline|no server could be reached/);
      return true;
    });
    const ac = new AbortController();
    let sent = 0;
    const deaf: FetchLike = async () => ({ ok: true, status: 200, statusText: 'OK', headers: { get: () => null }, body: body(50, () => { if (++sent === 3) ac.abort(); }) });
    await assert.rejects(fetchDataset('MNIST', { split: 'test', root, baseUrl: 'http://mirror.invalid', fetchImpl: deaf, signal: ac.signal }), isErr('ERR_HVAE_ABORTED'));
    assert.ok(sent < 10, `the download went on after the abort (${sent} chunks)`);
    assert.deepEqual(fs.readdirSync(root, { recursive: true }).map(String).filter((f) => f.endsWith('.part')), []);
  });

  it('decode and collection options that were ignored or blamed on an image are ERR_HVAE_OPTION; npy layout too', async () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'a.png'), await greyPng(4, 4));
    for (const [o, what] of [
      [{ label: 'bogus' }, 'label'], [{ decoder: 'bogus' }, 'decoder'], [{ extensions: '.png' }, 'extensions'],
      [{ kernel: 'bogus', size: [2, 2] }, 'kernel'], [{ size: [100000, 100000] }, 'size'], [{ size: [20000, 20000] }, '2^28'],
    ] as [object, string][]) {
      await assert.rejects(openImageFolder(dir, o as never), isErr('ERR_HVAE_OPTION', what));
    }
    const ds = await openImageFolder(dir, { size: [2, 2], kernel: 'nearest' });
    assert.deepEqual(ds.shape, [1, 2, 2]);
    const f = path.join(dir, 'x.npy');
    fs.writeFileSync(f, encodeNpy([2, 28, 28, 3], new Uint8Array(2 * 28 * 28 * 3)));
    await assert.rejects(openNpy(f, { layout: 'HWC' as 'NHWC' }), isErr('ERR_HVAE_OPTION', 'layout'));
    assert.deepEqual((await openNpy(f, { layout: 'NHWC' })).shape, [3, 28, 28]);
  });

  it('an SVHN MAT file with a zero dimension is ERR_HVAE_FORMAT', async () => {
    const f = path.join(tmpDir(), 'zero.mat');
    fs.writeFileSync(f, encodeMat([{ name: 'X', className: 'uint8', dims: [0, 32, 3, 2], data: [] }, { name: 'y', className: 'double', dims: [2, 1], data: [1, 2] }]));
    await assert.rejects(openSvhnMat(f), isErr('ERR_HVAE_FORMAT', 'positive dimensions'));
  });

  it('a tar.gz cut inside its gzip trailer is ERR_HVAE_FORMAT (the tar part alone is whole)', async () => {
    const dir = tmpDir();
    const tgz = buildTar([{ name: 'a.png', data: await greyPng(4, 4) }], { gzip: true });
    const f = path.join(dir, 'cut.tar.gz');
    fs.writeFileSync(f, tgz.subarray(0, tgz.length - 8));
    await assert.rejects(openImageTar(f), isErr('ERR_HVAE_FORMAT', f));
    fs.writeFileSync(path.join(dir, 'whole.tar.gz'), tgz);
    assert.equal((await openImageTar(path.join(dir, 'whole.tar.gz'))).length, 1);
  });

  it('writeIdx refuses what it cannot store instead of wrapping it; a missing folder is ERR_HVAE_IO', async () => {
    const dir = tmpDir();
    const f = path.join(dir, 'x.idx');
    await assert.rejects(writeIdx(f, [1, 1, 2], [300, -1]), isErr('ERR_HVAE_RANGE', 'element 0 is 300'));
    await assert.rejects(writeIdx(f, [1, 1, 2], [1.5, 2], { dtype: 'int32' }), isErr('ERR_HVAE_RANGE', 'element 0 is 1.5'));
    await assert.rejects(writeIdx(f, [1, 1, 2], [1, 2], { dtype: 'float32' as 'int32' }), isErr('ERR_HVAE_OPTION', 'dtype'));
    await assert.rejects(writeIdx(f, [-1, 2], [1, 2]), isErr('ERR_HVAE_SHAPE', 'dimensions'));
    await assert.rejects(writeIdx(path.join(dir, 'no', 'x.idx'), [2], [1, 2]), isErr('ERR_HVAE_IO', 'folder does not exist'));
    assert.deepEqual(fs.readdirSync(dir), []);
    await writeIdx(f, [1, 1, 2], [255, 0]);
    assert.deepEqual(Array.from((await readAll(await openIdx(f))).images.data), [255, 0]);
  });

  it('batches: a non-dataset is ERR_HVAE_OPTION, a read() that returns the wrong count is ERR_HVAE_DATA, an abort after the last batch is no error', async () => {
    const drain = async (ds: unknown, o = {}) => { for await (const _ of batches(ds as never, o)) { /* */ } };
    await assert.rejects(drain(null), isErr('ERR_HVAE_OPTION', 'needs a Dataset'));
    await assert.rejects(drain({}), isErr('ERR_HVAE_OPTION', 'needs a Dataset'));
    const real = new ArrayDataset({ name: 'tiny', images: new Uint8Array(16), shape: [1, 2, 2] });
    const liar = { name: 'liar', length: 4, shape: [1, 2, 2], hasLabels: false, read: () => real.read([0]) };
    await assert.rejects(drain(liar, { batchSize: 4 }), isErr('ERR_HVAE_DATA', 'liar', 'returned 1 images for 4 indices'));
    const ac = new AbortController();
    let n = 0;
    for await (const _ of batches(real, { batchSize: 2, signal: ac.signal })) if (++n === 2) ac.abort();
    assert.equal(n, 2);
    await assert.rejects(drain(real, { signal: { aborted: false } }), isErr('ERR_HVAE_OPTION', 'AbortSignal'));
    // An abort during a slow read takes effect at once, not when the read ends.
    const slow = { ...liar, name: 'slow', read: (i: ArrayLike<number>) => new Promise((r) => setTimeout(r, 3000)).then(() => real.read(i)) };
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 100);
    const t0 = Date.now();
    await assert.rejects(drain(slow, { batchSize: 4, signal: stop.signal }), isErr('ERR_HVAE_ABORTED', 'after 0 of 1 batches'));
    assert.ok(Date.now() - t0 < 1500, `the abort waited ${Date.now() - t0} ms for the read`);
    const f = path.join(tmpDir(), 'r.bin');
    fs.writeFileSync(f, Buffer.alloc(16));
    const rec = (o: object) => () => new RecordFileDataset({ name: 'rec', file: f, length: 4, shape: [1, 2, 2], dataOffset: 0, ...o });
    assert.throws(rec({ length: -1 }), isErr('ERR_HVAE_OPTION', 'length must be an integer >= 0'));
    assert.throws(rec({ length: 1.5 }), isErr('ERR_HVAE_OPTION', 'length'));
    assert.throws(rec({ dataOffset: -100 }), isErr('ERR_HVAE_OPTION', 'dataOffset'));
    assert.throws(rec({ concurrency: 0 }), isErr('ERR_HVAE_OPTION', 'concurrency must be an integer >= 1'));
    assert.equal((await readAll(rec({})())).images.data.length, 16);
  });
});

describe('40.data.errors: fuzzing the IDX, NPY and CIFAR parsers', function () {
  this.timeout(60000);

  it('random bytes, truncations and mutations of valid files: parse or HVAEError, never anything else', () => {
    const rng = new Rng(20240601);
    const idx = Buffer.alloc(16 + 3 * 5 * 4);
    idx[2] = 0x08; idx[3] = 3; idx.writeUInt32BE(3, 4); idx.writeUInt32BE(5, 8); idx.writeUInt32BE(4, 12);
    for (let i = 16; i < idx.length; i++) idx[i] = i * 7;
    const idxI32 = Buffer.alloc(8 + 12);
    idxI32[2] = 0x0c; idxI32[3] = 1; idxI32.writeUInt32BE(3, 4);
    const npy = encodeNpy([3, 4, 5], new Uint8Array(60).map((_, i) => i));
    const npyI = encodeNpy([6], Int32Array.from([1, 2, 3, 4, 5, 6]));
    const cifar = Buffer.alloc(3073 * 2);
    cifar[3073] = 9;
    const gz = (b: Buffer) => zlib.gzipSync(b);
    const valid: [string, Buffer, (b: Buffer) => unknown][] = [
      ['idx', idx, (b) => parseIdx(b, 'fuzz.idx')],
      ['idx-int32', idxI32, (b) => parseIdx(b, 'fuzz.idx')],
      ['idx.gz', gz(idx), (b) => parseIdx(b, 'fuzz.idx.gz')],
      ['npy', npy, (b) => parseNpy(b, 'fuzz.npy')],
      ['npy-int', npyI, (b) => parseNpy(b, 'fuzz.npy')],
      ['npy.gz', gz(npy), (b) => parseNpy(b, 'fuzz.npy.gz')],
      ['cifar', cifar, (b) => parseCifarBatch(b, 'fuzz.bin')],
      ['cifar.gz', gz(cifar), (b) => parseCifarBatch(b, 'fuzz.bin.gz')],
      ['norb', Buffer.from([0x55, 0x4c, 0x3d, 0x1e, 4, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0]), (b) => parseNorbHeader(b, 'fuzz.mat')],
    ];
    // Valid inputs parse.
    for (const [, b, parse] of valid) parse(b);
    let parsed = 0;
    let rejected = 0;
    const check = (what: string, b: Buffer, parse: (b: Buffer) => unknown): void => {
      try {
        parse(b);
        parsed++;
      } catch (e) {
        if (!(e instanceof HVAEError)) {
          assert.fail(`${what}: threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)} for input ${b.subarray(0, 64).toString('hex')}…`);
        }
        assert.ok(e.message.includes('fuzz.'), `${what}: message does not name the file: ${e.message}`);
        rejected++;
      }
    };
    const CASES = 4000;
    for (let k = 0; k < CASES; k++) {
      const [name, base, parse] = valid[rng.nextInt(valid.length)];
      const mode = rng.nextInt(5);
      let b: Buffer;
      if (mode === 0) {
        // Random bytes, sometimes behind a valid-looking magic number.
        b = Buffer.alloc(rng.nextInt(300));
        for (let i = 0; i < b.length; i++) b[i] = rng.nextInt(256);
        if (b.length >= 8 && rng.nextInt(2)) base.copy(b, 0, 0, Math.min(8, base.length));
      } else if (mode === 1) {
        b = Buffer.from(base.subarray(0, rng.nextInt(base.length + 1)));  // truncation
      } else if (mode === 2) {
        b = Buffer.from(base);
        const flips = 1 + rng.nextInt(4);
        for (let i = 0; i < flips; i++) b[rng.nextInt(b.length)] = rng.nextInt(256);  // mutation
      } else if (mode === 3) {
        b = Buffer.from(base);
        const hdr = Math.min(b.length, 24);
        for (let i = 4; i < hdr; i++) if (rng.nextInt(3) === 0) b[i] = rng.nextInt(256);  // header (dimensions) mutation
      } else {
        b = Buffer.concat([base, Buffer.alloc(1 + rng.nextInt(20), rng.nextInt(256))]);  // trailing garbage
      }
      check(`${name} mode ${mode} case ${k}`, b, parse);
    }
    assert.equal(parsed + rejected, CASES);
    assert.ok(rejected > CASES / 2, `most fuzzed inputs are rejected (${rejected})`);
  });
});
