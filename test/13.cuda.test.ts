/**
 * CUDA: the same numbers on the GPU as on the CPU (fixtures, injected noise), training steps, device errors.
 * Skipped, saying why, where LibTorch has no CUDA or no device is visible.
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { HVAE, versions } from 'hvae-native';
import { FIXTURES, greyFixtureBatch } from './setup.js';

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

  it('training steps and generation run on cuda', async function () {
    const m = HVAE.create({ preset: 'fashionmnist', device: 'cuda' });
    const data = new Uint8Array(64 * 784).fill(90);
    const r = await m.trainStep({ data, shape: [64, 1, 28, 28] });
    assert.ok(Number.isFinite(r.lossMean));
    const g = await m.generate({ n: 4 });
    assert.deepEqual(g.shape, [4, 1, 28, 28]);
    m.dispose();
  });

  it('a device index that does not exist is ERR_HVAE_DEVICE', function () {
    assert.throws(() => HVAE.create({ device: `cuda:${versions.cudaDeviceCount}` as 'cuda:0' }), { code: 'ERR_HVAE_DEVICE' });
  });
});
