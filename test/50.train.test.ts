/**
 * Training: schedules at the epochs ALGORITHM.md §10 lists, the loop on a FashionMNIST subset, exact resume,
 * checkpoints that survive a kill mid-save, failure handling, option validation, progress and logs.
 */
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HVAE, HVAEError } from 'hvae-native';
import { klWarmup, freeNatsSchedule } from '../lib/schedules.js';
import { fit, resolveFitOptions, ProgressEvent, EpochEvent, Trainer } from '../lib/train.js';
import { loadDataset } from '../lib/data/datasets.js';
import { subset, Dataset } from '../lib/data/stream.js';
import { readSafetensors, writeSafetensors, SafeTensor } from '../lib/safetensors.js';
import { loadNative } from '../lib/native.js';
import { ROOT, tmpDir } from './setup.js';

// A small model (16 channels) keeps CPU tests fast; the loop is the same for every config.
const SMALL = { preset: 'fashionmnist', channels: 16 } as const;

let fashion: Dataset;
async function fashionSubset(n: number, offset = 0): Promise<Dataset> {
  if (!fashion) fashion = await loadDataset('FashionMNIST', { split: 'train' });
  return subset(fashion, Array.from({ length: n }, (_, i) => offset + i), `FashionMNIST train[${offset}:${offset + n}]`);
}

/** A small run on 300 FashionMNIST images stopped after 2 steps of its single epoch: the checkpoint folder to resume. */
async function interruptedRun(): Promise<{ data: Dataset; opts: { epochs: number; batchSize: number; validation: number; seed: number; imagesEvery: number }; dir: string }> {
  const data = await fashionSubset(300);
  const opts = { epochs: 1, batchSize: 50, validation: 50, seed: 7, imagesEvery: 0 };
  const dir = tmpDir();
  const b = HVAE.create({ ...SMALL, seed: 3 });
  await b.fit(data, { ...opts, checkpointDir: dir, maxSteps: 2 });
  b.dispose();
  return { data, opts, dir };
}

describe('50 training', function () {
  describe('schedules (ALGORITHM.md §3.2, §10 item 6)', function () {
    const epochs = [1, 199, 200, 201, 202, 399, 400, 401];
    it('KL warm-up beta_e = min(1, e/200), accumulated as the reference does', function () {
      const want = [0.005, 0.9950000000000008, 1, 1, 1, 1, 1, 1];
      assert.deepEqual(epochs.map((e) => klWarmup(e, 200)), want);
      assert.equal(klWarmup(5, 0), 1);
    });
    it('free nats: 2 for 200 epochs, numpy.linspace(2, 0, 200) over the next 200, then 0', function () {
      const want = [2, 2, 2, 2, 1.9899497487437185, 0.01005025125628145, 0, 0];
      assert.deepEqual(epochs.map((e) => freeNatsSchedule(e, 2, 200, 200)), want);
    });
  });

  describe('options are validated before any work starts', function () {
    for (const [opts, re] of [
      [{ epochs: -1 }, /epochs must be an integer >= 1/],
      [{ batchSize: 0 }, /batchSize must be an integer >= 1/],
      [{ lr: 0 }, /lr must be a number > 0/],
      [{ learningRate: 1e-3 }, /unknown fit option 'learningRate'/],
      [{ freeNatsMode: 'kingma' }, /freeNatsMode/],
      [{ binarization: 'sometimes' }, /binarization/],
      [{ precision: 'float16' }, /precision must be 'float32' or 'bfloat16'/],
      [{ betas: [0.9] }, /betas/],
    ] as [object, RegExp][]) {
      it(`rejects ${JSON.stringify(opts)}`, async function () {
        assert.throws(() => resolveFitOptions(opts), (e: HVAEError) => e.code === 'ERR_HVAE_OPTION' && re.test(e.message));
        const m = HVAE.create(SMALL);
        await assert.rejects(m.fit(await fashionSubset(10), opts), { code: 'ERR_HVAE_OPTION' });
        assert.equal(m.initialized, false, 'no step was taken');
        m.dispose();
      });
    }
    it('an unwritable checkpoint directory is ERR_HVAE_IO before training', async function () {
      const file = path.join(tmpDir(), 'a-file');
      fs.writeFileSync(file, 'x');
      const m = HVAE.create(SMALL);
      await assert.rejects(m.fit(await fashionSubset(10), { checkpointDir: path.join(file, 'ckpt'), epochs: 1 }), { code: 'ERR_HVAE_IO' });
      assert.equal(m.initialized, false);
      m.dispose();
    });
  });

  it('a short run on a FashionMNIST subset improves the validation ELBO; logs, events, checkpoints and images', async function () {
    this.timeout(600000);
    const dir = tmpDir();
    const m = HVAE.create(SMALL);
    const steps: ProgressEvent[] = [];
    const epochs: EpochEvent[] = [];
    const r = await m.fit(await fashionSubset(1200), {
      epochs: 3, batchSize: 64, validation: 200, warmupEpochs: 2, freeNatsConstantEpochs: 1, freeNatsCooldownEpochs: 2,
      checkpointDir: dir, imagesEvery: 3, seed: 1, onProgress: (e) => steps.push(e), onEpoch: (e) => epochs.push(e),
    });
    assert.equal(r.epoch, 3);
    assert.equal(r.aborted, false);
    assert.equal(steps.length, 3 * Math.ceil(1000 / 64));
    const s = steps[steps.length - 1];
    for (const k of ['epoch', 'step', 'loss', 'elbo', 'kl', 'beta', 'freeNats', 'imagesPerSecond', 'etaSeconds'] as const) assert.ok(k in s, k);
    assert.equal(s.kl.length, 3);
    assert.deepEqual(epochs.map((e) => e.beta), [0.5, 1, 1]);
    assert.deepEqual(epochs.map((e) => e.freeNats), [2, 2, 0]);
    const v = epochs.map((e) => e.validationElbo!);
    assert.ok(v[2] > v[0] + 5, `validation ELBO should improve: ${v.join(', ')}`);
    assert.equal(r.bestValidationElbo, Math.max(...v));
    const lines = fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string });
    assert.equal(lines.filter((l) => l.event === 'epoch').length, 3);
    for (const f of ['best.safetensors', 'last.safetensors', 'images/samples_0003.png', 'images/reconstructions_0003.png']) {
      assert.ok(fs.existsSync(path.join(dir, f)), f);
    }
    const png = fs.readFileSync(path.join(dir, 'images/samples_0003.png'));
    assert.equal(png.subarray(1, 4).toString(), 'PNG');
    const best = HVAE.load(path.join(dir, 'best.safetensors'));
    assert.deepEqual(best.config, m.config);
    const meta = HVAE.readMetadata(path.join(dir, 'last.safetensors'));
    assert.equal(JSON.parse(meta.trainState).epoch, 3);
    best.dispose();
    m.dispose();
  });

  it('resume continues exactly: the same losses after an interruption as without one', async function () {
    this.timeout(600000);
    const data = await fashionSubset(300);
    const opts = { epochs: 2, batchSize: 50, validation: 50, seed: 7, imagesEvery: 0 };
    const full: number[] = [];
    const a = HVAE.create({ ...SMALL, seed: 3 });
    await a.fit(data, { ...opts, onProgress: (e) => full.push(e.loss) });
    a.dispose();
    assert.equal(full.length, 10);

    const dir = tmpDir();
    const part: number[] = [];
    const b = HVAE.create({ ...SMALL, seed: 3 });
    const r1 = await b.fit(data, { ...opts, checkpointDir: dir, maxSteps: 7, onProgress: (e) => part.push(e.loss) });
    assert.equal(r1.aborted, true);
    b.dispose();
    const c = HVAE.create({ ...SMALL, seed: 99 }); // different init: everything must come from the checkpoint
    // The validation split must match the checkpoint's: another one is refused, before any work.
    for (const changed of [{ validation: 40 }, { splitSeed: 1 }]) {
      await assert.rejects(c.fit(data, { ...opts, ...changed, checkpointDir: dir, resume: true }),
        (e: HVAEError) => e.code === 'ERR_HVAE_OPTION' && /differs from the checkpoint's/.test(e.message), JSON.stringify(changed));
    }
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    await c.fit(data, { ...opts, checkpointDir: dir, resume: true, onProgress: (e) => part.push(e.loss) });
    await new Promise((res) => setImmediate(res)); // warnings are emitted on the next tick
    process.removeListener('warning', onWarning);
    c.dispose();
    assert.deepEqual(warnings.filter((w) => /^HVAE_RESUME/.test((w as Error & { code?: string }).code ?? '')), [], 'the same options: no resume warning');
    // The resume is logged where it continues: epoch 2 (5 steps an epoch), two steps of it done, 7 steps in all.
    const events = fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const aborted = events.find((e) => e.event === 'aborted');
    const resumed = events.find((e) => e.event === 'resumed');
    assert.deepEqual({ ...resumed, time: undefined }, {
      time: undefined, event: 'resumed', epoch: 2, stepInEpoch: 2, step: 7, from: path.join(dir, 'last.safetensors'), changed: { maxSteps: [7, null] },
    });
    assert.deepEqual([aborted?.epoch, aborted?.stepInEpoch, aborted?.step], [2, 2, 7], 'the same terms as the aborted event');
    assert.equal(part.length, 10);
    assert.deepEqual(part, full);
  });

  it('an AbortSignal ends the current step, saves and resolves with aborted', async function () {
    this.timeout(300000);
    const dir = tmpDir();
    const m = HVAE.create(SMALL);
    const ac = new AbortController();
    let n = 0;
    const r = await m.fit(await fashionSubset(500), {
      epochs: 5, batchSize: 50, validation: 50, checkpointDir: dir, imagesEvery: 0,
      signal: ac.signal, onProgress: () => { if (++n === 2) ac.abort(); },
    });
    assert.equal(r.aborted, true);
    assert.equal(r.step, 2);
    const meta = HVAE.readMetadata(path.join(dir, 'last.safetensors'));
    assert.deepEqual(JSON.parse(meta.trainState), { epoch: 0, stepInEpoch: 2, step: 2, bestValidationElbo: null, bestEpoch: null, skippedBatches: 0 });
    m.dispose();
  });

  it('a non-finite loss stops training naming epoch and step; skipNonFinite skips and counts', async function () {
    this.timeout(300000);
    const m = HVAE.create(SMALL);
    const px = { data: new Uint8Array(4 * 784).fill(128), shape: [4, 1, 28, 28] as [number, number, number, number] };
    await m.initialize(px);
    // Weights of 1e30 overflow the forward pass: the loss is not finite.
    const state = m.getState();
    for (const v of Object.values(state)) v.data.fill(1e30);
    m.setState(state);
    await assert.rejects(m.trainStep(px), { code: 'ERR_HVAE_NONFINITE_LOSS' });
    const ok = await m.trainStep(px, { skipNonFinite: true });
    assert.equal(ok.skipped, true);

    const dir = tmpDir();
    const blowUp = { epochs: 3, batchSize: 50, validation: 50, lr: 1e12, checkpointDir: dir, imagesEvery: 0 };
    const m2 = HVAE.create(SMALL);
    const err = await m2.fit(await fashionSubset(300), blowUp).then(() => null, (e: HVAEError) => e);
    assert.ok(err, 'an absurd learning rate must produce a non-finite loss');
    assert.equal(err!.code, 'ERR_HVAE_NONFINITE_LOSS');
    assert.match(err!.message, /training stopped at epoch \d+, step \d+ of \d+/);
    if (fs.existsSync(path.join(dir, 'last.safetensors'))) HVAE.load(path.join(dir, 'last.safetensors')).dispose();
    const m3 = HVAE.create(SMALL);
    const r = await m3.fit(await fashionSubset(300), { ...blowUp, checkpointDir: tmpDir(), skipNonFinite: true, epochs: 1 });
    assert.ok(r.skippedBatches > 0);
    for (const x of [m, m2, m3]) x.dispose();
  });

  it('Trainer emits progress and epoch events', async function () {
    this.timeout(300000);
    const m = HVAE.create(SMALL);
    const t = new Trainer(m, await fashionSubset(200), { epochs: 1, batchSize: 100, validation: 50, imagesEvery: 0 });
    let progress = 0;
    let epochs = 0;
    t.on('progress', () => progress++);
    t.on('epoch', () => epochs++);
    await t.run();
    assert.equal(progress, 2);
    assert.equal(epochs, 1);
    m.dispose();
  });

  it('checkpoints are written atomically: killing the process mid-save leaves the last good one loadable', async function () {
    this.timeout(300000);
    const dir = tmpDir();
    const file = path.join(dir, 'ckpt.safetensors');
    const code = `
      const { HVAE } = require('hvae-native');
      const m = HVAE.create({ preset: 'fashionmnist' });
      const file = ${JSON.stringify(file)};
      let i = 0;
      for (;;) { m.save(file, { metadata: { i: String(i++) } }); if (i === 1) process.stdout.write('saved\\n'); }
    `;
    for (let round = 0; round < 4; round++) {
      const child = spawn(process.execPath, ['-e', code], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 400));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const m = HVAE.load(file);
      assert.equal(m.numParameters, 2588898);
      m.dispose();
    }
  });

  it("Adam's multi-tensor update gives bit-identical weights to the per-tensor loop, and the switch is honoured", async function () {
    this.timeout(300000);
    const addon = loadNative();
    const batch = (await (await fashionSubset(20)).read(Array.from({ length: 20 }, (_, i) => i))).images;
    const run = async (impl: 'foreach' | 'per-tensor') => {
      const before = addon._setAdamImpl(impl);
      try {
        assert.equal(addon._setAdamImpl(), impl);
        const m = HVAE.create({ ...SMALL, seed: 11 });
        m.seed(12);
        for (let i = 0; i < 3; i++) await m.trainStep(batch, { beta: 0.5, freeNats: 1 });
        const w = m.getState();
        const opt = m.nativeModel().getOptimizerState();
        m.dispose();
        return { w, opt };
      } finally {
        addon._setAdamImpl(before);
      }
    };
    const a = await run('per-tensor');
    const b = await run('foreach');
    assert.equal(addon._setAdamImpl(), 'foreach', 'the default is the multi-tensor update');
    let compared = 0;
    for (const [name, t] of Object.entries(a.w)) {
      assert.deepEqual(b.w[name].data, t.data, name);
      assert.deepEqual(b.opt[name].expAvgSq.data, a.opt[name].expAvgSq.data, name);
      assert.equal(b.opt[name].step, 3);
      compared++;
    }
    assert.ok(compared > 50, `${compared} parameters`);
    // Adam moved the weights away from their initialisation (the comparison above is not of untouched weights).
    const fresh = HVAE.create({ ...SMALL, seed: 11 });
    await fresh.initialize(batch);
    const init = fresh.getState();
    const moved = Object.keys(a.w).filter((n) => a.w[n].data.some((v, i) => v !== init[n].data[i])).length;
    fresh.dispose();
    assert.ok(moved > compared / 2, `${moved} of ${compared} parameters moved`);
    assert.throws(() => addon._setAdamImpl('fused' as 'foreach'), /ERR_HVAE_OPTION/);
  });

  it('resume across devices: an RNG state from another kind of device is not restored; the generator is reseeded and the run goes on', async function () {
    this.timeout(600000);
    const { data, opts, dir } = await interruptedRun();
    const file = path.join(dir, 'last.safetensors');
    const saved = readSafetensors(file);
    assert.equal(saved.metadata.rngDevice, 'cpu');
    const own = HVAE.load(file);
    assert.equal(own.rngStateRestored, true);
    own.dispose();
    // The same checkpoint as a CUDA run would write it: a CUDA generator's state (seed and offset, 16 bytes).
    const cudaDir = tmpDir();
    const tensors = new Map<string, { shape: number[]; data: SafeTensor['data'] }>(saved.tensors);
    tensors.set('rng.state', { shape: [16], data: new Uint8Array(16).fill(7) });
    writeSafetensors(path.join(cudaDir, 'last.safetensors'), tensors, { ...saved.metadata, rngDevice: 'cuda' });
    const loaded = HVAE.load(path.join(cudaDir, 'last.safetensors'));
    assert.equal(loaded.rngStateRestored, false);
    const ref = HVAE.load(file);
    const wa = loaded.getState();
    const wb = ref.getState();
    ref.dispose();
    assert.ok(Object.keys(wa).length > 50);
    for (const n of Object.keys(wb)) assert.deepEqual(wa[n].data, wb[n].data, n);
    loaded.dispose();

    const resumeTwice = async () => {
      const copy = tmpDir();
      fs.copyFileSync(path.join(cudaDir, 'last.safetensors'), path.join(copy, 'last.safetensors'));
      const losses: number[] = [];
      const c = HVAE.create({ ...SMALL, seed: 99 });
      const r = await c.fit(data, { ...opts, checkpointDir: copy, resume: true, onProgress: (e) => losses.push(e.loss) });
      c.dispose();
      const events = fs.readFileSync(path.join(copy, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      return { losses, r, events };
    };
    const x = await resumeTwice();
    const y = await resumeTwice();
    assert.equal(x.r.step, 5, 'steps 3-5 of the epoch ran after the resume');
    assert.equal(x.losses.length, 3);
    assert.deepEqual(x.losses, y.losses, 'the reseeded generator is deterministic');
    const note = x.events.find((e) => e.event === 'resumed');
    assert.ok(note, 'a resumed event is logged');
    assert.equal(note!.rngReseeded, true);
    assert.equal(note!.rngDevice, 'cuda');
    assert.equal(note!.device, 'cpu');
    assert.equal(note!.seed, 7 + 2);
  });

  it('resume with another seed or schedule (a deliberate branch) warns and logs every change; the run goes on', async function () {
    this.timeout(600000);
    const { data, opts, dir } = await interruptedRun();
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    const c = HVAE.create({ ...SMALL, seed: 3 });
    const r = await c.fit(data, { ...opts, seed: 8, warmupEpochs: 1, freeNats: 0, checkpointDir: dir, resume: true });
    c.dispose();
    await new Promise((res) => setImmediate(res)); // warnings are emitted on the next tick
    process.removeListener('warning', onWarning);
    assert.equal(r.step, 5);
    const code = (w: Error) => (w as Error & { code?: string }).code;
    assert.ok(warnings.some((w) => code(w) === 'HVAE_RESUME_ORDER' && /seed 8 \(the checkpoint's: 7\)/.test(w.message)));
    const objective = warnings.filter((w) => code(w) === 'HVAE_RESUME_OBJECTIVE');
    assert.equal(objective.length, 1);
    assert.match(objective[0].message, /warmupEpochs 1 \(the checkpoint's: 200\), freeNats 0 \(the checkpoint's: 2\) change what the run optimises/);
    assert.doesNotMatch(objective[0].message, /seed|maxSteps/);
    const events = fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const note = events.find((e) => e.event === 'resumed');
    // Every difference is logged, also those that only change bookkeeping (the first run stopped by maxSteps 2).
    assert.deepEqual(note?.changed, { warmupEpochs: [200, 1], freeNats: [2, 0], seed: [7, 8], maxSteps: [2, null] });
    const epoch = events.find((e) => e.event === 'epoch' && e.epoch === 1);
    assert.equal(epoch?.beta, 1, 'the new schedule applies from the resume on');
    assert.equal(epoch?.freeNats, 0);
  });

  it('SIGINT ends the step and saves, also when a second SIGINT follows at once (as `timeout -s INT` sends)', async function () {
    this.timeout(300000);
    const dir = tmpDir();
    const code = `
      const { HVAE } = require('hvae-native');
      const { subset } = require('./lib/data/stream.js');
      const { loadDataset } = require('./lib/data/datasets.js');
      (async () => {
        const all = await loadDataset('FashionMNIST', { split: 'train' });
        const data = subset(all, Array.from({ length: 2000 }, (_, i) => i), 'FashionMNIST train[0:2000]');
        const m = HVAE.create({ preset: 'fashionmnist' });
        let told = false;
        const r = await m.fit(data, { epochs: 5, batchSize: 100, validation: 100, imagesEvery: 0, checkpointDir: ${JSON.stringify(dir)},
          onProgress: () => { if (!told) { told = true; process.stdout.write('started\\n'); } } });
        process.stdout.write(JSON.stringify({ aborted: r.aborted, step: r.step }) + '\\n');
      })();
    `;
    const child = spawn(process.execPath, ['-e', code], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    await new Promise<void>((resolve) => { const t = setInterval(() => { if (out.includes('started')) { clearInterval(t); resolve(); } }, 20); });
    // A full-size step at batch 100 takes seconds here: the second signal arrives while it (or the save) runs.
    child.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGINT');
    const [exitCode, signal] = await new Promise<[number | null, string | null]>((r) => child.once('exit', (c, sg) => r([c, sg])));
    assert.equal(signal, null, 'not killed by the second SIGINT');
    assert.equal(exitCode, 0);
    const result = JSON.parse(out.trim().split('\n').pop()!) as { aborted: boolean; step: number };
    assert.equal(result.aborted, true);
    assert.ok(result.step >= 1 && result.step < 95, `stopped at step ${result.step}`);
    const events = fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; step?: number });
    assert.equal(events[events.length - 1].event, 'aborted');
    const saved = HVAE.readMetadata(path.join(dir, 'last.safetensors'));
    assert.equal((JSON.parse(saved.trainState) as { step: number }).step, result.step);
  });
});
