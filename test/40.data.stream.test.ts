/**
 * Streaming: the seeded PRNG and shuffle, batches() (order, shuffle, read-ahead bound, early exit, abort), subset,
 * concat, the held-out validation split, and flat memory while streaming 1,000,000 images.
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { HVAEError } from '../lib/errors.js';
import { permutation, Rng } from '../lib/data/random.js';
import { openRaw, writeRaw } from '../lib/data/raw.js';
import { ArrayDataset, batches, concat, DataBatch, Dataset, mapImages, materialize, proceduralDataset, readAll, splitTrainValidation, subset } from '../lib/data/stream.js';
import { tmpDir } from './setup.js';

/** A dataset whose image i is filled with i & 255 (and pixel 0 = (i >> 8) & 255), label i % 10. */
function synthetic(n: number, shape: [number, number, number] = [1, 28, 28]): Dataset {
  return proceduralDataset({
    name: `synthetic ${n}`, length: n, shape,
    generate: (i, out) => { out.fill(i & 255); out[0] = (i >> 8) & 255; },
    label: (i) => i % 10,
  });
}

function checkBatch(b: DataBatch, per: number): void {
  for (let k = 0; k < b.indices.length; k++) {
    const i = b.indices[k];
    assert.equal(b.images.data[k * per + 1], i & 255);
    assert.equal(b.labels![k], i % 10);
  }
}

describe('40.data.stream: PRNG and shuffling', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    const xa = Array.from({ length: 8 }, () => a.nextU32());
    assert.deepEqual(xa, Array.from({ length: 8 }, () => b.nextU32()));
    assert.notDeepEqual(xa, Array.from({ length: 8 }, () => c.nextU32()));
    assert.ok(xa.every((v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32));
    assert.deepEqual(Array.from(permutation(10, 'abc')), Array.from(permutation(10, 'abc')));
  });

  it('permutations are permutations, and nextInt is roughly uniform', () => {
    const p = permutation(100000, 7);
    const seen = new Uint8Array(100000);
    for (const v of p) seen[v]++;
    assert.ok(seen.every((v) => v === 1));
    let fixed = 0;
    for (let i = 0; i < p.length; i++) if (p[i] === i) fixed++;
    assert.ok(fixed < 10, `a shuffled permutation has ~1 fixed point, got ${fixed}`);
    const r = new Rng(1);
    const counts = new Array(6).fill(0);
    for (let i = 0; i < 60000; i++) counts[r.nextInt(6)]++;
    assert.ok(counts.every((c) => Math.abs(c - 10000) < 400), counts.join(' '));
    assert.throws(() => r.nextInt(0), (e: unknown) => e instanceof HVAEError && e.code === 'ERR_HVAE_OPTION');
  });
});

describe('40.data.stream: batches', function () {
  this.timeout(60000);

  it('index order by default, the last batch partial unless dropLast', async () => {
    const ds = synthetic(1050);
    const sizes: number[] = [];
    let next = 0;
    for await (const b of batches(ds, { batchSize: 128 })) {
      sizes.push(b.indices.length);
      assert.deepEqual(b.images.shape, [b.indices.length, 1, 28, 28]);
      for (const i of b.indices) assert.equal(i, next++);
      checkBatch(b, 784);
    }
    assert.deepEqual(sizes, [128, 128, 128, 128, 128, 128, 128, 128, 26]);
    let n = 0;
    for await (const b of batches(ds, { batchSize: 128, dropLast: true })) n += b.indices.length;
    assert.equal(n, 1024);
  });

  it('shuffle visits every index once, in a seeded order', async () => {
    const ds = synthetic(5000);
    const order = async (seed: number) => {
      const out: number[] = [];
      for await (const b of batches(ds, { batchSize: 333, shuffle: true, seed })) { checkBatch(b, 784); out.push(...b.indices); }
      return out;
    };
    const a = await order(1);
    assert.deepEqual([...a].sort((x, y) => x - y), Array.from({ length: 5000 }, (_, i) => i));
    assert.deepEqual(await order(1), a);
    assert.notDeepEqual(await order(2), a);
  });

  it('reads at most readAhead batches ahead of the consumer, and stops when the consumer stops', async () => {
    const inner = synthetic(10000);
    let started = 0;
    const counting: Dataset = { ...inner, name: inner.name, length: inner.length, shape: inner.shape, hasLabels: true, read: (i) => { started++; return inner.read(i); } };
    for (const readAhead of [0, 1, 3]) {
      started = 0;
      let consumed = 0;
      for await (const _ of batches(counting, { batchSize: 100, readAhead })) {
        consumed++;
        await new Promise((r) => setTimeout(r, 1));
        assert.ok(started - consumed <= readAhead, `readAhead ${readAhead}: ${started} started, ${consumed} consumed`);
        if (consumed === 20) break;
      }
      await new Promise((r) => setTimeout(r, 10));
      assert.ok(started <= 20 + readAhead, `no reads after the loop stopped (${started})`);
    }
  });

  it('an abort signal stops the iteration with ERR_HVAE_ABORTED', async () => {
    const ac = new AbortController();
    let n = 0;
    await assert.rejects(async () => {
      for await (const _ of batches(synthetic(10000), { batchSize: 100, signal: ac.signal })) if (++n === 3) ac.abort();
    }, (e: unknown) => e instanceof HVAEError && e.code === 'ERR_HVAE_ABORTED');
    assert.equal(n, 3);
  });

  it('subset, concat and the held-out validation split', async () => {
    const a = synthetic(3000);
    const s = subset(a, [5, 10, 2999]);
    const sb = await s.read([2, 0]);
    assert.deepEqual(Array.from(sb.indices), [2, 0]);
    assert.deepEqual(Array.from(sb.labels!), [9, 5]);
    assert.equal(sb.images.data[1], 2999 & 255);
    const b = new ArrayDataset({ name: 'b', images: new Uint8Array(2 * 784).fill(7), shape: [1, 28, 28], labels: Int32Array.from([1, 2]) });
    const c = concat([a, b]);
    assert.equal(c.length, 3002);
    const cb = await c.read([3001, 0, 3000, 2999]);
    assert.deepEqual(Array.from(cb.labels!), [2, 0, 1, 9]);
    assert.equal(cb.images.data[0], 7);
    assert.equal(cb.images.data[784 + 1], 0);

    const { train, validation } = splitTrainValidation(a, { validation: 500, seed: 5 });
    assert.equal(train.length, 2500);
    assert.equal(validation.length, 500);
    const ti = (await readAll(train)).labels!;
    assert.equal(ti.length, 2500);
    const all = [...(await readAll(train, { batchSize: 128 })).images.data.filter((_, p) => p % 784 === 1)];
    assert.equal(all.length, 2500);
    const idsT: number[] = [];
    for await (const bt of batches(train, { batchSize: 1000 })) {
      const parentIds = Array.from({ length: bt.indices.length }, (_, k) => bt.images.data[k * 784] * 256 + bt.images.data[k * 784 + 1]);
      idsT.push(...parentIds);
    }
    const idsV: number[] = [];
    for await (const bv of batches(validation, { batchSize: 1000 })) {
      idsV.push(...Array.from({ length: bv.indices.length }, (_, k) => bv.images.data[k * 784] * 256 + bv.images.data[k * 784 + 1]));
    }
    const union = new Set([...idsT, ...idsV]);
    assert.equal(union.size, 3000, 'disjoint and complete');
    assert.deepEqual(idsT, [...idsT].sort((x, y) => x - y), 'ascending order');
    const again = splitTrainValidation(a, { validation: 500, seed: 5 });
    const v2: number[] = [];
    for await (const bv of batches(again.validation, { batchSize: 1000 })) v2.push(...Array.from({ length: bv.indices.length }, (_, k) => bv.images.data[k * 784] * 256 + bv.images.data[k * 784 + 1]));
    assert.deepEqual(v2, idsV, 'same seed, same split');
    assert.equal(splitTrainValidation(a, { validation: 0.1 }).validation.length, 300);
    assert.throws(() => splitTrainValidation(a, { validation: 3000 }), (e: unknown) => e instanceof HVAEError && e.code === 'ERR_HVAE_OPTION');
  });

  it('mapImages checks the declared shape; materialize copies into memory', async () => {
    const a = synthetic(10, [1, 2, 2]);
    const bad = mapImages(a, (b) => b, { shape: [1, 3, 3] });
    await assert.rejects(bad.read([0]), (e: unknown) => e instanceof HVAEError && e.code === 'ERR_HVAE_SHAPE');
    const m = await materialize(a);
    assert.ok(m instanceof ArrayDataset);
    assert.deepEqual((await m.read([3])).images.data, (await a.read([3])).images.data);
  });
});

describe('40.data.stream: memory stays flat', function () {
  this.timeout(120000);

  it('streams 1,000,000 synthetic 28x28 images in shuffled batches with flat resident memory', async () => {
    const N = 1_000_000;
    const ds = synthetic(N);
    let n = 0;
    let rssAt100k = 0;
    let maxRss = 0;
    let labelSum = 0;
    let spot = 0;
    for await (const b of batches(ds, { batchSize: 500, shuffle: true, seed: 1, readAhead: 2 })) {
      n += b.indices.length;
      for (let k = 0; k < b.labels!.length; k++) labelSum += b.labels![k];
      if (b.images.data[1] !== (b.indices[0] & 255)) spot++;
      if (!rssAt100k && n >= 100_000) rssAt100k = process.memoryUsage().rss;
      if (n >= 100_000) maxRss = Math.max(maxRss, process.memoryUsage().rss);
    }
    const end = process.memoryUsage().rss;
    assert.equal(n, N);
    assert.equal(labelSum, 4_500_000);
    assert.equal(spot, 0);
    const growth = (maxRss - rssAt100k) / 2 ** 20;
    console.log(`      1e6 images: rss at 100k ${(rssAt100k / 2 ** 20).toFixed(0)} MiB, max after ${(maxRss / 2 ** 20).toFixed(0)} MiB, end ${(end / 2 ** 20).toFixed(0)} MiB`);
    assert.ok(growth < 100, `resident memory grew by ${growth.toFixed(0)} MiB between the 100k mark and the end`);
  });

  it('streams a 200,000-image raw file from disk (shuffled positional reads) with flat resident memory', async () => {
    const dir = tmpDir();
    const src = synthetic(200_000);
    await writeRaw(src, path.join(dir, 'big.json'), { batchSize: 4096 });
    const ds = await openRaw(path.join(dir, 'big.json'));
    let n = 0;
    let rss0 = 0;
    let maxRss = 0;
    for await (const b of batches(ds, { batchSize: 512, shuffle: true, seed: 9 })) {
      if (n === 0) checkBatch(b, 784);
      n += b.indices.length;
      if (!rss0 && n >= 20_000) rss0 = process.memoryUsage().rss;
      if (rss0) maxRss = Math.max(maxRss, process.memoryUsage().rss);
    }
    assert.equal(n, 200_000);
    const growth = (maxRss - rss0) / 2 ** 20;
    assert.ok(growth < 100, `resident memory grew by ${growth.toFixed(0)} MiB`);
  });
});
