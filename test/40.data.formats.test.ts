/**
 * Every reader on small synthetic files in its format: IDX, NPY, NPZ, CIFAR binary, image folders/tar/zip, raw JSON,
 * NORB, SVHN MAT; the CPU transforms; and the named datasets whose files are not on this machine (KMNIST, Omniglot,
 * SmallNORB, SVHN, CIFAR-10 binary), on synthetic files laid out like the originals.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import { HVAEError } from '../lib/errors.js';
import { CIFAR10_CLASSES, openCifarArchive, openCifarBatches, parseCifarBatch } from '../lib/data/cifar.js';
import { loadDataset } from '../lib/data/datasets.js';
import { decodeImage, openImageFolder, openImages, openImageTar, openImageZip } from '../lib/data/images.js';
import { openIdx, parseIdx, readIdx, writeIdx } from '../lib/data/idx.js';
import { encodeMat, listMatVariables, openSvhnMat } from '../lib/data/mat.js';
import { encodeNorb, openSmallNorb } from '../lib/data/norb.js';
import { encodeNpy, openNpy, parseNpy } from '../lib/data/npy.js';
import { openNpz, readNpz } from '../lib/data/npz.js';
import { openRaw, writeRaw } from '../lib/data/raw.js';
import { ArrayDataset, readAll, RecordFileDataset } from '../lib/data/stream.js';
import { buildTar, readTar } from '../lib/data/tar.js';
import { binarize, checkImageShape, greyscale, invert, resize, toChannels, toFloat } from '../lib/data/transforms.js';
import { buildZip, ZipReader } from '../lib/data/zip.js';
import { tmpDir } from './setup.js';

/** n images of shape [c,h,w] whose pixel p of image i is (i*7 + p*3) & 255, NCHW. */
function pattern(n: number, c: number, h: number, w: number): Uint8Array {
  const per = c * h * w;
  const out = new Uint8Array(n * per);
  for (let i = 0; i < n; i++) for (let p = 0; p < per; p++) out[i * per + p] = (i * 7 + p * 3) & 255;
  return out;
}

/** The same pattern in NHWC order. */
function toNhwc(x: Uint8Array, n: number, c: number, h: number, w: number): Uint8Array {
  const out = new Uint8Array(x.length);
  for (let i = 0; i < n; i++) for (let ch = 0; ch < c; ch++) for (let p = 0; p < h * w; p++) out[i * c * h * w + p * c + ch] = x[i * c * h * w + ch * h * w + p];
  return out;
}

async function png(pixels: Uint8Array, w: number, h: number, channels: 1 | 3 | 4): Promise<Buffer> {
  const img = sharp(Buffer.from(pixels), { raw: { width: w, height: h, channels } });
  return (channels === 1 ? img.toColourspace('b-w') : img).png().toBuffer();
}

describe('40.data.formats: readers', function () {
  this.timeout(60000);

  it('IDX: raw files are read lazily, gzip files in memory, with identical results', async () => {
    const dir = tmpDir();
    const imgs = pattern(5, 1, 4, 3);
    await writeIdx(path.join(dir, 'img.idx'), [5, 4, 3], imgs);
    await writeIdx(path.join(dir, 'lab.idx'), [5], [4, 3, 2, 1, 0], { dtype: 'int32' });
    fs.writeFileSync(path.join(dir, 'img.idx.gz'), zlib.gzipSync(fs.readFileSync(path.join(dir, 'img.idx'))));
    const raw = await openIdx(path.join(dir, 'img.idx'), { labels: path.join(dir, 'lab.idx') });
    const gz = await openIdx(path.join(dir, 'img.idx.gz'), { labels: path.join(dir, 'lab.idx') });
    assert.ok(raw instanceof RecordFileDataset);
    assert.ok(gz instanceof ArrayDataset);
    for (const ds of [raw, gz]) {
      assert.equal(ds.length, 5);
      assert.deepEqual(ds.shape, [1, 4, 3]);
      const b = await ds.read([3, 1, 1, 4]);
      assert.deepEqual(b.images.shape, [4, 1, 4, 3]);
      assert.deepEqual(Array.from(b.labels!), [1, 3, 3, 0]);
      assert.deepEqual(Array.from(b.indices), [3, 1, 1, 4]);
      for (const [k, i] of [3, 1, 1, 4].entries()) assert.deepEqual(b.images.data.subarray(k * 12, (k + 1) * 12), imgs.subarray(i * 12, (i + 1) * 12));
    }
    const lab = await readIdx(path.join(dir, 'lab.idx'));
    assert.equal(lab.dtype, 'int32');
    assert.ok(lab.data instanceof Int32Array);
    const parsed = parseIdx(fs.readFileSync(path.join(dir, 'img.idx.gz')));
    assert.deepEqual(parsed.dims, [5, 4, 3]);
  });

  it('IDX: 4-D [n, c, h, w] images', async () => {
    const dir = tmpDir();
    const imgs = pattern(2, 3, 2, 2);
    await writeIdx(path.join(dir, 'x.idx'), [2, 3, 2, 2], imgs);
    const ds = await openIdx(path.join(dir, 'x.idx'));
    assert.deepEqual(ds.shape, [3, 2, 2]);
    assert.equal(ds.hasLabels, false);
    assert.deepEqual((await readAll(ds)).images.data, imgs);
  });

  it('NPY: [n,h,w], NHWC transposed to NCHW, labels of any integer type, .npy.gz', async () => {
    const dir = tmpDir();
    const grey = pattern(4, 1, 5, 6);
    fs.writeFileSync(path.join(dir, 'g.npy'), encodeNpy([4, 5, 6], grey));
    fs.writeFileSync(path.join(dir, 'y.npy'), encodeNpy([4], Int32Array.from([9, 8, 7, 6])));
    const g = await openNpy(path.join(dir, 'g.npy'), { labels: path.join(dir, 'y.npy') });
    assert.ok(g instanceof RecordFileDataset);
    assert.deepEqual(g.shape, [1, 5, 6]);
    const all = await readAll(g);
    assert.deepEqual(all.images.data, grey);
    assert.deepEqual(Array.from(all.labels!), [9, 8, 7, 6]);

    const rgb = pattern(3, 3, 4, 5);
    const nhwc = toNhwc(rgb, 3, 3, 4, 5);
    fs.writeFileSync(path.join(dir, 'c.npy'), encodeNpy([3, 4, 5, 3], nhwc));
    fs.writeFileSync(path.join(dir, 'c.npy.gz'), zlib.gzipSync(encodeNpy([3, 4, 5, 3], nhwc)));
    for (const f of ['c.npy', 'c.npy.gz']) {
      const c = await openNpy(path.join(dir, f));
      assert.deepEqual(c.shape, [3, 4, 5], f);
      assert.deepEqual((await readAll(c)).images.data, rgb, f);
      assert.deepEqual((await c.read([2])).images.data, rgb.subarray(120, 180), f);
    }
    const nchw = await openNpy(path.join(dir, 'c.npy'), { layout: 'NCHW' });
    assert.deepEqual(nchw.shape, [4, 5, 3]);
    const f = parseNpy(encodeNpy([2, 2], Int32Array.from([1, -2, 3, -4])));
    assert.equal(f.descr, '<i4');
    assert.deepEqual(Array.from(f.data), [1, -2, 3, -4]);
  });

  it('NPZ: stored arrays read lazily from inside the zip, deflated arrays inflated', async () => {
    const dir = tmpDir();
    const x = pattern(6, 1, 3, 3);
    const y = Int32Array.from([0, 1, 2, 0, 1, 2]);
    for (const deflate of [false, true]) {
      const f = path.join(dir, `d${deflate}.npz`);
      fs.writeFileSync(f, buildZip([
        { name: 'x_train.npy', data: encodeNpy([6, 3, 3], x), deflate },
        { name: 'y_train.npy', data: encodeNpy([6], y), deflate },
      ]));
      const ds = await openNpz(f);
      assert.equal(ds instanceof RecordFileDataset, !deflate);
      assert.equal(ds.length, 6);
      const b = await ds.read([5, 0]);
      assert.deepEqual(Array.from(b.labels!), [2, 0]);
      assert.deepEqual(b.images.data.subarray(0, 9), x.subarray(45, 54));
      const arrays = await readNpz(f);
      assert.deepEqual(Object.keys(arrays).sort(), ['x_train', 'y_train']);
    }
    const z = await ZipReader.open(path.join(dir, 'dtrue.npz'));
    assert.deepEqual(z.entries.map((e) => [e.name, e.method]), [['x_train.npy', 8], ['y_train.npy', 8]]);
    await z.close();
    await assert.rejects(openNpz(path.join(dir, 'dtrue.npz'), { images: 'nope' }), (e: unknown) => e instanceof HVAEError && e.code === 'ERR_HVAE_DATA' && /x_train, y_train/.test(e.message));
  });

  it('CIFAR binary: parse, lazy files, gzip files, and the official tar.gz layout', async () => {
    const dir = tmpDir();
    const imgs = pattern(4, 3, 32, 32);
    const rec = Buffer.alloc(4 * 3073);
    for (let i = 0; i < 4; i++) { rec[i * 3073] = i * 3; rec.set(imgs.subarray(i * 3072, (i + 1) * 3072), i * 3073 + 1); }
    const p = parseCifarBatch(rec);
    assert.deepEqual(Array.from(p.labels), [0, 3, 6, 9]);
    assert.deepEqual(p.images, imgs);
    fs.writeFileSync(path.join(dir, 'test_batch.bin'), rec);
    fs.writeFileSync(path.join(dir, 'b.bin.gz'), zlib.gzipSync(rec));
    const lazy = await openCifarBatches([path.join(dir, 'test_batch.bin'), path.join(dir, 'b.bin.gz')]);
    assert.equal(lazy.length, 8);
    assert.deepEqual(lazy.classNames, CIFAR10_CLASSES);
    const b = await lazy.read([1, 6]);
    assert.deepEqual(Array.from(b.labels!), [3, 6]);
    assert.deepEqual(b.images.data.subarray(3072), imgs.subarray(2 * 3072, 3 * 3072));
    const tgz = path.join(dir, 'cifar-10-binary.tar.gz');
    fs.writeFileSync(tgz, buildTar([
      { name: 'cifar-10-batches-bin/', type: 'directory' },
      { name: 'cifar-10-batches-bin/batches.meta.txt', data: Buffer.from(CIFAR10_CLASSES.join('\n')) },
      { name: 'cifar-10-batches-bin/test_batch.bin', data: rec },
    ], { gzip: true }));
    const t = await openCifarArchive(tgz, { split: 'test' });
    assert.equal(t.length, 4);
    assert.deepEqual((await readAll(t)).images.data, imgs);
    await assert.rejects(openCifarArchive(tgz, { split: 'train' }), (e: unknown) => e instanceof HVAEError && e.code === 'ERR_HVAE_DATA' && /data_batch_1\.bin/.test(e.message));
  });

  it('image folders: PNG, JPEG and WebP, class subfolders as labels, natural order, channel conversion', async () => {
    const dir = tmpDir();
    const a = pattern(1, 3, 6, 5);
    const hwc = toNhwc(a, 1, 3, 6, 5);
    fs.mkdirSync(path.join(dir, 'cat'));
    fs.mkdirSync(path.join(dir, 'dog'));
    fs.writeFileSync(path.join(dir, 'cat', '10.png'), await png(hwc, 5, 6, 3));
    fs.writeFileSync(path.join(dir, 'cat', '2.png'), await png(hwc.map((v) => 255 - v), 5, 6, 3));
    fs.writeFileSync(path.join(dir, 'dog', '1.webp'), await sharp(Buffer.from(hwc), { raw: { width: 5, height: 6, channels: 3 } }).webp({ lossless: true }).toBuffer());
    fs.writeFileSync(path.join(dir, 'dog', '3.jpg'), await sharp(Buffer.from(hwc), { raw: { width: 5, height: 6, channels: 3 } }).jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toBuffer());
    fs.writeFileSync(path.join(dir, 'dog', 'notes.txt'), 'ignored');
    fs.writeFileSync(path.join(dir, '.hidden.png'), 'ignored');
    const ds = await openImageFolder(dir);
    assert.equal(ds.length, 4);
    assert.deepEqual(ds.shape, [3, 6, 5]);
    assert.deepEqual(ds.names, ['cat/2.png', 'cat/10.png', 'dog/1.webp', 'dog/3.jpg']);
    assert.deepEqual(ds.classNames, ['cat', 'dog']);
    assert.deepEqual(Array.from(ds.labels!), [0, 0, 1, 1]);
    assert.deepEqual(ds.images.subarray(90, 180), a);  // cat/10.png, lossless
    assert.deepEqual(ds.images.subarray(180, 270), a);  // lossless WebP
    const jpeg = ds.images.subarray(270, 360);
    assert.ok(jpeg.every((v, i) => Math.abs(v - a[i]) <= 12), 'JPEG close to the original');
    const b = await ds.read([3, 0]);
    assert.deepEqual(b.names, ['dog/3.jpg', 'cat/2.png']);
    const grey = await openImageFolder(dir, { channels: 1, label: 'none' });
    assert.deepEqual(grey.shape, [1, 6, 5]);
    assert.equal(grey.hasLabels, false);
    const [r, g, bl] = [a[0], a[30], a[60]];
    assert.equal(grey.images[30], (r * 19595 + g * 38470 + bl * 7471 + 0x8000) >>> 16);
    const small = await openImages(dir, { size: [3, 2], kernel: 'nearest' });
    assert.deepEqual(small.shape, [3, 3, 2]);
  });

  it('image tar.gz and zip archives: streamed, labels from folders below the common root', async () => {
    const dir = tmpDir();
    const entries: { name: string; data: Uint8Array }[] = [];
    for (const cls of ['A', 'B']) {
      for (let i = 0; i < 3; i++) {
        const px = new Uint8Array(28 * 28).fill(cls === 'A' ? 10 + i : 200 + i);
        entries.push({ name: `notMNIST_small/${cls}/img${i}.png`, data: await png(px, 28, 28, 1) });
      }
    }
    const tgz = path.join(dir, 'letters.tar.gz');
    fs.writeFileSync(tgz, buildTar(entries, { gzip: true }));
    const zip = path.join(dir, 'letters.zip');
    fs.writeFileSync(zip, buildZip(entries.map((e) => ({ ...e, deflate: true }))));
    for (const ds of [await openImageTar(tgz), await openImageZip(zip), await openImages(tgz)]) {
      assert.equal(ds.length, 6);
      assert.deepEqual(ds.shape, [1, 28, 28]);
      assert.deepEqual(ds.classNames, ['A', 'B']);
      assert.deepEqual(Array.from(ds.labels!), [0, 0, 0, 1, 1, 1]);
      assert.deepEqual(Array.from(ds.images.subarray(0, 2)), [10, 10]);
      assert.equal(ds.images[5 * 784], 202);
    }
    const names: string[] = [];
    for await (const e of readTar(tgz, { filter: () => false })) names.push(e.name);
    assert.equal(names.length, 6);
  });

  it('the fast PNG decoder agrees with sharp on every PNG kind (all filters, low-bit grey); others fall back to sharp', async () => {
    const rng = (seed: number) => () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed >> 16; };
    const r = rng(7);
    const noise = (n: number, smooth: boolean) => { const a = new Uint8Array(n); for (let i = 0; i < n; i++) a[i] = smooth ? (i * 3 + (r() & 7)) & 255 : r() & 255; return a; };
    const cases: Buffer[] = [];
    for (const ch of [1, 2, 3, 4] as const) {
      for (const smooth of [true, false]) {
        const img = sharp(Buffer.from(noise(13 * 9 * ch, smooth)), { raw: { width: 13, height: 9, channels: ch } });
        cases.push(await (ch <= 2 ? img.toColourspace('b-w') : img).png({ adaptiveFiltering: true, compressionLevel: 9 }).toBuffer());
      }
    }
    const rgb = sharp(Buffer.from(noise(16 * 16 * 3, true)), { raw: { width: 16, height: 16, channels: 3 } });
    cases.push(await rgb.clone().png({ palette: true }).toBuffer());        // palette: sharp
    cases.push(await rgb.clone().png({ progressive: true }).toBuffer());    // interlaced: sharp
    for (const c of cases) {
      const fast = await decodeImage(c, { channels: 'auto' });
      const ref = await decodeImage(c, { channels: 'auto', decoder: 'sharp' });
      assert.deepEqual(fast.shape, ref.shape);
      assert.deepEqual(fast.data, ref.data);
    }
    // Hand-made 1/2/4-bit greyscale PNGs (row filter 0), expanded like libpng and PIL.
    const chunk = (type: string, data: Buffer) => {
      const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
      const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
      const crc = Buffer.alloc(4); crc.writeUInt32BE(zlib.crc32(td));
      return Buffer.concat([len, td, crc]);
    };
    for (const depth of [1, 2, 4]) {
      const w = 11, h = 3, max = (1 << depth) - 1;
      const vals = Array.from({ length: w * h }, (_, i) => (i * 5) % (max + 1));
      const stride = Math.ceil((w * depth) / 8);
      const rows = Buffer.alloc((stride + 1) * h);
      vals.forEach((v, i) => { const y = Math.floor(i / w), x = i % w, bit = x * depth; rows[y * (stride + 1) + 1 + (bit >> 3)] |= v << (8 - depth - (bit & 7)); });
      const ihdr = Buffer.alloc(13); ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = depth; ihdr[9] = 0;
      const file = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
      const fast = await decodeImage(file);
      assert.deepEqual(fast.shape, [1, h, w]);
      assert.deepEqual(Array.from(fast.data), vals.map((v) => Math.round((v * 255) / max)), `depth ${depth}`);
      assert.deepEqual(fast.data, (await decodeImage(file, { decoder: 'sharp' })).data, `depth ${depth} vs sharp`);
    }
  });

  it('decodeImage: RGBA drops alpha, grey to RGB replicates', async () => {
    const rgba = new Uint8Array([10, 20, 30, 255, 40, 50, 60, 0]);
    const d = await decodeImage(await png(rgba, 2, 1, 4));
    assert.deepEqual(d.shape, [3, 1, 2]);
    assert.deepEqual(Array.from(d.data), [10, 40, 20, 50, 30, 60]);
    const g = await decodeImage(await png(new Uint8Array([7, 9]), 2, 1, 1), { channels: 3 });
    assert.deepEqual(Array.from(g.data), [7, 9, 7, 9, 7, 9]);
  });

  it('raw uint8 arrays with a JSON description: write, read lazily, NHWC', async () => {
    const dir = tmpDir();
    const imgs = pattern(7, 3, 2, 4);
    const src = new ArrayDataset({ name: 'src', images: imgs, shape: [3, 2, 4], labels: Int32Array.from([0, 1, 2, 3, 4, 5, 6]), classNames: ['a', 'b', 'c', 'd', 'e', 'f', 'g'] });
    const desc = await writeRaw(src, path.join(dir, 'set.json'), { batchSize: 3 });
    assert.deepEqual(desc.shape, [7, 3, 2, 4]);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['set.images.u8', 'set.json', 'set.labels.i32']);
    const ds = await openRaw(path.join(dir, 'set.json'));
    assert.ok(ds instanceof RecordFileDataset);
    const all = await readAll(ds);
    assert.deepEqual(all.images.data, imgs);
    assert.deepEqual(Array.from(all.labels!), [0, 1, 2, 3, 4, 5, 6]);
    assert.deepEqual(ds.classNames, ['a', 'b', 'c', 'd', 'e', 'f', 'g']);
    fs.writeFileSync(path.join(dir, 'hwc.u8'), toNhwc(imgs, 7, 3, 2, 4));
    fs.writeFileSync(path.join(dir, 'lab.u8'), Uint8Array.from([6, 5, 4, 3, 2, 1, 0]));
    const hwc = await openRaw({ shape: [7, 3, 2, 4], dtype: 'uint8', file: 'hwc.u8', layout: 'NHWC', labels: { file: 'lab.u8', dtype: 'uint8' } }, dir);
    const b = await hwc.read([4]);
    assert.deepEqual(b.images.data, imgs.subarray(4 * 24, 5 * 24));
    assert.deepEqual(Array.from(b.labels!), [2]);
  });

  it('NORB matrices (SmallNORB): stereo pairs as consecutive images with the pair\'s category', async () => {
    const dir = tmpDir();
    const imgs = pattern(6, 1, 8, 8);
    fs.writeFileSync(path.join(dir, 'dat.mat'), encodeNorb('uint8', [3, 2, 8, 8], imgs));
    fs.writeFileSync(path.join(dir, 'cat.mat.gz'), zlib.gzipSync(encodeNorb('int32', [3], [4, 0, 2])));
    fs.writeFileSync(path.join(dir, 'dat.mat.gz'), zlib.gzipSync(encodeNorb('uint8', [3, 2, 8, 8], imgs)));
    for (const f of ['dat.mat', 'dat.mat.gz']) {
      const ds = await openSmallNorb(path.join(dir, f), { categories: path.join(dir, 'cat.mat.gz') });
      assert.equal(ds.length, 6);
      assert.deepEqual(ds.shape, [1, 8, 8]);
      const all = await readAll(ds);
      assert.deepEqual(Array.from(all.labels!), [4, 4, 0, 0, 2, 2]);
      assert.deepEqual(all.images.data, imgs);
    }
  });

  it('SVHN MAT files (compressed and not): X [32,32,3,n] column-major to NCHW, label 10 -> 0', async () => {
    const dir = tmpDir();
    const n = 3;
    const nchw = pattern(n, 3, 32, 32);
    const col = new Uint8Array(n * 3072);
    for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) {
      col[y + 32 * (x + 32 * (c + 3 * i))] = nchw[i * 3072 + c * 1024 + y * 32 + x];
    }
    for (const compress of [true, false]) {
      const f = path.join(dir, `svhn${compress}.mat`);
      fs.writeFileSync(f, encodeMat([
        { name: 'X', className: 'uint8', dims: [32, 32, 3, n], data: col, compress },
        { name: 'y', className: 'double', dims: [n, 1], data: [10, 1, 9], compress },
      ]));
      const vars = await listMatVariables(f);
      assert.deepEqual(vars.map((v) => [v.name, v.className, v.dims.join('x')]), [['X', 'uint8', `32x32x3x${n}`], ['y', 'double', `${n}x1`]]);
      const ds = await openSvhnMat(f);
      const all = await readAll(ds);
      assert.deepEqual(Array.from(all.labels!), [0, 1, 9]);
      assert.deepEqual(all.images.data, nchw);
    }
  });

  it('transforms: toFloat, binarize, invert, greyscale, channels, resize, shape checks', async () => {
    const batch = { data: Uint8Array.from([0, 127, 128, 255]), shape: [1, 1, 2, 2] as [number, number, number, number] };
    assert.deepEqual(Array.from(toFloat(batch).data), [0, 127 / 255, 128 / 255, 1].map((v) => Math.fround(v)));
    assert.deepEqual(Array.from(binarize(batch).data), [0, 0, 255, 255]);
    assert.deepEqual(Array.from(binarize(batch, { threshold: 0.9, output: 'float32' }).data), [0, 0, 0, 1]);
    assert.deepEqual(Array.from(invert(batch).data), [255, 128, 127, 0]);
    assert.deepEqual(Array.from(batch.data), [0, 127, 128, 255], 'inputs are not modified');
    const rgb = { data: Uint8Array.from([255, 0, 0, 255, 0, 0]), shape: [1, 3, 1, 2] as [number, number, number, number] };
    assert.deepEqual(Array.from(greyscale(rgb).data), [76, 150]);   // PIL 'L': pure red 76, pure green 150
    assert.deepEqual(Array.from(greyscale(rgb, 'bt709').data), [54, 182]);
    assert.deepEqual(toChannels(greyscale(rgb), 3).shape, [1, 3, 1, 2]);
    const up = await resize({ data: Uint8Array.from([10, 20, 30, 40]), shape: [1, 1, 2, 2] }, [4, 4], { kernel: 'nearest' });
    assert.deepEqual(Array.from(up.data), [10, 10, 20, 20, 10, 10, 20, 20, 30, 30, 40, 40, 30, 30, 40, 40]);
    const down = await resize({ data: new Uint8Array(2 * 3 * 96 * 96).fill(77), shape: [2, 3, 96, 96] }, [28, 28], { kernel: 'linear' });
    assert.deepEqual(down.shape, [2, 3, 28, 28]);
    assert.ok(down.data.every((v) => v === 77));
    checkImageShape([1, 28, 28], [1, 28, 28]);
    assert.throws(() => checkImageShape(rgb, [1, 28, 28]), (e: unknown) => e instanceof HVAEError && e.code === 'ERR_HVAE_SHAPE'
      && /3 channels instead of 1 \(convert with greyscale\(\)\)/.test(e.message) && /size 1x2 instead of 28x28/.test(e.message));
  });
});

describe('40.data.formats: named datasets on synthetic files', function () {
  this.timeout(60000);

  it('KMNIST, CIFAR10 (official binary archive), SVHN, SmallNORB28x28[Inverted], Omniglot28x28[Inverted]', async () => {
    const root = tmpDir();
    // KMNIST: gzip IDX files with the standard names.
    fs.mkdirSync(path.join(root, 'kmnist'));
    await writeIdx(path.join(root, 'kmnist', 't10k-images-idx3-ubyte'), [3, 28, 28], pattern(3, 1, 28, 28));
    await writeIdx(path.join(root, 'kmnist', 't10k-labels-idx1-ubyte'), [3], [1, 2, 3]);
    const k = await loadDataset('KMNIST', { split: 'test', root, checkCount: false });
    assert.equal(k.length, 3);
    assert.equal(k.files[0].status, 'unverified');  // synthetic: no checksum can match
    await assert.rejects(loadDataset('KMNIST', { split: 'test', root }), /expected 10000 images/);
    await assert.rejects(loadDataset('KMNIST', { split: 'test', root, checkCount: false, verify: 'strict' }), /cannot be verified/);

    // CIFAR-10: the official archive name (checksum will not match: verify off).
    fs.mkdirSync(path.join(root, 'cifar10'));
    const rec = Buffer.alloc(2 * 3073);
    rec[3073] = 7;
    fs.writeFileSync(path.join(root, 'cifar10', 'cifar-10-binary.tar.gz'), buildTar([{ name: 'cifar-10-batches-bin/test_batch.bin', data: rec }], { gzip: true }));
    const c = await loadDataset('CIFAR10', { split: 'test', root, verify: false, checkCount: false });
    assert.equal(c.sourceId, 'binary-tar-gz');
    assert.deepEqual(Array.from((await c.read([1])).labels!), [7]);

    // SVHN.
    fs.mkdirSync(path.join(root, 'svhn'));
    fs.writeFileSync(path.join(root, 'svhn', 'extra_32x32.mat'), encodeMat([
      { name: 'X', className: 'uint8', dims: [32, 32, 3, 2], data: new Uint8Array(6144).fill(5), compress: true },
      { name: 'y', className: 'double', dims: [2, 1], data: [3, 10], compress: true },
    ]));
    const s = await loadDataset('SVHN', { split: 'extra', root, verify: false, checkCount: false });
    assert.deepEqual(s.shape, [3, 32, 32]);
    assert.deepEqual(Array.from((await s.read([0, 1])).labels!), [3, 0]);

    // SmallNORB: 96x96 stereo pairs, resized to 28x28 with sharp's bilinear kernel; the Inverted variant.
    fs.mkdirSync(path.join(root, 'smallnorb'));
    const stem = 'smallnorb-5x01235x9x18x6x2x96x96-testing';
    fs.writeFileSync(path.join(root, 'smallnorb', `${stem}-dat.mat`), encodeNorb('uint8', [2, 2, 96, 96], new Uint8Array(4 * 9216).fill(40)));
    fs.writeFileSync(path.join(root, 'smallnorb', `${stem}-cat.mat`), encodeNorb('int32', [2], [3, 1]));
    const n = await loadDataset('SmallNORB28x28', { split: 'test', root, verify: false, checkCount: false });
    assert.deepEqual(n.shape, [1, 28, 28]);
    const nb = await n.read([0, 3]);
    assert.deepEqual(nb.images.shape, [2, 1, 28, 28]);
    assert.ok(nb.images.data.every((v) => v === 40));
    assert.deepEqual(Array.from(nb.labels!), [3, 1]);
    const ni = await loadDataset('SmallNORB28x28Inverted', { split: 'test', root, verify: false, checkCount: false });
    assert.ok((await ni.read([2])).images.data.every((v) => v === 215));

    // notMNIST: notMNIST_small.tar.gz with folders A..J and one unreadable file, skipped and reported by default.
    fs.mkdirSync(path.join(root, 'notmnist'));
    const letter = await png(new Uint8Array(784).fill(9), 28, 28, 1);
    fs.writeFileSync(path.join(root, 'notmnist', 'notMNIST_small.tar.gz'), buildTar([
      { name: 'notMNIST_small/A/a1.png', data: letter },
      { name: 'notMNIST_small/C/c1.png', data: letter },
      { name: 'notMNIST_small/C/broken.png', data: Buffer.alloc(0) },
    ], { gzip: true }));
    const nm = await loadDataset('notMNIST', { split: 'test', root });
    assert.equal(nm.sourceId, 'png-tar');
    assert.equal(nm.files[0].status, 'unverified');
    assert.equal(nm.length, 2);
    assert.deepEqual(nm.skipped.map((x) => x.file), ['notMNIST_small/C/broken.png']);
    assert.deepEqual(Array.from((await nm.read([0, 1])).labels!), [0, 2]);

    // Omniglot: a zip of 105x105 PNGs (black strokes on white), nearest-neighbour to 28x28.
    fs.mkdirSync(path.join(root, 'omniglot'));
    const glyph = new Uint8Array(105 * 105).fill(255);
    for (let y = 40; y < 60; y++) for (let x = 0; x < 105; x++) glyph[y * 105 + x] = 0;
    const pngGlyph = await png(glyph, 105, 105, 1);
    fs.writeFileSync(path.join(root, 'omniglot', 'images_evaluation.zip'), buildZip([
      { name: 'images_evaluation/Angelic/character01/0965_01.png', data: pngGlyph },
      { name: 'images_evaluation/Angelic/character02/0966_01.png', data: pngGlyph },
      { name: 'images_evaluation/Tengwar/character01/1600_01.png', data: pngGlyph, deflate: true },
    ]));
    const o = await loadDataset('Omniglot28x28', { split: 'test', root, verify: false, checkCount: false });
    assert.deepEqual(o.skipped, []);
    assert.deepEqual(o.shape, [1, 28, 28]);
    assert.deepEqual(o.classNames, ['Angelic/character01', 'Angelic/character02', 'Tengwar/character01']);
    const ob = await o.read([2]);
    assert.deepEqual(Array.from(ob.labels!), [2]);
    assert.equal(ob.images.data[0], 255);
    assert.equal(ob.images.data[14 * 28], 0, 'the stroke survives nearest-neighbour resizing');
    const oi = await loadDataset('Omniglot28x28Inverted', { split: 'test', root, verify: false, checkCount: false });
    const oib = await oi.read([2]);
    assert.equal(oib.images.data[0], 0);
    assert.equal(oib.images.data[14 * 28], 255);
  });
});
