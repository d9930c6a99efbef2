/**
 * The tensor bridge and input validation: every bad input is a typed, readable error (never a crash), and
 * values cross the boundary unchanged.
 */
import * as assert from 'node:assert/strict';
import { HVAE, HVAEError, ImageBatch } from 'hvae-native';
import { loadNative } from '../lib/native.js';

function images(n: number, c = 1, h = 28, w = 28, seed = 1): ImageBatch {
  const data = new Uint8Array(n * c * h * w);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = s >>> 24;
  }
  return { data, shape: [n, c, h, w] };
}

function code(c: string) {
  return (e: unknown) => {
    assert.ok(e instanceof HVAEError, `expected HVAEError, got ${String(e)}`);
    assert.equal(e.code, c, e.message);
    return true;
  };
}

describe('11 tensor bridge and input validation', function () {
  let model: HVAE;
  before(async function () {
    model = HVAE.create({ preset: 'fashionmnist', seed: 3 });
    await model.initialize(images(16));
  });
  after(() => model.dispose());

  it('a wrong shape (length mismatch, wrong rank, image size for the preset) is ERR_HVAE_SHAPE', async function () {
    await assert.rejects(model.scores({ data: new Uint8Array(10), shape: [1, 1, 28, 28] }), code('ERR_HVAE_SHAPE'));
    await assert.rejects(model.scores({ data: new Uint8Array(784), shape: [1, 784] as never }), code('ERR_HVAE_SHAPE'));
    await assert.rejects(model.scores(images(2, 1, 32, 32)), (e: HVAEError) => {
      assert.equal(e.code, 'ERR_HVAE_SHAPE');
      assert.match(e.message, /images are 1x32x32 but the model expects 1x28x28/);
      return true;
    });
    await assert.rejects(model.scores(images(2, 3, 28, 28)), code('ERR_HVAE_SHAPE'));
  });

  it('a wrong dtype is ERR_HVAE_DTYPE', async function () {
    await assert.rejects(model.scores({ data: new Int16Array(784) as never, shape: [1, 1, 28, 28] }), code('ERR_HVAE_DTYPE'));
    await assert.rejects(model.scores({ data: new Float64Array(784) as never, shape: [1, 1, 28, 28] }), code('ERR_HVAE_DTYPE'));
    await assert.rejects(model.scores({ data: Array(784).fill(0) as never, shape: [1, 1, 28, 28] }), code('ERR_HVAE_DTYPE'));
    await assert.rejects(model.scores(null as never), code('ERR_HVAE_DTYPE'));
  });

  it('NaN or infinite float input is ERR_HVAE_NONFINITE, naming the position', async function () {
    const data = new Float32Array(2 * 784).fill(0.5);
    data[900] = Number.NaN;
    await assert.rejects(model.scores({ data, shape: [2, 1, 28, 28] }), (e: HVAEError) => {
      assert.equal(e.code, 'ERR_HVAE_NONFINITE');
      assert.match(e.message, /data\[900\] is NaN; float input must be finite \(image 1\)/);
      return true;
    });
    data[900] = Number.POSITIVE_INFINITY;
    await assert.rejects(model.scores({ data, shape: [2, 1, 28, 28] }), code('ERR_HVAE_NONFINITE'));
  });

  it("device 'cuda' without CUDA is ERR_HVAE_DEVICE; malformed devices too", function () {
    assert.throws(() => HVAE.create({ device: 'gpu' as never }), code('ERR_HVAE_DEVICE'));
    assert.throws(() => HVAE.create({ device: 'cuda:x' as never }), code('ERR_HVAE_DEVICE'));
    if (!loadNative().versions().cuda) {
      assert.throws(() => HVAE.create({ device: 'cuda' }), (e: HVAEError) => {
        assert.equal(e.code, 'ERR_HVAE_DEVICE');
        assert.match(e.message, /CUDA is not available/);
        return true;
      });
      assert.throws(() => HVAE.create({ device: 'cuda:1' }), code('ERR_HVAE_DEVICE'));
    } else {
      assert.throws(() => HVAE.create({ device: 'cuda:99' }), code('ERR_HVAE_DEVICE'));
    }
  });

  it('bad options: k out of range, S < 1, unknown keys, unknown presets, bad seeds', async function () {
    const x = images(2);
    await assert.rejects(model.scores(x, { k: [4] }), (e: HVAEError) => {
      assert.equal(e.code, 'ERR_HVAE_OPTION');
      assert.match(e.message, /k = 4 is out of range: this model has 3 latent layers/);
      return true;
    });
    await assert.rejects(model.scores(x, { k: [-1] }), code('ERR_HVAE_OPTION'));
    await assert.rejects(model.scores(x, { importanceSamples: 0 }), code('ERR_HVAE_OPTION'));
    await assert.rejects(model.scores(x, { importanceSamples: 1.5 }), code('ERR_HVAE_OPTION'));
    await assert.rejects(model.scores(x, { importanceSample: 4 } as never), /unknown scores option 'importanceSample'/);
    await assert.rejects(model.scores(x, { belowL: [0] }), code('ERR_HVAE_OPTION'));
    assert.throws(() => HVAE.create({ preset: 'imagenet' }), code('ERR_HVAE_OPTION'));
    assert.throws(() => HVAE.create({ preset: 'fashionmnist', stages: [] }), code('ERR_HVAE_OPTION'));
    // An odd size before a stride-2 block, in either axis, cannot be restored by the decoder: refused up front.
    assert.throws(() => HVAE.create({ preset: 'fashionmnist', inputShape: [1, 27, 28] }), /odd height 27/);
    assert.throws(() => HVAE.create({ preset: 'fashionmnist', inputShape: [1, 28, 27] }), /odd width 27/);
    assert.throws(() => HVAE.create({ colour: true } as never), code('ERR_HVAE_OPTION'));
    // Seeds: HVAE.create and model.seed share one check.
    assert.throws(() => HVAE.create({ preset: 'fashionmnist', seed: -1 }), /seed must be a non-negative integer below 2\^53, got -1/);
    assert.throws(() => model.seed(1.5), code('ERR_HVAE_OPTION'));
  });

  it('the C++ side re-checks shapes: bypassing TypeScript still gives an error, not a crash', async function () {
    const native = model.nativeModel();
    // Checks that can run before the worker throw synchronously; the rest reject. Both are errors, never aborts.
    await assert.rejects(async () => native.score({ data: new Uint8Array(100), shape: [1, 1, 10, 10] }, {}), /\[ERR_HVAE_SHAPE\]/);
    await assert.rejects(async () => native.score({ data: new Uint8Array(784), shape: [1, 1, 28, 27] }, {}), /\[ERR_HVAE_SHAPE\]/);
    await assert.rejects(async () => native.score({ data: new Int32Array(784) as never, shape: [1, 1, 28, 28] }, {}), /\[ERR_HVAE_DTYPE\]/);
    await assert.rejects(async () => native.score({ data: new Uint8Array(784), shape: [1, 1, 28, 28] }, { ks: [9] }), /\[ERR_HVAE_OPTION\]/);
    await assert.rejects(async () => native.score({ data: new Uint8Array(784), shape: [1, 1, 28, 28] }, { importanceSamples: 0 }), /\[ERR_HVAE_OPTION\]/);
    await assert.rejects(async () => native.setState({ nope: { data: new Float32Array(1), shape: [1] } }), /\[ERR_HVAE_FORMAT\]/);
  });

  it('LibTorch and C++ errors inside a worker become HVAEError with the native message as cause', async function () {
    const { fromNative } = require('../lib/errors.js') as typeof import('../lib/errors.js');
    const addon = loadNative();
    const torchErr = await addon._throw('torch').then(() => null, (e: unknown) => fromNative(e));
    assert.equal(torchErr?.code, 'ERR_HVAE_TORCH');
    assert.match(torchErr!.message, /mat1 and mat2 shapes cannot be multiplied|size mismatch/);
    const stdErr = await addon._throw('std').then(() => null, (e: unknown) => fromNative(e));
    assert.equal(stdErr?.code, 'ERR_HVAE_TORCH');
    const own = await addon._throw('code').then(() => null, (e: unknown) => fromNative(e));
    assert.equal(own?.code, 'ERR_HVAE_OPTION');
  });

  it('uint8 input with transform "scale" equals the same images given as float32 / 255', async function () {
    const u8 = images(4);
    const f32 = { data: Float32Array.from(u8.data, (v) => v / 255), shape: u8.shape };
    const zero = [{ data: new Float32Array(4 * 8 * 14 * 14), shape: [4, 8, 14, 14] }, { data: new Float32Array(64), shape: [4, 16] }, { data: new Float32Array(32), shape: [4, 8] }];
    const a = await model.scores(u8, { k: [], transform: 'scale', _noise: zero });
    const b = await model.scores(f32, { k: [], transform: 'none', _noise: zero });
    assert.deepEqual(a.elbo, b.elbo);
  });

  it('results come back as Float32Arrays, one value per image', async function () {
    const s = await model.scores(images(5), { k: [0, 1, 2, 3], belowL: [1, 2], importanceSamples: 3 });
    assert.equal(s.size, 5);
    for (const arr of [s.elbo, s.logLikelihood, s.bitsPerDim, ...s.kl, ...Object.values(s.boundAboveK), ...Object.values(s.llr), ...Object.values(s.boundBelowL)]) {
      assert.ok(arr instanceof Float32Array);
      assert.equal(arr.length, 5);
      for (const v of arr) assert.ok(Number.isFinite(v));
    }
    assert.deepEqual(Object.keys(s.boundAboveK).map(Number), [0, 1, 2, 3]);
    for (let i = 0; i < 5; i++) {
      assert.equal(s.llr[1][i], Math.fround(s.elbo[i] - s.boundAboveK[1][i]));
      assert.ok(Math.abs(s.bitsPerDim[i] + s.elbo[i] / (784 * Math.LN2)) < 1e-4 * Math.abs(s.bitsPerDim[i]));
    }
  });

  it('the C++ side refuses a shape whose element count wraps around int64 (it would describe memory that is not there)', async function () {
    const native = model.nativeModel();
    // (2^60 + 256) * 784 wraps to 256 * 784 = 200704, the length of this array.
    const shape = [2 ** 60 + 256, 1, 28, 28];
    await assert.rejects(async () => native.score({ data: new Uint8Array(200704), shape }, {}), /\[ERR_HVAE_SHAPE\].*too large/);
    const noise = [{ data: new Float32Array(200704), shape: [2 ** 60 + 256, 8, 28, 28] }];
    await assert.rejects(async () => native.score({ data: new Uint8Array(784), shape: [1, 1, 28, 28] }, { noise }), /\[ERR_HVAE_SHAPE\].*too large/);
  });

  it('the C++ side refuses counts that are not integers or do not fit an int, instead of truncating them', async function () {
    // Bypassing TypeScript (which refuses these first): before, static_cast<int> made S = 2^32 + 1 into S = 1,
    // Int64Value() made NaN into 0 and 2.5 into 2.
    const native = model.nativeModel();
    const one = { data: new Uint8Array(784), shape: [1, 1, 28, 28] };
    const rejects = (p: () => unknown, re: RegExp) => assert.rejects(async () => p(), re);
    await rejects(() => native.score(one, { importanceSamples: 2 ** 32 + 1 }), /\[ERR_HVAE_OPTION\] importanceSamples is out of range/);
    await rejects(() => native.score(one, { importanceSamplesAboveK: 2.5 }), /\[ERR_HVAE_OPTION\] importanceSamplesAboveK must be an integer/);
    await rejects(() => native.score(one, { importanceSamples: NaN }), /\[ERR_HVAE_OPTION\] importanceSamples must be an integer/);
    await rejects(() => native.score(one, { ks: [2 ** 32 + 1] }), /\[ERR_HVAE_OPTION\] ks is out of range/);
    await rejects(() => native.score(one, { ls: [1.5] }), /\[ERR_HVAE_OPTION\] ls\[0\] must be an integer/);
    await rejects(() => native.score(one, { chunkRows: Infinity }), /\[ERR_HVAE_OPTION\] chunkRows must be an integer/);
    await rejects(() => native.score({ data: new Uint8Array(784), shape: [1, 1, 28, 28.5] }, {}), /\[ERR_HVAE_SHAPE\] shape\[3\] must be an integer/);
    await rejects(() => native.generate({ n: 2, k: 2 ** 32 }), /\[ERR_HVAE_OPTION\] k is out of range/);
    assert.throws(() => native.seed(1.5), /\[ERR_HVAE_OPTION\] seed must be an integer/);
    const addon = loadNative();
    assert.throws(() => addon.setNumThreads(2 ** 32 + 1), /\[ERR_HVAE_OPTION\] setNumThreads\(n\): n is out of range/);
    assert.throws(() => addon.setCpuCache({ maxBytes: -1 }), /\[ERR_HVAE_OPTION\] maxBytes must be >= 0/);
    assert.throws(() => addon.setCpuCache({ maxBytes: 2 ** 64 }), /\[ERR_HVAE_OPTION\] maxBytes must be an integer/);
    assert.throws(() => addon.setCudnn(null as never), /\[ERR_HVAE_OPTION\] setCudnn/);
    // Nothing changed: the model still scores with S = 2 and the thread count is what it was.
    assert.equal(addon.versions().numThreads, addon.getNumThreads());
    const s = await model.scores(images(2), { k: [1], importanceSamples: 2 });
    assert.ok(Number.isFinite(s.elbo[0]));
  });

  it('setCudnn({ benchmark }) is what getVersions().cudnnBenchmark reports (and CUDA models keep the choice: test 13)', function () {
    const addon = loadNative();
    addon.setCudnn({ benchmark: false });
    assert.equal(addon.versions().cudnnBenchmark, false);
    addon.setCudnn({ benchmark: true });
    assert.equal(addon.versions().cudnnBenchmark, true);
  });

  it('an async call reads its input as it was at the call, even if the buffer is detached and reused before the job runs', async function () {
    const native = model.nativeModel();
    const n = 8;
    const u8 = images(n, 1, 28, 28, 7);
    const zero = () => [{ data: new Float32Array(n * 8 * 14 * 14), shape: [n, 8, 14, 14] }, { data: new Float32Array(n * 16), shape: [n, 16] }, { data: new Float32Array(n * 8), shape: [n, 8] }];
    const opts = { ks: [], transform: 'none' };
    const expected = native.scoreSync({ data: Float32Array.from(u8.data, (v) => v / 255), shape: u8.shape }, { ...opts, noise: zero() });
    // A long job holds the model, so the next call's job starts only after the buffer below has been moved and
    // overwritten: a job that read the caller's memory in place would see the zeros.
    const blocker = native.score(images(16), { importanceSamples: 4 });
    await new Promise((r) => setTimeout(r, 50));
    const data = Float32Array.from(u8.data, (v) => v / 255);
    const noise = zero();
    const pending = native.score({ data, shape: u8.shape }, { ...opts, noise });
    const moved = structuredClone(data.buffer, { transfer: [data.buffer] });
    assert.equal(data.length, 0, 'the caller\'s array is detached');
    new Float32Array(moved).fill(0);
    await blocker;
    const got = await pending;
    assert.deepEqual(got.elbo, expected.elbo);
  });

  it('info() (numParameters, initialized) answers at once while a long job runs on the model', async function () {
    const native = model.nativeModel();
    const t0 = performance.now();
    const job = native.score(images(32), { importanceSamples: 4 });
    await new Promise((r) => setTimeout(r, 50));
    const t1 = performance.now();
    const info = native.info();
    const infoMs = performance.now() - t1;
    await job;
    const jobMs = performance.now() - t0;
    assert.equal(info.initialized, true);
    assert.equal(info.numParameters, model.numParameters);
    assert.ok(jobMs > 500, `the job must be long enough to tell (took ${jobMs.toFixed(0)} ms)`);
    assert.ok(infoMs < jobMs / 4, `info() took ${infoMs.toFixed(0)} ms of a ${jobMs.toFixed(0)} ms job: it waited for the job`);
  });

  it('the first batch must hold at least 2 images: data-dependent init normalises over the batch', async function () {
    const m = HVAE.create({ preset: 'fashionmnist', seed: 5 });
    try {
      await assert.rejects(m.initialize(images(1)), code('ERR_HVAE_SHAPE'));
      await assert.rejects(m.trainStep(images(1)), code('ERR_HVAE_SHAPE'));
      assert.equal(m.initialized, false, 'nothing was initialised');
      await m.initialize(images(2));
      assert.equal(m.initialized, true);
      const r = await m.trainStep(images(1));
      assert.ok(Number.isFinite(r.lossMean), 'after initialisation one image is a valid batch');
    } finally {
      m.dispose();
    }
  });

  it('setOptimizerState refuses non-float32 moments and a negative step (the C++ side re-checks)', async function () {
    const native = model.nativeModel();
    const p = native.info().parameters[0];
    const size = p.shape.reduce((a, b) => a * b, 1);
    const f = () => ({ data: new Float32Array(size), shape: p.shape });
    assert.throws(() => native.setOptimizerState({ [p.name]: { step: 1, expAvg: { data: new Uint8Array(size), shape: p.shape }, expAvgSq: f() } } as never), /\[ERR_HVAE_FORMAT\].*float32/);
    assert.throws(() => native.setOptimizerState({ [p.name]: { step: -1, expAvg: f(), expAvgSq: f() } }), /\[ERR_HVAE_FORMAT\].*step -1/);
    assert.throws(() => native.setOptimizerState({ [p.name]: 3 } as never), /\[ERR_HVAE_FORMAT\]/);
    native.setOptimizerState({ [p.name]: { step: 0, expAvg: f(), expAvgSq: f() } });
    native.setOptimizerState({});
  });

  it("a model's initialisation depends on its own seed only, not on models built in between", async function () {
    const batch = images(8, 1, 28, 28, 11);
    const a = HVAE.create({ preset: 'fashionmnist', seed: 21 });
    const b = HVAE.create({ preset: 'fashionmnist', seed: 22 }); // reseeds the global generator between a's build and init
    const c = HVAE.create({ preset: 'fashionmnist', seed: 21 });
    try {
      await a.initialize(batch);
      await c.initialize(batch);
      const sa = a.getState();
      const sc = c.getState();
      for (const name of Object.keys(sa)) assert.deepEqual(sa[name].data, sc[name].data, name);
    } finally {
      a.dispose();
      b.dispose();
      c.dispose();
    }
  });

  it('a disposed model is ERR_HVAE_DISPOSED', async function () {
    const m = HVAE.create();
    m.dispose();
    await assert.rejects(m.scores(images(1)), code('ERR_HVAE_DISPOSED'));
  });
});
