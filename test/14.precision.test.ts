/**
 * Reduced precision (`precision: 'bfloat16'`): the scores stay within a stated tolerance of float32 on the grey
 * fixture weights and noise, float32 results are unchanged by a bfloat16 call (separate weight caches), and bad
 * requests get typed errors. The bfloat16 numbers need a CPU with AVX-512 BF16 or AMX (or CUDA); elsewhere only
 * the error paths run.
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { HVAE, versions, setCudnn } from 'hvae-native';
import { FIXTURES, greyFixtureBatch as fixtureBatch } from './setup.js';

describe('14 precision', function () {
  this.timeout(120000);
  const file = path.join(FIXTURES, 'grey', 'weights.safetensors');
  let model: HVAE;
  before(function () { model = HVAE.load(file, { config: 'fashionmnist' }); });
  after(function () { model.dispose(); });

  it('setCudnn takes only boolean benchmark / allowTF32 (a no-op without CUDA)', function () {
    assert.throws(() => setCudnn({ allowTF32: 1 as unknown as boolean }), { code: 'ERR_HVAE_OPTION', message: /allowTF32 must be a boolean/ });
    assert.throws(() => setCudnn({ tf32: true } as unknown as { allowTF32: boolean }), { code: 'ERR_HVAE_OPTION', message: /unknown option 'tf32'/ });
    assert.doesNotThrow(() => setCudnn({ benchmark: true, allowTF32: false }));
  });

  it('an unknown precision is ERR_HVAE_OPTION', async function () {
    const { batch } = fixtureBatch();
    await assert.rejects(model.scores(batch, { precision: 'float16' as 'float32' }), { code: 'ERR_HVAE_OPTION', message: /precision/ });
  });

  it('bfloat16 on a CPU without native bfloat16 is ERR_HVAE_DEVICE, and float32 still works', async function () {
    const { batch, noise } = fixtureBatch();
    process.env.HVAE_CPU_BF16 = '0'; // the addon's switch for "this CPU has no AVX-512 BF16 / AMX"
    try {
      assert.equal(model.supportsBFloat16, false);
      await assert.rejects(model.scores(batch, { k: [1, 2], _noise: noise, precision: 'bfloat16' }), { code: 'ERR_HVAE_DEVICE', message: /bfloat16/ });
      const s = await model.scores(batch, { k: [1, 2], _noise: noise });
      assert.ok(s.elbo.every(Number.isFinite));
    } finally {
      delete process.env.HVAE_CPU_BF16;
    }
  });

  describe(`bfloat16 scores${versions.cpuBFloat16 ? '' : ' (skipped: this CPU has no AVX-512 BF16 or AMX)'}`, function () {
    before(function () { if (!versions.cpuBFloat16) this.skip(); });

    it('stay within 1% (plus 0.5 nats) of float32 for L, L>1, L>2, and float32 is unchanged afterwards', async function () {
      const { batch, noise } = fixtureBatch();
      assert.equal(model.supportsBFloat16, true);
      const a = await model.scores(batch, { k: [1, 2], _noise: noise });
      const b = await model.scores(batch, { k: [1, 2], _noise: noise, precision: 'bfloat16' });
      const c = await model.scores(batch, { k: [1, 2], _noise: noise });
      let worst = 0;
      let differs = false;
      for (const [name, u, v] of [['elbo', a.elbo, b.elbo], ['L>1', a.boundAboveK[1], b.boundAboveK[1]], ['L>2', a.boundAboveK[2], b.boundAboveK[2]]] as const) {
        for (let i = 0; i < u.length; i++) {
          const d = Math.abs(u[i] - v[i]);
          worst = Math.max(worst, d / Math.abs(u[i]));
          if (d > 0) differs = true;
          assert.ok(d <= 0.5 + 0.01 * Math.abs(u[i]), `${name}[${i}]: float32 ${u[i]} bfloat16 ${v[i]}`);
        }
      }
      assert.ok(differs, 'bfloat16 gave bit-identical scores: the reduced-precision path did not run');
      assert.deepEqual(Array.from(c.elbo), Array.from(a.elbo));
      assert.deepEqual(Array.from(c.boundAboveK[1]), Array.from(a.boundAboveK[1]));
      this.test!.title += ` (worst relative difference ${worst.toExponential(2)})`;
    });
  });
});
