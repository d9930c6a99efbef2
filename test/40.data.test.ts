/**
 * Named datasets on the real files of this machine: FashionMNIST (Debian's package), MNIST test, the notMNIST sample
 * and the CIFAR-10 test PNG archive (../shared/data, see its PROVENANCE.md), plus resolution and not-found errors.
 */
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HVAEError } from '../lib/errors.js';
import { dataRoots, datasetInfo, DATASET_NAMES, listDatasets, loadDataset, resolveDataset } from '../lib/data/datasets.js';
import { batches, readAll } from '../lib/data/stream.js';
import { clearVerificationCache } from '../lib/data/verify.js';
import { SHARED, tmpDir } from './setup.js';

const FASHION_DIR = '/usr/share/datasets/fashion-mnist';
const haveFashion = fs.existsSync(path.join(FASHION_DIR, 'train-images-idx3-ubyte.gz'));
const DATA = path.join(SHARED, 'data');

function sha256(b: Uint8Array): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

function classCounts(labels: Int32Array, k = 10): number[] {
  const c = new Array(k).fill(0);
  for (const l of labels) c[l]++;
  return c;
}

describe('40.data: named datasets', function () {
  this.timeout(120000);

  (haveFashion ? describe : describe.skip)('FashionMNIST (Debian dataset-fashion-mnist)', () => {
    it('loads train: 60000 x 1x28x28, verified, standard labels and pixels', async () => {
      const ds = await loadDataset('FashionMNIST', { split: 'train', root: '/usr/share/datasets' });
      assert.equal(ds.length, 60000);
      assert.deepEqual(ds.shape, [1, 28, 28]);
      assert.equal(ds.sourceId, 'idx-gz');
      assert.deepEqual(ds.files.map((f) => f.status), ['verified', 'verified']);
      assert.equal(ds.classNames?.[9], 'Ankle boot');
      const all = await readAll(ds);
      assert.deepEqual(Array.from(all.labels!.subarray(0, 10)), [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
      assert.deepEqual(classCounts(all.labels!), new Array(10).fill(6000));
      // sha256 of the pixel bytes = `zcat train-images-idx3-ubyte.gz | tail -c +17 | sha256sum`.
      assert.equal(sha256(all.images.data), '2e487a6c89124f78f2d7521542223cafe96f7123c3ca13d447772ac6ecbb3012');
      // A spot check of image 0 (an ankle boot), row 10.
      assert.deepEqual(Array.from(all.images.data.subarray(300, 307)), [210, 211, 213, 223, 220, 243, 202]);
    });

    it('loads test: 10000 images, first labels 9 2 1 1 6', async () => {
      const ds = await loadDataset('fashion-mnist', { split: 'test', root: '/usr/share/datasets' });
      assert.equal(ds.length, 10000);
      const b = await ds.read([0, 1, 2, 3, 4]);
      assert.deepEqual(Array.from(b.labels!), [9, 2, 1, 1, 6]);
      const all = await readAll(ds);
      assert.equal(sha256(all.images.data), 'c867c93ff95360594e8ec3287995350b824dd110b11595c0e13d5423f621867a');
    });
  });

  it('loads MNIST test from ../shared/data: 10000 images, checksums verified, class counts of PROVENANCE.md', async () => {
    const ds = await loadDataset('MNIST', { split: 'test', root: DATA });
    assert.equal(ds.length, 10000);
    assert.deepEqual(ds.files.map((f) => [path.basename(f.path), f.status, f.matched]), [
      ['t10k-images-idx3-ubyte.gz', 'verified', 'sha256'], ['t10k-labels-idx1-ubyte.gz', 'verified', 'sha256'],
    ]);
    const all = await readAll(ds);
    assert.deepEqual(Array.from(all.labels!.subarray(0, 10)), [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    assert.deepEqual(classCounts(all.labels!), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    assert.equal(sha256(all.images.data), '6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161');
  });

  it('loads the notMNIST test sample: 10000 images, 1000 per letter A..J', async () => {
    const ds = await loadDataset('notMNIST', { split: 'test', root: DATA });
    assert.equal(ds.length, 10000);
    assert.equal(ds.sourceId, 'sample-idx-gz');
    assert.deepEqual(ds.classNames, ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J']);
    const all = await readAll(ds);
    assert.deepEqual(classCounts(all.labels!), new Array(10).fill(1000));
    assert.deepEqual(Array.from(all.labels!.subarray(0, 5)), [3, 5, 9, 2, 7]);
  });

  it('loads the CIFAR-10 test PNG archive: 10000 x 3x32x32, labels and per-channel mean/std of PROVENANCE.md', async () => {
    const ds = await loadDataset('CIFAR10', { split: 'test', root: DATA });
    assert.equal(ds.length, 10000);
    assert.deepEqual(ds.shape, [3, 32, 32]);
    assert.equal(ds.sourceId, 'png-tar');
    assert.equal(ds.files[0].status, 'verified');
    const all = await readAll(ds);
    assert.deepEqual(Array.from(all.labels!.subarray(0, 10)), [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]);
    assert.deepEqual(classCounts(all.labels!), new Array(10).fill(1000));
    assert.equal(all.names![0], 'data/cifar/test/0_cat.png');
    assert.equal(all.names![9999], 'data/cifar/test/9999_horse.png');
    const px = all.images.data;
    const mean = [0, 0, 0];
    const sq = [0, 0, 0];
    for (let i = 0; i < 10000; i++) {
      for (let c = 0; c < 3; c++) {
        const o = i * 3072 + c * 1024;
        for (let p = 0; p < 1024; p++) { const v = px[o + p]; mean[c] += v; sq[c] += v * v; }
      }
    }
    const n = 10000 * 1024;
    const m = mean.map((s) => s / n);
    const sd = sq.map((s, c) => Math.sqrt(s / n - m[c] * m[c]));
    const pm = [126.02464141, 123.7085042, 114.85431865];
    const ps = [62.89639135, 61.93752718, 66.7060564];
    m.forEach((v, c) => assert.ok(Math.abs(v - pm[c]) < 1e-7, `mean[${c}] ${v} vs ${pm[c]}`));
    sd.forEach((v, c) => assert.ok(Math.abs(v - ps[c]) < 1e-6, `std[${c}] ${v} vs ${ps[c]}`));
    // Regression value of this reader (the means above are the independent check).
    assert.equal(sha256(px), '177777c33ba79825320efa646ad04a94bdc3c80e4ebe3bd21724f8cdfd4b9d56');
  });

  it('streams a named dataset in shuffled batches', async () => {
    const ds = await loadDataset('MNIST', { split: 'test', root: DATA });
    let seen = 0;
    const sum = new Float64Array(1);
    for await (const b of batches(ds, { batchSize: 1000, shuffle: true, seed: 3 })) {
      assert.equal(b.images.shape[0], b.labels!.length);
      seen += b.indices.length;
      for (const v of b.images.data) sum[0] += v;
    }
    assert.equal(seen, 10000);
    assert.ok(Math.abs(sum[0] / (10000 * 784) - 33.791224) < 1e-5);
  });

  it('a missing dataset is ERR_HVAE_DATA listing every place looked at and how to get it', async () => {
    const root = tmpDir();
    await assert.rejects(loadDataset('KMNIST', { split: 'test', root }), (e: unknown) => {
      assert.ok(e instanceof HVAEError);
      assert.equal(e.code, 'ERR_HVAE_DATA');
      assert.match(e.message, /KMNIST \(test split\) was not found/);
      assert.ok(e.message.includes(path.join(root, 'kmnist')), e.message);
      assert.ok(e.message.includes(path.join(root, 'KMNIST', 'raw')), e.message);
      assert.match(e.message, /t10k-images-idx3-ubyte\.gz/);
      assert.match(e.message, /hvae-native data fetch KMNIST/);
      assert.match(e.message, /codh\.rois\.ac\.jp/);
      return true;
    });
    await assert.rejects(loadDataset('FashionMNIST', { root }), /apt install dataset-fashion-mnist/);
  });

  it('unknown names and splits are ERR_HVAE_OPTION', async () => {
    await assert.rejects(loadDataset('ImageNet'), (e: unknown) => e instanceof HVAEError && e.code === 'ERR_HVAE_OPTION' && /known datasets: FashionMNIST/.test(e.message));
    await assert.rejects(loadDataset('MNIST', { split: 'extra' }), (e: unknown) => e instanceof HVAEError && e.code === 'ERR_HVAE_OPTION' && /no 'extra' split/.test(e.message));
  });

  it('data roots: options.root, then HVAE_DATA, then the defaults', async () => {
    assert.deepEqual(dataRoots({ root: '/a' }), { roots: ['/a'], from: 'option' });
    const saved = process.env.HVAE_DATA;
    try {
      process.env.HVAE_DATA = `/x${path.delimiter}/y`;
      assert.deepEqual(dataRoots(), { roots: ['/x', '/y'], from: 'env' });
      process.env.HVAE_DATA = DATA;
      const r = await resolveDataset('MNIST', { split: 'test' });
      assert.equal(r.dir, path.join(DATA, 'mnist'));
      delete process.env.HVAE_DATA;
      const d = dataRoots();
      assert.equal(d.from, 'default');
      assert.ok(d.roots.includes('/usr/share/datasets'));
      assert.ok(d.roots.includes(DATA));
    } finally {
      if (saved === undefined) delete process.env.HVAE_DATA; else process.env.HVAE_DATA = saved;
    }
  });

  it('a file with a wrong checksum is ERR_HVAE_DATA naming it; verify: false accepts it', async () => {
    const root = tmpDir();
    const dir = path.join(root, 'mnist');
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(DATA, 'mnist', 't10k-labels-idx1-ubyte.gz'), path.join(dir, 't10k-labels-idx1-ubyte.gz'));
    // Same pixels, recompressed: the file checksum differs but the content checksum matches.
    const zlib = await import('node:zlib');
    const content = zlib.gunzipSync(fs.readFileSync(path.join(DATA, 'mnist', 't10k-images-idx3-ubyte.gz')));
    fs.writeFileSync(path.join(dir, 't10k-images-idx3-ubyte.gz'), zlib.gzipSync(content, { level: 1 }));
    const ok = await loadDataset('MNIST', { split: 'test', root });
    assert.equal(ok.files[0].matched, 'content-sha256');
    // One changed pixel: no checksum matches.
    content[5000] ^= 1;
    clearVerificationCache();
    fs.writeFileSync(path.join(dir, 't10k-images-idx3-ubyte.gz'), zlib.gzipSync(content, { level: 1 }));
    await assert.rejects(loadDataset('MNIST', { split: 'test', root }), (e: unknown) => {
      assert.ok(e instanceof HVAEError && e.code === 'ERR_HVAE_DATA');
      assert.match(e.message, /checksum mismatch for .*t10k-images-idx3-ubyte\.gz: expected sha256 8d422c7b/);
      assert.match(e.message, /fetch it again/);
      return true;
    });
    const unchecked = await loadDataset('MNIST', { split: 'test', root, verify: false });
    assert.equal(unchecked.length, 10000);
  });

  it('uncompressed IDX files are found, verified by content checksum, and read lazily', async () => {
    const root = tmpDir();
    const dir = path.join(root, 'MNIST', 'raw');
    fs.mkdirSync(dir, { recursive: true });
    const zlib = await import('node:zlib');
    for (const f of ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']) {
      fs.writeFileSync(path.join(dir, f), zlib.gunzipSync(fs.readFileSync(path.join(DATA, 'mnist', `${f}.gz`))));
    }
    const ds = await loadDataset('MNIST', { split: 'test', root, verify: 'strict' });
    assert.equal(ds.sourceId, 'idx');
    assert.deepEqual(ds.files.map((f) => f.status), ['verified', 'verified']);
    const b = await ds.read([9999, 0]);
    assert.deepEqual(Array.from(b.labels!), [6, 7]);
  });

  it('describes every dataset and its splits', () => {
    const all = listDatasets();
    assert.deepEqual(all.map((d) => d.name), [...DATASET_NAMES]);
    const svhn = datasetInfo('SVHN');
    assert.deepEqual(svhn.splits.map((s) => s.split), ['train', 'test', 'extra']);
    assert.match(svhn.splits[2].reference, /validation/);
    assert.deepEqual(datasetInfo('Omniglot28x28Inverted').shape, [1, 28, 28]);
    assert.match(datasetInfo('FashionMNIST').splits[1].reference, /validation/);
  });
});
