/**
 * CUDA: the same numbers on the GPU as on the CPU (fixtures, injected noise), training steps, device errors.
 * Skipped, saying why, where LibTorch has no CUDA or no device is visible.
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { HVAE, versions } from 'hvae-native';
import { loadNative } from '../lib/native.js';
import { FIXTURES, greyFixtureBatch, checkBFloat16TrainStep, tmpDir } from './setup.js';

const cuda = versions.cuda && versions.cudaDeviceCount > 0;
const why = cuda ? '' : ` (skipped: LibTorch ${versions.libtorch} is a ${versions.flavour} build${versions.flavour === 'cuda' ? ' but no CUDA device is visible' : ''})`;

describe(`13 CUDA${why}`, function () {
  before(function () {
    if (!cuda) this.skip();
  });

  it('grey fixtures: the ELBO, L>1, L>2 on cuda match the CPU within the parity tolerance', async function () {
    const file = path.join(FIXTURES, 'grey', 'weights.safetensors');
    const cpu = HVAE.load(file, { config: 'fashionmnist' });
    const gpu = HVAE.load(file, { config: 'fashionmnist', device: 'cuda' });
    const { batch, noise } = greyFixtureBatch();
    const a = await cpu.scores(batch, { k: [1, 2], _noise: noise });
    const b = await gpu.scores(batch, { k: [1, 2], _noise: noise });
    for (const [name, u, v] of [['elbo', a.elbo, b.elbo], ['L>1', a.boundAboveK[1], b.boundAboveK[1]], ['L>2', a.boundAboveK[2], b.boundAboveK[2]]] as const) {
      for (let i = 0; i < u.length; i++) assert.ok(Math.abs(u[i] - v[i]) <= 2e-3 + 2e-5 * Math.abs(u[i]), `${name}[${i}]: cpu ${u[i]} cuda ${v[i]}`);
    }
    cpu.dispose();
    gpu.dispose();
  });

  it("precision 'bfloat16' on cuda stays within 1% (plus 0.5 nats) of float32 on the fixtures", async function () {
    const file = path.join(FIXTURES, 'grey', 'weights.safetensors');
    const gpu = HVAE.load(file, { config: 'fashionmnist', device: 'cuda' });
    assert.equal(gpu.supportsBFloat16, true);
    const { batch } = greyFixtureBatch();
    const run = async (precision: 'float32' | 'bfloat16') => { gpu.seed(0); return gpu.scores(batch, { k: [1, 2], precision }); };
    const a = await run('float32');
    const b = await run('bfloat16');
    for (const [name, u, v] of [['elbo', a.elbo, b.elbo], ['L>1', a.boundAboveK[1], b.boundAboveK[1]], ['L>2', a.boundAboveK[2], b.boundAboveK[2]]] as const) {
      for (let i = 0; i < u.length; i++) assert.ok(Math.abs(u[i] - v[i]) <= 0.5 + 0.01 * Math.abs(u[i]), `${name}[${i}]: float32 ${u[i]} bfloat16 ${v[i]}`);
    }
    gpu.dispose();
  });

  it("a bfloat16 training step on cuda: the loss within 1e-3 of float32 and the gradients pointing the same way", async function () {
    const gpu = HVAE.load(path.join(FIXTURES, 'grey', 'weights.safetensors'), { config: 'fashionmnist', device: 'cuda' });
    try {
      const c = await checkBFloat16TrainStep(gpu);
      this.test!.title += ` (whole-gradient cosine ${c.cosAll.toFixed(5)}, worst per tensor ${c.worstCos.toFixed(3)})`;
    } finally {
      gpu.dispose();
    }
  });

  it('training steps and generation run on cuda', async function () {
    const m = HVAE.create({ preset: 'fashionmnist', device: 'cuda' });
    const data = new Uint8Array(64 * 784).fill(90);
    const r = await m.trainStep({ data, shape: [64, 1, 28, 28] });
    assert.ok(Number.isFinite(r.lossMean));
    const g = await m.generate({ n: 4 });
    assert.deepEqual(g.shape, [4, 1, 28, 28]);
    m.dispose();
  });

  it('setCudnn({ benchmark: false }) stays in effect when CUDA models are created or loaded later', async function () {
    const addon = loadNative();
    try {
      addon.setCudnn({ benchmark: false });
      const m = HVAE.create({ preset: 'fashionmnist', device: 'cuda' });
      assert.equal(addon.versions().cudnnBenchmark, false, 'creating a CUDA model turned autotuning back on');
      const file = path.join(tmpDir('cudnn'), 'm.safetensors');
      await m.initialize({ data: new Uint8Array(8 * 784).fill(90), shape: [8, 1, 28, 28] });
      m.save(file);
      m.dispose();
      HVAE.load(file, { device: 'cuda' }).dispose();
      assert.equal(addon.versions().cudnnBenchmark, false, 'loading a CUDA model turned autotuning back on');
    } finally {
      addon.setCudnn({ benchmark: true });
    }
  });

  it('a device index that does not exist is ERR_HVAE_DEVICE', function () {
    assert.throws(() => HVAE.create({ device: `cuda:${versions.cudaDeviceCount}` as 'cuda:0' }), { code: 'ERR_HVAE_DEVICE' });
  });

  // One thread per device runs every CUDA job (native/workers.h): concurrent calls must still give each caller its
  // own numbers, and the JS thread must never wait for the GPU.
  it('concurrent async calls and a sync call on cuda give the same numbers as one at a time', async function () {
    const m = HVAE.create({ preset: 'fashionmnist', device: 'cuda', seed: 5 });
    const other = HVAE.create({ preset: 'fashionmnist', device: 'cuda', seed: 6 });
    const call = (model: HVAE, n: number, sync = false) => {
      const data = new Float32Array(n * 784).map((_, i) => ((i * 37) % 256) / 255);
      const zero = [{ data: new Float32Array(n * 8 * 14 * 14), shape: [n, 8, 14, 14] }, { data: new Float32Array(n * 16), shape: [n, 16] }, { data: new Float32Array(n * 8), shape: [n, 8] }];
      const o = { k: [] as number[], transform: 'none' as const, _noise: zero };
      const x = { data, shape: [n, 1, 28, 28] as [number, number, number, number] };
      return sync ? Promise.resolve(model.scoresSync(x, o)) : model.scores(x, o);
    };
    const sizes = [1, 2, 3, 4, 5, 6, 7, 8];
    const expected: Awaited<ReturnType<typeof call>>[] = [];
    for (const n of sizes) expected.push(await call(m, n));
    const expectedOther = await call(other, 3);
    const pending = sizes.map((n) => call(m, n));
    const fromOther = call(other, 3);
    const sync = await call(m, 4, true);
    const got = await Promise.all(pending);
    got.forEach((r, i) => assert.deepEqual(r.elbo, expected[i].elbo, `call ${i}`));
    assert.deepEqual(sync.elbo, expected[3].elbo);
    assert.deepEqual((await fromOther).elbo, expectedOther.elbo);
    m.dispose();
    other.dispose();
  });

  it('the event loop keeps running during a long cuda call (results reach the host on the device thread)', async function () {
    const m = HVAE.create({ preset: 'fashionmnist', device: 'cuda', seed: 7 });
    const data = new Uint8Array(2000 * 784).map((_, i) => (i * 37) % 256);
    const x = { data, shape: [2000, 1, 28, 28] as [number, number, number, number] };
    await m.scores(x, { k: [0, 1, 2], importanceSamples: 2 }); // warm-up: cuDNN plans
    let last = Date.now();
    let gap = 0;
    const timer = setInterval(() => { const t = Date.now(); gap = Math.max(gap, t - last); last = t; }, 5);
    const t0 = Date.now();
    await m.scores(x, { k: [0, 1, 2], importanceSamples: 32 });
    const ms = Date.now() - t0;
    clearInterval(timer);
    m.dispose();
    assert.ok(gap < Math.max(100, ms / 4), `the longest timer gap was ${gap} ms in a ${ms} ms call`);
  });

  it("Adam's multi-tensor update on cuda matches the per-tensor loop (within float rounding)", async function () {
    const addon = loadNative();
    const data = new Uint8Array(32 * 784).map((_, i) => (i * 13) % 256);
    const run = async (impl: 'foreach' | 'per-tensor') => {
      const before = addon._setAdamImpl(impl);
      try {
        const m = HVAE.create({ preset: 'fashionmnist', channels: 16, device: 'cuda', seed: 11 });
        m.seed(12);
        for (let i = 0; i < 3; i++) await m.trainStep({ data, shape: [32, 1, 28, 28] }, { transform: 'threshold' });
        const w = m.getState();
        m.dispose();
        return w;
      } finally {
        addon._setAdamImpl(before);
      }
    };
    const a = await run('per-tensor');
    const b = await run('foreach');
    for (const [name, t] of Object.entries(a)) {
      for (let i = 0; i < t.data.length; i++) {
        assert.ok(Math.abs(t.data[i] - b[name].data[i]) <= 1e-5 + 1e-4 * Math.abs(t.data[i]), `${name}[${i}]: ${t.data[i]} vs ${b[name].data[i]}`);
      }
    }
  });

  it('a training checkpoint saved on cuda resumes on the CPU without its RNG state, and on cuda with it', async function () {
    const m = HVAE.create({ preset: 'fashionmnist', channels: 16, device: 'cuda', seed: 3 });
    await m.trainStep({ data: new Uint8Array(16 * 784).fill(90), shape: [16, 1, 28, 28] });
    const file = path.join(tmpDir(), 'state.safetensors');
    m.save(file, { trainingState: true });
    m.dispose();
    assert.equal(HVAE.readMetadata(file).rngDevice, 'cuda');
    const onCpu = HVAE.load(file);
    assert.equal(onCpu.rngStateRestored, false);
    onCpu.dispose();
    const onCuda = HVAE.load(file, { device: 'cuda' });
    assert.equal(onCuda.rngStateRestored, true);
    onCuda.dispose();
  });
});
