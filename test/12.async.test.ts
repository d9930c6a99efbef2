/**
 * Asynchronous by default: computing calls run on worker threads and the event loop keeps running; *Sync variants
 * exist; the addon loads and works inside worker_threads and exits cleanly.
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { HVAE, HVAEError, ImageBatch } from 'hvae-native';
import { loadNative } from '../lib/native.js';
import { ROOT } from './setup.js';

function images(n: number): ImageBatch {
  const data = new Uint8Array(n * 784);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37) % 256;
  return { data, shape: [n, 1, 28, 28] };
}

async function ticksDuring(work: () => Promise<unknown>, every = 10): Promise<{ ticks: number; ms: number }> {
  let ticks = 0;
  const timer = setInterval(() => { ticks++; }, every);
  const t0 = Date.now();
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return { ticks, ms: Date.now() - t0 };
}

describe('12 async, sync and worker threads', function () {
  it('timers keep firing while the addon computes (a 1.5 s native job)', async function () {
    const { ticks, ms } = await ticksDuring(() => loadNative()._spin(1500));
    assert.ok(ms >= 1400, `the job ran ${ms} ms`);
    assert.ok(ticks >= 50, `only ${ticks} timer ticks in ${ms} ms: the event loop was blocked`);
  });

  it('timers keep firing during a real scoring call', async function () {
    const m = HVAE.create({ seed: 1 });
    try {
      const x = images(64);
      const { ticks, ms } = await ticksDuring(() => m.scores(x, { k: [0, 1, 2], importanceSamples: 4 }));
      assert.ok(ticks >= Math.floor(ms / 10) * 0.5, `${ticks} ticks in ${ms} ms`);
    } finally {
      m.dispose();
    }
  });

  it('scoresSync returns the same kind of result, synchronously', function () {
    const m = HVAE.create({ seed: 2 });
    try {
      const s = m.scoresSync(images(3), { k: [1] });
      assert.equal(s.elbo.length, 3);
      assert.equal(s.llr[1].length, 3);
    } finally {
      m.dispose();
    }
  });

  it('concurrent calls on one model are serialised safely and all resolve', async function () {
    const m = HVAE.create({ seed: 4 });
    try {
      const rs = await Promise.all([1, 2, 3, 4].map((n) => m.scores(images(n), { k: [0, 2] })));
      assert.deepEqual(rs.map((r) => r.size), [1, 2, 3, 4]);
    } finally {
      m.dispose();
    }
  });

  it('loads and computes inside worker_threads (two at once), and the workers exit cleanly', async function () {
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const { HVAE } = require('hvae-native');
      const m = HVAE.create({ seed: workerData.seed });
      const data = new Uint8Array(2 * 784).fill(workerData.seed * 10);
      const s = m.scoresSync({ data, shape: [2, 1, 28, 28] }, { k: [1] });
      m.dispose();
      parentPort.postMessage({ n: s.elbo.length, finite: Array.from(s.llr[1]).every(Number.isFinite) });
    `;
    const run = (seed: number) => new Promise<{ msg: { n: number; finite: boolean }; exit: number }>((resolve, reject) => {
      const w = new Worker(code, { eval: true, workerData: { seed }, env: process.env, argv: [], execArgv: [] , ...{ } });
      let msg: { n: number; finite: boolean } | undefined;
      w.on('message', (m: { n: number; finite: boolean }) => { msg = m; });
      w.on('error', reject);
      w.on('exit', (exit) => (msg ? resolve({ msg, exit }) : reject(new Error(`worker exited ${exit} without a result`))));
    });
    process.chdir(ROOT);
    const [a, b] = await Promise.all([run(1), run(2)]);
    for (const r of [a, b]) {
      assert.equal(r.exit, 0);
      assert.deepEqual(r.msg, { n: 2, finite: true });
    }
  });

  it('a worker that is terminated mid-computation does not take the process down', async function () {
    const code = `
      const { HVAE } = require('hvae-native');
      const m = HVAE.create({ seed: 1 });
      const data = new Uint8Array(32 * 784).fill(100);
      m.scores({ data, shape: [32, 1, 28, 28] }, { importanceSamples: 2 });
      require('node:worker_threads').parentPort.postMessage('started');
    `;
    const w = new Worker(code, { eval: true });
    await new Promise<void>((resolve) => w.once('message', () => resolve()));
    const exit = await w.terminate();
    assert.equal(typeof exit, 'number');
    assert.ok(path.isAbsolute(ROOT));
  });

  it('on a dedicated thread (the CUDA path, here on the CPU): concurrent async and sync calls give the same numbers, errors stay typed, timers keep firing', async function () {
    this.timeout(120000);
    const addon = loadNative();
    const { fromNative } = require('../lib/errors.js') as typeof import('../lib/errors.js');
    // Deterministic calls: float images and zero noise (ELBO only), so the numbers cannot depend on call order.
    const call = (m: HVAE, n: number, sync = false) => {
      const x = images(n);
      const f = { data: Float32Array.from(x.data, (v) => v / 255), shape: x.shape };
      const zero = [{ data: new Float32Array(n * 8 * 14 * 14), shape: [n, 8, 14, 14] }, { data: new Float32Array(n * 16), shape: [n, 16] }, { data: new Float32Array(n * 8), shape: [n, 8] }];
      const o = { k: [] as number[], transform: 'none' as const, _noise: zero };
      return sync ? Promise.resolve(m.scoresSync(f, o)) : m.scores(f, o);
    };
    const sizes = [1, 2, 3, 4, 5, 6, 7, 8];
    const m = HVAE.create({ seed: 5 });
    const other = HVAE.create({ seed: 6 });
    try {
      const expected = await Promise.all(sizes.map((n) => call(m, n)));
      const expectedOther = await call(other, 3);
      assert.equal(addon._setCpuDedicatedThread(true), false);
      try {
        const { ticks, ms } = await ticksDuring(async () => {
          const pending = sizes.map((n) => call(m, n));
          const fromOther = call(other, 3); // a second model shares the device's thread
          const sync = await call(m, 4, true);
          const got = await Promise.all(pending);
          got.forEach((r, i) => assert.deepEqual(r.elbo, expected[i].elbo, `call ${i}`));
          assert.deepEqual(sync.elbo, expected[3].elbo);
          assert.deepEqual((await fromOther).elbo, expectedOther.elbo);
        });
        assert.ok(ticks >= Math.floor(ms / 10) * 0.3, `${ticks} ticks in ${ms} ms`);
        const err = await addon._throw('code').then(() => null, (e: unknown) => fromNative(e));
        assert.equal(err?.code, 'ERR_HVAE_OPTION');
        await assert.rejects(m.scores(images(2), { k: [9] }), { code: 'ERR_HVAE_OPTION' });
        // Sync errors thrown on the dedicated thread reach the caller too.
        const t = HVAE.create({ preset: 'fashionmnist', channels: 16 });
        try {
          await t.initialize({ data: new Uint8Array(4 * 784).fill(128), shape: [4, 1, 28, 28] });
          // Weights of 1e30 overflow the forward pass: the loss is not finite.
          const state = t.getState();
          for (const v of Object.values(state)) v.data.fill(1e30);
          t.setState(state);
          const px = { data: new Uint8Array(4 * 784).fill(128), shape: [4, 1, 28, 28] as [number, number, number, number] };
          assert.throws(() => t.trainStepSync(px),
            (e: HVAEError) => e instanceof HVAEError && e.code === 'ERR_HVAE_NONFINITE_LOSS');
        } finally {
          t.dispose();
        }
      } finally {
        assert.equal(addon._setCpuDedicatedThread(false), true);
      }
    } finally {
      m.dispose();
      other.dispose();
    }
  });
});
