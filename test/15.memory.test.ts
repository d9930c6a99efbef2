/**
 * The caching CPU allocator (native/allocator.h): a repeated training step is served from the cache (the point:
 * no page faults per step), scoring does not fill it, results do not depend on it, the limit is honoured, it can be
 * emptied and turned off, and bad options get typed errors.
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { HVAE, cpuCache, setCpuCache } from 'hvae-native';
import { FIXTURES, ROOT, greyFixtureBatch } from './setup.js';

/** 32 fixture images: their activations are several MiB each, so they go through the cache. */
function batch32(): { data: Float32Array; shape: [number, number, number, number] } {
  const { batch } = greyFixtureBatch();
  const n = 32, per = batch.data.length / batch.shape[0];
  const data = new Float32Array(n * per);
  for (let i = 0; i < n; i++) data.set(batch.data.subarray((i % batch.shape[0]) * per, (i % batch.shape[0] + 1) * per), i * per);
  return { data, shape: [n, 1, 28, 28] };
}

describe('15 CPU memory cache', function () {
  this.timeout(120000);
  const file = path.join(FIXTURES, 'grey', 'weights.safetensors');
  let limit = 0;
  before(function () { limit = cpuCache().maxBytes; });
  after(function () { setCpuCache({ maxBytes: limit }); });

  it('is installed by default, with a positive limit of at most 4 GiB', function () {
    const s = cpuCache();
    assert.equal(s.installed, true);
    assert.ok(s.maxBytes > 0 && s.maxBytes <= 4 * 2 ** 30, `maxBytes ${s.maxBytes}`);
    assert.ok(s.cachedBytes <= s.maxBytes);
  });

  it('serves a repeated training step entirely from the cache', async function () {
    const m = HVAE.load(file, { config: 'fashionmnist' });
    try {
      const images = batch32();
      setCpuCache({ empty: true }); // start from what this test puts there, whatever earlier tests left
      for (let i = 0; i < 2; i++) await m.trainStep(images, { lr: 1e-12 });
      const before = cpuCache();
      await m.trainStep(images, { lr: 1e-12 });
      const after = cpuCache();
      assert.ok(after.hits - before.hits > 20, `hits ${before.hits} -> ${after.hits}`);
      assert.equal(after.misses, before.misses, 'a third identical step should need no new memory');
      assert.ok(after.peakLiveBytes > 0 && after.cachedBytes <= 1.5 * after.peakLiveBytes + 2 ** 20);
    } finally {
      m.dispose();
    }
  });

  it('scoring does not fill the cache', async function () {
    const m = HVAE.load(file, { config: 'fashionmnist' });
    try {
      setCpuCache({ empty: true });
      await m.scores(batch32(), { k: [0, 1, 2], importanceSamples: 2 });
      assert.equal(cpuCache().cachedBytes, 0);
    } finally {
      m.dispose();
    }
  });

  it('gives the same scores with the cache full, with it off, and after emptying it', async function () {
    const m = HVAE.load(file, { config: 'fashionmnist' });
    try {
      const { batch, noise } = greyFixtureBatch();
      await m.trainStep(batch32(), { lr: 1e-12, step: false });
      assert.ok(cpuCache().cachedBytes > 0, 'a training step leaves its blocks in the cache');
      const a = await m.scores(batch, { k: [1, 2], _noise: noise });
      setCpuCache({ maxBytes: 0 });
      assert.equal(cpuCache().cachedBytes, 0);
      await m.trainStep(batch32(), { lr: 1e-12, step: false });
      assert.equal(cpuCache().cachedBytes, 0, 'nothing is kept with maxBytes 0');
      const b = await m.scores(batch, { k: [1, 2], _noise: noise });
      setCpuCache({ maxBytes: limit });
      await m.trainStep(batch32(), { lr: 1e-12, step: false });
      assert.ok(cpuCache().cachedBytes > 0, 'blocks are kept again');
      setCpuCache({ empty: true });
      assert.equal(cpuCache().cachedBytes, 0);
      const c = await m.scores(batch, { k: [1, 2], _noise: noise });
      assert.deepEqual(Array.from(b.elbo), Array.from(a.elbo));
      assert.deepEqual(Array.from(c.llr[1]), Array.from(a.llr[1]));
    } finally {
      m.dispose();
    }
  });

  it('keeps at most maxBytes', async function () {
    const m = HVAE.load(file, { config: 'fashionmnist' });
    try {
      setCpuCache({ maxBytes: 3 * 2 ** 20 });
      await m.trainStep(batch32(), { lr: 1e-12, step: false });
      const s = cpuCache();
      assert.equal(s.maxBytes, 3 * 2 ** 20);
      assert.ok(s.cachedBytes <= s.maxBytes, `cached ${s.cachedBytes}`);
    } finally {
      setCpuCache({ maxBytes: limit });
      m.dispose();
    }
  });

  it('bad options are ERR_HVAE_OPTION', function () {
    assert.throws(() => setCpuCache({ maxBytes: -1 }), { code: 'ERR_HVAE_OPTION', message: /maxBytes/ });
    assert.throws(() => setCpuCache({ maxBytes: Number.NaN }), { code: 'ERR_HVAE_OPTION', message: /maxBytes/ });
    assert.throws(() => setCpuCache({ empty: 'yes' as unknown as boolean }), { code: 'ERR_HVAE_OPTION', message: /empty/ });
    assert.throws(() => setCpuCache({ size: 1 } as unknown as { maxBytes: number }), { code: 'ERR_HVAE_OPTION', message: /unknown option 'size'/ });
    assert.throws(() => setCpuCache(null as unknown as { maxBytes: number }), { code: 'ERR_HVAE_OPTION' });
  });

  it('HVAE_CPU_CACHE_MB=0 leaves LibTorch\'s allocator in place, and scoring works', function () {
    const code = `
      const hv = require('hvae-native');
      const m = hv.HVAE.create({ preset: 'fashionmnist', seed: 1 });
      const x = { data: new Float32Array(8 * 784).fill(0.5), shape: [8, 1, 28, 28] };
      m.initialize(x).then(() => m.scores(x, { k: [1] })).then((s) => {
        console.log(JSON.stringify({ installed: hv.cpuCache().installed, finite: s.elbo.every(Number.isFinite) }));
      });`;
    const r = spawnSync(process.execPath, ['-e', code], { cwd: ROOT, env: { ...process.env, HVAE_CPU_CACHE_MB: '0' }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()!), { installed: false, finite: true });
  });
});
