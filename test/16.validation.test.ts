/**
 * Bad input gets a typed error before any work starts: counts the addon would truncate to 32 bits, sample counts
 * that would run for days, non-finite or out-of-range training settings that would silently turn every weight into
 * NaN, unknown keys, wrong option types, paths where Node's recursive mkdir never returns, files that would be
 * written unreadable, and detector inputs that would be scored as in-distribution.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  HVAE, HVAEError, OODDetector, resolveFitOptions, setCpuCache, setNumThreads, getNumThreads, writeFileAtomic,
  writeSafetensors, readSafetensors, writeFigure, evaluateOOD, reportMarkdown, MAX_IMPORTANCE_SAMPLES,
} from '../lib/index.js';
import { tmpDir } from './setup.js';

const SMALL = { preset: 'fashionmnist' as const, channels: 8 };
const x = { data: new Float32Array(2 * 784).fill(0.5), shape: [2, 1, 28, 28] as [number, number, number, number] };
const u8 = { data: new Uint8Array(4 * 784).fill(100), shape: [4, 1, 28, 28] as [number, number, number, number] };

function code(c: string, re?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof HVAEError, `expected an HVAEError, got ${String(e)}`);
    assert.equal((e as HVAEError).code, c, (e as Error).message);
    if (re) assert.match((e as Error).message, re);
    return true;
  };
}

describe('16 validation: bad options and inputs are refused with a typed error', function () {
  this.timeout(120000);
  let m: HVAE;
  before(() => { m = HVAE.create(SMALL); });
  after(() => m.dispose());

  it('counts above what the addon takes are refused, not truncated to 32 bits', async () => {
    await assert.rejects(m.scores(x, { importanceSamples: 2 ** 32 + 1, k: [] }), code('ERR_HVAE_OPTION', /at most/));
    await assert.rejects(m.scores(x, { importanceSamplesAboveK: 2 ** 32 + 2 }), code('ERR_HVAE_OPTION', /at most/));
    await assert.rejects(m.scores(x, { importanceSamples: 1e9, k: [] }), code('ERR_HVAE_OPTION', new RegExp(`at most ${MAX_IMPORTANCE_SAMPLES}`)));
    await assert.rejects(m.scores(x, { chunkRows: 2 ** 31 }), code('ERR_HVAE_OPTION'));
    assert.throws(() => m.generateSync({ n: 2 ** 32 + 1 }), code('ERR_HVAE_OPTION'));
    const before = getNumThreads();
    assert.throws(() => setNumThreads(2 ** 32 + 1), code('ERR_HVAE_OPTION'));
    assert.equal(getNumThreads(), before);
    assert.throws(() => setCpuCache({ maxBytes: 2 ** 64 }), code('ERR_HVAE_OPTION'));
    assert.throws(() => HVAE.create({ ...SMALL, seed: 2 ** 63 }), code('ERR_HVAE_OPTION'));
  });

  it('float pixels outside [0, 1] are ERR_HVAE_RANGE (they were scored and trained on silently)', async () => {
    for (const v of [5, -3, 1.0001, 255]) {
      const bad = { data: new Float32Array(2 * 784).fill(0.5), shape: x.shape };
      bad.data[784 + 3] = v;
      await assert.rejects(m.scores(bad), code('ERR_HVAE_RANGE', /images\.data\[787\] is .*image 1.*\[0, 1\]/), String(v));
      assert.throws(() => m.trainStepSync(bad, { step: false }), code('ERR_HVAE_RANGE'), String(v));
    }
    const edges = { data: new Float32Array(2 * 784).map((_, i) => i % 2), shape: x.shape };
    assert.equal((await m.scores(edges, { k: [] })).elbo.length, 2); // 0 and 1 themselves are in range
    const nan = { data: new Float32Array(2 * 784).fill(NaN), shape: x.shape };
    await assert.rejects(m.scores(nan), code('ERR_HVAE_NONFINITE'));
  });

  it('scores: wrong option types and unknown keys', async () => {
    await assert.rejects(m.scores(x, null as never), code('ERR_HVAE_OPTION', /must be an object/));
    await assert.rejects(m.scores(x, 'fast' as never), code('ERR_HVAE_OPTION', /must be an object/));
    await assert.rejects(m.scores(x, { belowL: 2 as never }), code('ERR_HVAE_OPTION', /belowL/));
    await assert.rejects(m.scores(x, { returnElboSamples: 'no' as never }), code('ERR_HVAE_OPTION', /true or false/));
    await assert.rejects(m.scores(x, { details: 'no' as never }), code('ERR_HVAE_OPTION', /true or false/));
    for (const threshold of [NaN, 5, -1]) {
      await assert.rejects(m.scores(x, { transform: 'threshold', threshold }), code('ERR_HVAE_OPTION', /threshold/));
    }
    await assert.rejects(m.elbo(x, { k: [1] } as never), code('ERR_HVAE_OPTION', /unknown elbo option 'k'/));
  });

  it('generate: unknown keys and enum values', () => {
    assert.throws(() => m.generateSync({ n: 1, num: 5 } as never), code('ERR_HVAE_OPTION', /unknown generate option 'num'/));
    assert.throws(() => m.generateSync({ n: 1, lowerLatents: 'median' as never }), code('ERR_HVAE_OPTION', /lowerLatents/));
    assert.throws(() => m.generateSync({ n: 1, transform: 'gamma' as never }), code('ERR_HVAE_OPTION', /transform/));
    assert.throws(() => m.generateSync({ n: 1, posteriorMean: 'yes' as never }), code('ERR_HVAE_OPTION', /true or false/));
  });

  it('trainStep: settings that would corrupt the weights are refused and leave them untouched', async () => {
    const t = HVAE.create(SMALL);
    try {
      t.trainStepSync(u8); // initialises
      const ref = t.getState();
      for (const bad of [{ lr: NaN }, { lr: -1 }, { beta1: 1 }, { beta2: 5 }, { eps: 0 }, { freeNats: -1 }, { beta: Infinity },
        { learningRate: 1 }, { skipNonFinite: 'no' }, { freeNatsMode: 'x' }, { precision: 'half' }]) {
        assert.throws(() => t.trainStepSync(u8, bad as never), code('ERR_HVAE_OPTION'), JSON.stringify(bad));
      }
      assert.throws(() => t.trainStepSync(u8, null as never), code('ERR_HVAE_OPTION'));
      const after = t.getState();
      assert.deepEqual(Object.keys(after), Object.keys(ref));
      for (const [name, v] of Object.entries(after)) assert.deepEqual(v.data, ref[name].data, name);
      assert.ok((await t.scores(x, { k: [] })).elbo.every(Number.isFinite));
    } finally {
      t.dispose();
    }
    assert.throws(() => resolveFitOptions({ betas: [NaN, 0.999] }), code('ERR_HVAE_OPTION', /betas/));
    assert.throws(() => resolveFitOptions({ onProgress: 5 as never }), code('ERR_HVAE_OPTION', /onProgress must be a function/));
    assert.throws(() => resolveFitOptions({ skipNonFinite: 'no' as never }), code('ERR_HVAE_OPTION', /skipNonFinite/));
  });

  it('create and load: presets are looked up as names only, options must be objects with known keys', () => {
    for (const p of ['toString', 'constructor', '__proto__', '']) {
      assert.throws(() => HVAE.create({ preset: p as never }), code('ERR_HVAE_OPTION', /unknown preset/), p);
    }
    assert.throws(() => HVAE.create({ stages: [null as never] }), code('ERR_HVAE_OPTION', /stages\[0\] must be an object/));
    assert.throws(() => HVAE.create(null as never), code('ERR_HVAE_OPTION'));
    const f = path.join(tmpDir(), 'm.safetensors');
    m.save(f);
    assert.throws(() => HVAE.load(f, { devic: 'cuda' } as never), code('ERR_HVAE_OPTION', /unknown HVAE.load option 'devic'/));
    assert.throws(() => HVAE.load(f, null as never), code('ERR_HVAE_OPTION'));
    assert.throws(() => HVAE.load(0 as never), code('ERR_HVAE_OPTION', /file path/));
    const gone = HVAE.create(SMALL);
    gone.dispose();
    assert.throws(() => gone.supportsBFloat16, code('ERR_HVAE_DISPOSED'));
  });

  it('a checkpoint whose config is invalid, or whose header has impossible shapes, is ERR_HVAE_FORMAT', () => {
    const dir = tmpDir();
    const f = path.join(dir, 'm.safetensors');
    m.save(f);
    const { tensors, metadata } = readSafetensors(f);
    const cfg = JSON.parse(metadata.config);
    const bad = path.join(dir, 'bad-config.safetensors');
    writeSafetensors(bad, tensors, { ...metadata, config: JSON.stringify({ ...cfg, stages: [null] }) });
    assert.throws(() => HVAE.load(bad), code('ERR_HVAE_FORMAT', /config is invalid/));
    // Non-finite weights (a checkpoint of a run that diverged, or corrupted) and a corrupt generator state.
    const w = new Map(tensors);
    const [firstName, first] = [...w].find(([k]) => !k.startsWith('optim.') && !k.startsWith('rng.'))!;
    const nanData = Float32Array.from(first.data as Float32Array);
    nanData[0] = NaN;
    w.set(firstName, { ...first, data: nanData });
    const nanFile = path.join(dir, 'nan.safetensors');
    writeSafetensors(nanFile, w, metadata);
    assert.throws(() => HVAE.load(nanFile), code('ERR_HVAE_FORMAT', /must be finite/));
    assert.throws(() => m.setState({ [firstName]: { data: nanData, shape: first.shape } }), code('ERR_HVAE_NONFINITE'));
    const t = HVAE.create(SMALL);
    try {
      t.trainStepSync(u8);
      const withRng = path.join(dir, 'rng.safetensors');
      t.save(withRng, { trainingState: true });
      const r = readSafetensors(withRng);
      const rng = r.tensors.get('rng.state')!;
      assert.ok(rng, 'a training checkpoint holds rng.state');
      const garbage = new Uint8Array(rng.data.length).fill(0xff);
      r.tensors.set('rng.state', { ...rng, data: garbage });
      const corrupt = path.join(dir, 'rng-corrupt.safetensors');
      writeSafetensors(corrupt, r.tensors, r.metadata);
      assert.throws(() => HVAE.load(corrupt), code('ERR_HVAE_FORMAT', /rng\.state/));
      HVAE.load(withRng).dispose(); // the uncorrupted file loads
    } finally {
      t.dispose();
    }
    // Headers with impossible dimensions (written by hand: the writer refuses them).
    for (const shape of ['[-2]', '["2"]', '[2.5]']) {
      const header = Buffer.from(`{"w":{"dtype":"F32","shape":${shape},"data_offsets":[0,8]}}`.padEnd(64, ' '));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(header.length));
      const neg = path.join(dir, 'neg.safetensors');
      fs.writeFileSync(neg, Buffer.concat([len, header, Buffer.alloc(8)]));
      assert.throws(() => readSafetensors(neg), code('ERR_HVAE_FORMAT', /non-negative integers/), shape);
    }
    // The same layout with a valid shape reads, so the check above is what refused them.
    const okHeader = Buffer.from('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'.padEnd(64, ' '));
    const okLen = Buffer.alloc(8);
    okLen.writeBigUInt64LE(BigInt(okHeader.length));
    fs.writeFileSync(path.join(dir, 'ok.safetensors'), Buffer.concat([okLen, okHeader, Buffer.alloc(8)]));
    assert.deepEqual(readSafetensors(path.join(dir, 'ok.safetensors')).tensors.get('w')!.shape, [2]);
    // Layouts the format forbids: tensors sharing bytes, bytes of no tensor (a gap, or appended after the last one),
    // and metadata that is not strings.
    const raw = (json: string, dataBytes: number) => {
      const h = Buffer.from(json.padEnd(Math.ceil((json.length + 8) / 8) * 8 - 8, ' '));
      const l = Buffer.alloc(8);
      l.writeBigUInt64LE(BigInt(h.length));
      const file = path.join(dir, 'layout.safetensors');
      fs.writeFileSync(file, Buffer.concat([l, h, Buffer.alloc(dataBytes)]));
      return () => readSafetensors(file);
    };
    const entry = (name: string, b: number, e: number) => `"${name}":{"dtype":"F32","shape":[${(e - b) / 4}],"data_offsets":[${b},${e}]}`;
    assert.throws(raw(`{${entry('a', 0, 8)},${entry('b', 4, 12)}}`, 12), code('ERR_HVAE_FORMAT', /'b' overlaps the tensor before it/));
    assert.throws(raw(`{${entry('a', 0, 8)},${entry('b', 12, 16)}}`, 16), code('ERR_HVAE_FORMAT', /bytes 8-12 of the data belong to no tensor/));
    assert.throws(raw(`{${entry('a', 0, 8)}}`, 12), code('ERR_HVAE_FORMAT', /4 bytes after the last tensor/));
    assert.throws(raw(`{"__metadata__":{"n":3},${entry('a', 0, 8)}}`, 8), code('ERR_HVAE_FORMAT', /__metadata__ 'n' is not a string/));
    assert.equal(raw(`{${entry('b', 8, 16)},${entry('a', 0, 8)},"z":{"dtype":"F32","shape":[0],"data_offsets":[16,16]}}`, 16)().tensors.size, 3);
  });

  it('writers: refuse what would make an unreadable file, and fail (not hang) where mkdir cannot', async () => {
    const dir = tmpDir();
    const f = path.join(dir, 'w.safetensors');
    assert.throws(() => writeSafetensors(f, new Map([['a', { shape: [10], data: new Float32Array(2) }]])), code('ERR_HVAE_SHAPE'));
    assert.throws(() => writeSafetensors(f, new Map([['a', { shape: [2], data: new Int16Array(2) as never }]])), code('ERR_HVAE_DTYPE'));
    assert.throws(() => writeSafetensors(f, new Map([['__metadata__', { shape: [1], data: new Float32Array(1) }]])), code('ERR_HVAE_OPTION', /reserved/));
    assert.throws(() => writeSafetensors(f, { a: 1 } as never), code('ERR_HVAE_OPTION', /Map/));
    assert.throws(() => writeSafetensors(f, new Map(), { n: 1 as never }), code('ERR_HVAE_OPTION', /string/));
    assert.equal(fs.existsSync(f), false);
    assert.throws(() => writeFileAtomic(f, 'hello' as never), code('ERR_HVAE_OPTION', /Uint8Array/));
    // procfs answers ENOENT under /proc, where Node's recursive mkdir used to loop forever.
    assert.throws(() => m.save('/proc/hvae-nope/x.safetensors'), code('ERR_HVAE_IO', /mkdir/));
    assert.throws(() => writeFileAtomic('/proc/hvae-nope/y', new Uint8Array(3)), code('ERR_HVAE_IO'));
    await assert.rejects(writeFigure('/proc/hvae-nope/f.svg', '<svg xmlns="http://www.w3.org/2000/svg"/>'), code('ERR_HVAE_IO'));
    // Missing parents are still created.
    const deep = path.join(dir, 'a', 'b', 'c', 'x.bin');
    writeFileAtomic(deep, new Uint8Array([1, 2, 3]));
    assert.deepEqual([...fs.readFileSync(deep)], [1, 2, 3]);
  });

  it('detector: options, order of calls and the LLRs it is given', async () => {
    assert.throws(() => new OODDetector(m, null as never), code('ERR_HVAE_OPTION'));
    assert.throws(() => new OODDetector(m, { fpr: 0.01 } as never), code('ERR_HVAE_OPTION', /unknown OODDetector option 'fpr'/));
    assert.throws(() => new OODDetector(m, { k: [] }), code('ERR_HVAE_OPTION', /non-empty/));
    assert.throws(() => new OODDetector(null as never), code('ERR_HVAE_OPTION'));
    const d = new OODDetector(m, { k: [1, 2] });
    assert.throws(() => d.decide({ score: new Float32Array(2) } as never), code('ERR_HVAE_OPTION', /fit the detector/));
    await assert.rejects(d.fit(null as never), code('ERR_HVAE_OPTION'));
    const n = 40;
    const ramp = (o: number) => Float32Array.from({ length: n }, (_, i) => i + o);
    const state = { k: [1, 2], importanceSamples: 1, transform: 'auto' as const, falsePositiveRate: 0.05, threshold: 1,
      reference: { 1: Array.from(ramp(0)), 2: Array.from(ramp(1)) }, fittedOn: 'test', nReference: n, nCalibration: n };
    const fitted = OODDetector.fromJSON(m, state);
    assert.equal(fitted.scoreLlr({ 1: new Float32Array([100]), 2: new Float32Array([100]) }).score.length, 1);
    assert.throws(() => fitted.scoreLlr({ 1: new Float32Array([NaN]), 2: new Float32Array([1]) }), code('ERR_HVAE_NONFINITE'));
    assert.throws(() => fitted.scoreLlr({ 1: new Float32Array([1, 2, 3]), 2: new Float32Array([1]) }), code('ERR_HVAE_SHAPE'));
    assert.throws(() => OODDetector.fromJSON(m, { ...state, reference: { 1: ['a', 'b'], 2: [1] } } as never), code('ERR_HVAE_FORMAT'));
    assert.throws(() => OODDetector.fromJSON(m, { ...state, threshold: NaN }), code('ERR_HVAE_FORMAT'));
    assert.throws(() => OODDetector.fromJSON(m, { ...state, k: [9] }), code('ERR_HVAE_FORMAT', /does not fit this model/));
    await assert.rejects(evaluateOOD(m, { id: {} as never, ood: [{} as never] }, { limt: 2 } as never), code('ERR_HVAE_OPTION', /unknown evaluateOOD option 'limt'/));
    const batch = { data: new Uint8Array(784), shape: [1, 1, 28, 28] };
    await assert.rejects(evaluateOOD(m, { id: batch as never, ood: [batch as never] }), code('ERR_HVAE_OPTION', /id must be a Dataset.*ImageBatch/));
    assert.throws(() => reportMarkdown({} as never), code('ERR_HVAE_OPTION', /EvaluationReport/));
  });
});
