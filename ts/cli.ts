#!/usr/bin/env node
/**
 * The hvae-native command line: `main` (the paper's FashionMNIST finding with the bundled model), `train`,
 * `score`, `evaluate`, `data`, `demo` and `versions`. Run `hvae-native help` for usage.
 */
import * as fs from 'node:fs';
import { ensureDir } from './safetensors.js';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { HVAEError } from './errors.js';
import { HVAE, Device, InputTransform } from './model.js';
import { getVersions, setNumThreads } from './index.js';
import { ProgressBar } from './progress.js';
import type { Dataset } from './data/stream.js';

const USAGE = `hvae-native <command> [options]

Commands:
  main       Evaluate the bundled FashionMNIST model against MNIST and notMNIST (the paper's finding)
               --model FILE  --limit N (default 2000 per set) | --full  --importance-samples S  --out DIR
               --lower-latents mode|sample (L>k's lower latents: the conditional prior's mode, or sampled)
  train      Train an HVAE
               --data NAME[:split]|PATH  --preset fashionmnist|cifar10  --out DIR (runs/train)  --epochs N  --batch-size B
               --resume  --validation N  --warmup-epochs N  --free-nats X  --seed N  --max-steps N
               --images-every N  --device cpu|cuda[:N]  --channels C  --skip-connections reference|paper
               --binarization dynamic|static  --free-nats-mode reference|layer-total|paper-era
  score      Score images: one line per image with every score and the detector's decision
               --model FILE  --input NAME[:split]|FOLDER|ARCHIVE|FILE  --out scores.jsonl|scores.csv|- (stdout)
               --k 0,1,2  --importance-samples S  --batch-size B  --limit N (a random sample, by --seed)
  evaluate   The paper's protocol: table (AUROC, AUPRC, FPR80, FPR95) and figures
               --model FILE  --id NAME  --ood NAME,NAME  --id-train NAME  --importance-samples S  --limit N  --out DIR
               --lower-latents mode|sample
  data       data list | data fetch NAME [--split S] [--root DIR] [--base-url URL]
  demo       Build a small model, score random images, print shapes and versions
  versions   Print package, LibTorch and CUDA versions

Common: --threads N (CPU threads; default all cores)  --device cpu|cuda[:N]  --seed N  --quiet|-q (no progress bar)
        --precision float32|bfloat16 (main, score, evaluate: bfloat16 layers, faster, slightly different scores;
                                      train: bfloat16 layers on float32 weights, gradients and Adam)
Data root: --root DIR or HVAE_DATA; with neither, the default roots, which include /usr/share/datasets (Debian's
           dataset-fashion-mnist).`;

type Flags = Record<string, string | boolean | undefined>;

function parse(argv: string[]): { command: string; sub: string[]; flags: Flags } {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      model: { type: 'string' }, input: { type: 'string' }, out: { type: 'string' }, data: { type: 'string' },
      preset: { type: 'string' }, epochs: { type: 'string' }, 'batch-size': { type: 'string' }, resume: { type: 'boolean' },
      validation: { type: 'string' }, 'warmup-epochs': { type: 'string' }, 'free-nats': { type: 'string' },
      seed: { type: 'string' }, 'max-steps': { type: 'string' }, 'images-every': { type: 'string' },
      device: { type: 'string' }, channels: { type: 'string' }, k: { type: 'string' },
      'importance-samples': { type: 'string' }, limit: { type: 'string' }, full: { type: 'boolean' },
      id: { type: 'string' }, ood: { type: 'string' }, 'id-train': { type: 'string' }, split: { type: 'string' },
      root: { type: 'string' }, 'base-url': { type: 'string' }, threads: { type: 'string' }, help: { type: 'boolean', short: 'h' },
      'lower-latents': { type: 'string' }, 'skip-connections': { type: 'string' }, binarization: { type: 'string' },
      'free-nats-mode': { type: 'string' }, precision: { type: 'string' }, quiet: { type: 'boolean', short: 'q' },
    },
  });
  return { command: positionals[0] ?? 'help', sub: positionals.slice(1), flags: values as Flags };
}

function num(flags: Flags, key: string, def?: number): number | undefined {
  const v = flags[key];
  if (v === undefined) return def;
  // Decimal numbers only: Number() would also take '' (0), '0x2' and ' 5 '.
  const n = typeof v === 'string' && /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(v) ? Number(v) : NaN;
  if (typeof v !== 'string' || !Number.isFinite(n)) throw new HVAEError('ERR_HVAE_OPTION', `--${key} must be a number, got ${String(v)}`);
  return n;
}

/** A flag that must be a positive integer (a count), or undefined when absent. */
function positiveInt(flags: Flags, key: string, def?: number): number | undefined {
  const n = num(flags, key, def);
  if (n !== undefined && !(Number.isInteger(n) && n >= 1)) throw new HVAEError('ERR_HVAE_OPTION', `--${key} must be a positive integer, got ${String(flags[key])}`);
  return n;
}

function str(flags: Flags, key: string, def?: string): string | undefined {
  const v = flags[key];
  return typeof v === 'string' ? v : def;
}

function required(flags: Flags, key: string): string {
  const v = str(flags, key);
  if (!v) throw new HVAEError('ERR_HVAE_OPTION', `--${key} is required (see hvae-native help)`);
  return v;
}

function intList(s: string | undefined): number[] | undefined {
  if (s === undefined) return undefined;
  const out = s.split(',').map((x) => x.trim()).filter(Boolean).map((x) => {
    const n = /^[+-]?\d+$/.test(x) ? Number(x) : NaN;
    if (!Number.isSafeInteger(n)) throw new HVAEError('ERR_HVAE_OPTION', `expected a comma-separated list of integers, got '${s}'`);
    return n;
  });
  if (out.length === 0) throw new HVAEError('ERR_HVAE_OPTION', `expected a comma-separated list of integers, got '${s}'`);
  // A repeated k would give two columns of the same name.
  if (new Set(out).size !== out.length) throw new HVAEError('ERR_HVAE_OPTION', `the list '${s}' names a value twice`);
  return out;
}

/** Package root (for the bundled model). */
const ROOT = path.resolve(__dirname, '..');
/** The bundled FashionMNIST model. */
export const BUNDLED_MODEL = path.join(ROOT, 'models', 'fashionmnist.safetensors');

/**
 * Opens a data source: a named dataset (`MNIST`, `FashionMNIST:train`), a folder or archive of images, an IDX,
 * NPY or raw file. Images are converted to the model's shape where a conversion is well defined (folders).
 */
export async function openSource(spec: string, options: { root?: string; defaultSplit?: 'train' | 'test'; shape?: [number, number, number] } = {}): Promise<Dataset> {
  const data = await import('./data/index.js');
  const [name, split] = spec.split(':');
  const known = data.listDatasets().find((d) => d.name.toLowerCase() === name.toLowerCase());
  if (known && !fs.existsSync(spec)) {
    return data.loadDataset(known.name, { split: (split ?? options.defaultSplit ?? 'test') as 'train' | 'test', root: options.root });
  }
  if (!fs.existsSync(spec)) {
    throw new HVAEError('ERR_HVAE_DATA', `'${spec}' is neither a known dataset (${data.listDatasets().map((d) => d.name).join(', ')}) nor an existing file or folder`);
  }
  const stat = fs.statSync(spec);
  const lower = spec.toLowerCase();
  const decode = options.shape ? { channels: options.shape[0] as 1 | 3, size: [options.shape[1], options.shape[2]] as [number, number] } : {};
  if (stat.isDirectory() || /\.(tar|tar\.gz|tgz|zip)$/.test(lower)) return data.openImages(spec, { ...decode, name: path.basename(spec) } as never);
  if (/\.npy(\.gz)?$/.test(lower)) return data.openNpy(spec);
  if (/\.npz$/.test(lower)) return data.openNpz(spec);
  if (/\.json$/.test(lower)) return data.openRaw(spec);
  if (/idx\d-ubyte(\.gz)?$/.test(lower) || /\.idx(\.gz)?$/.test(lower)) return data.openIdx(spec);
  throw new HVAEError('ERR_HVAE_DATA', `${spec}: unknown input format (a dataset name, image folder, .tar/.tar.gz/.zip of images, IDX, .npy/.npz or a raw .json description)`);
}

function loadModel(flags: Flags, fallback?: string): HVAE {
  const file = str(flags, 'model', fallback);
  if (!file) throw new HVAEError('ERR_HVAE_OPTION', '--model is required');
  if (!fs.existsSync(file)) throw new HVAEError('ERR_HVAE_IO', `model file ${file} does not exist`);
  return HVAE.load(file, { device: (str(flags, 'device', 'cpu') as Device) });
}

async function cmdDemo(flags: Flags): Promise<void> {
  const v = getVersions();
  console.log(`hvae-native ${v.package} on LibTorch ${v.libtorch} (${v.flavour}), CUDA ${v.cuda ? `available, ${v.cudaDeviceCount} device(s)` : 'not available'}, ${v.numThreads} CPU threads`);
  const model = HVAE.create({ preset: 'fashionmnist', seed: num(flags, 'seed', 0), device: str(flags, 'device', 'cpu') as Device });
  console.log(`model: preset fashionmnist on ${model.device}, ${model.numParameters.toLocaleString('en')} parameters, latents ${model.latentShapes.map((s) => s.join('x')).join(', ')}`);
  const n = 8;
  const data = new Uint8Array(n * 784);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
  const images = { data, shape: [n, 1, 28, 28] as [number, number, number, number] };
  await model.initialize(images);
  const t0 = Date.now();
  const s = await model.scores(images, { k: [0, 1, 2, 3], importanceSamples: 4 });
  const ms = Date.now() - t0;
  console.log(`scores of ${n} images (S = 4, k = 0..3) in ${ms} ms:`);
  console.log(`  elbo ${s.elbo.constructor.name}[${s.elbo.length}]  bitsPerDim [${s.bitsPerDim.length}]  kl ${s.kl.length} x [${s.kl[0].length}]`);
  for (const k of Object.keys(s.llr)) console.log(`  boundAboveK[${k}] [${s.boundAboveK[Number(k)].length}]  llr[${k}] [${s.llr[Number(k)].length}]`);
  const g = await model.generate({ n: 4 });
  console.log(`prior samples: [${g.shape.join(', ')}]`);
  model.dispose();
}

async function cmdTrain(flags: Flags): Promise<void> {
  const out = str(flags, 'out', 'runs/train');
  const { fit } = await import('./train.js');
  const presetName = str(flags, 'preset', 'fashionmnist')!;
  const channels = num(flags, 'channels');
  const skip = str(flags, 'skip-connections') as 'reference' | 'paper' | undefined;
  const model = HVAE.create({
    preset: presetName, ...(channels !== undefined ? { channels } : {}), ...(skip ? { skipConnections: skip } : {}),
    device: str(flags, 'device', 'cpu') as Device, seed: num(flags, 'seed', 0),
  });
  const data = await openSource(str(flags, 'data', presetName === 'cifar10' ? 'CIFAR10:train' : 'FashionMNIST:train')!, { root: str(flags, 'root'), defaultSplit: 'train', shape: model.config.inputShape });
  const bar = flags.quiet ? undefined : new ProgressBar('train', 1);
  const r = await fit(model, data, {
    epochs: num(flags, 'epochs', 1000), batchSize: num(flags, 'batch-size', 128), checkpointDir: out, resume: !!flags.resume,
    validation: num(flags, 'validation', 5000), warmupEpochs: num(flags, 'warmup-epochs', 200), freeNats: num(flags, 'free-nats', 2),
    seed: num(flags, 'seed', 0), maxSteps: num(flags, 'max-steps'), imagesEvery: num(flags, 'images-every', 10),
    ...(str(flags, 'binarization') ? { binarization: str(flags, 'binarization') as 'dynamic' | 'static' } : {}),
    ...(str(flags, 'free-nats-mode') ? { freeNatsMode: str(flags, 'free-nats-mode') as 'reference' } : {}),
    precision: str(flags, 'precision', 'float32') as 'float32' | 'bfloat16',
    onProgress: (e) => bar?.update(e.stepInEpoch, `loss ${e.loss.toFixed(1)} elbo ${e.elbo.toFixed(1)} beta ${e.beta.toFixed(3)}`, e.stepsPerEpoch, `epoch ${e.epoch}/${e.epochs}`),
    onEpoch: (e) => {
      bar?.done();
      console.log(`epoch ${e.epoch}: loss ${e.loss.toFixed(2)}, train ELBO ${e.elbo.toFixed(2)}, KL [${e.kl.map((k) => k.toFixed(1)).join(', ')}], ` +
        `${e.validationElbo !== undefined ? `validation ELBO ${e.validationElbo.toFixed(2)} (${e.validationBitsPerDim!.toFixed(4)} bits/dim)${e.best ? ' best' : ''}, ` : ''}` +
        `${e.imagesPerSecond.toFixed(1)} images/s`);
    },
  });
  console.log(`${r.aborted ? 'stopped' : 'done'} at epoch ${r.epoch}, step ${r.step}; best validation ELBO ${r.bestValidationElbo?.toFixed(3) ?? '-'}; files in ${path.resolve(out ?? ".")}`);
  model.dispose();
}

async function cmdScore(flags: Flags): Promise<void> {
  const model = loadModel(flags);
  try {
    await scoreToFile(model, flags);
  } finally {
    model.dispose();
  }
}

async function scoreToFile(model: HVAE, flags: Flags): Promise<void> {
  const outFile = required(flags, 'out');
  const input = required(flags, 'input');
  const limit = positiveInt(flags, 'limit');
  const seed = num(flags, 'seed', 0)!;
  const S = num(flags, 'importance-samples', 1)!;
  const precision = str(flags, 'precision', 'float32') as 'float32' | 'bfloat16';
  const data = await openSource(input, { root: str(flags, 'root'), shape: model.config.inputShape });
  const { batches, subset } = await import('./data/stream.js');
  const { permutation } = await import('./data/random.js');
  // --limit scores a seeded random sample; its rows keep the dataset's own indices.
  const pick = limit !== undefined && limit < data.length ? permutation(data.length, seed).slice(0, limit).sort() : undefined;
  const view = pick ? subset(data, pick, data.name) : data;
  // The model's draws (dynamic binarisation) come from its own generator: seed it, so the same seed gives the same file.
  model.seed(seed);
  const ks = intList(str(flags, 'k')) ?? Array.from({ length: model.numLayers }, (_, i) => i);
  let detector: import('./detector.js').OODDetector | undefined;
  let detectorNote = ' (no detector calibration in the model file: no decisions)';
  let transform: InputTransform | undefined;
  const meta = HVAE.readMetadata(str(flags, 'model')!);
  if (meta.detector) {
    const { loadDetector } = await import('./detector.js');
    detector = loadDetector(model, str(flags, 'model')!);
    const cal = detector.toJSON();
    if (cal.importanceSamples !== S) {
      // Its LLR distributions hold for the S it was calibrated with; L^S grows with S, so a threshold from another S
      // would flag the wrong share of in-distribution images.
      detectorNote = ` (no decisions: the detector was calibrated with S = ${cal.importanceSamples}, and these scores use S = ${S})`;
      detector = undefined;
    } else {
      for (const k of detector.ks) if (!ks.includes(k)) ks.push(k);
      transform = cal.transform;
      detectorNote = precision === 'float32' ? '' : ` (decisions from a float32 calibration applied to ${precision} scores)`;
    }
  }
  const csv = outFile.toLowerCase().endsWith('.csv');
  const out = new ResultsFile(outFile);
  let done = 0;
  const bar = flags.quiet ? undefined : new ProgressBar('score', view.length);
  try {
    const cols = ['index', 'name', 'elbo', 'bits_per_dim', ...ks.map((k) => `L>${k}`), ...ks.filter((k) => k > 0).map((k) => `LLR>${k}`), ...(detector ? ['detector_score', 'detector_k', 'ood'] : [])];
    if (csv) out.write(`${cols.join(',')}\n`);
    for await (const b of batches(view, { batchSize: num(flags, 'batch-size', 500), readAhead: 2 })) {
      const s = await model.scores(b.images, { k: ks, importanceSamples: S, precision, ...(transform ? { transform } : {}) });
      const det = detector ? detector.decide(detector.scoreLlr(s.llr)) : undefined;
      let text = '';
      for (let i = 0; i < s.size; i++) {
        const index = pick ? pick[b.indices[i]] : b.indices[i];
        const rec: Record<string, string | number | boolean> = { index, name: b.names?.[i] ?? '', elbo: s.elbo[i], bits_per_dim: s.bitsPerDim[i] };
        for (const k of ks) rec[`L>${k}`] = s.boundAboveK[k][i];
        for (const k of ks) if (k > 0) rec[`LLR>${k}`] = s.llr[k][i];
        if (det) { rec.detector_score = det.score[i]; rec.detector_k = det.k[i]; rec.ood = det.isOOD[i] === 1; }
        text += csv ? `${cols.map((c) => csvCell(rec[c])).join(',')}\n` : `${JSON.stringify(rec)}\n`;
      }
      out.write(text);
      done += s.size;
      bar?.update(done);
    }
    out.commit();
  } catch (e) {
    // Nothing half-written is left behind: the output appears whole (rename) or not at all.
    out.discard();
    throw e;
  }
  const summary = `wrote ${done} lines to ${outFile === '-' ? 'standard output' : outFile}${detectorNote}`;
  if (bar) bar.done(summary); else console.error(summary);
}

/**
 * The score command's output file. A regular file (new or existing) is written to a temporary file in the same
 * folder and renamed over the target once complete, so a failed or interrupted run (SIGINT and SIGTERM included)
 * leaves the old file or none, and no temporary file. A device or a pipe (`/dev/stdout`, a FIFO) is written
 * directly: renaming over it would replace the device node with a regular file. `-` is standard output. Every
 * failure is `ERR_HVAE_IO`.
 */
class ResultsFile {
  private fd: number | undefined;
  private readonly tmp: string | undefined;
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    this.discard();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };

  constructor(readonly file: string) {
    if (file === '-') {
      this.fd = 1; // standard output, written directly and left open
      this.tmp = undefined;
      return;
    }
    let st: fs.Stats | undefined;
    try { st = fs.statSync(file); } catch { /* a new file */ }
    if (st?.isDirectory()) throw new HVAEError('ERR_HVAE_IO', `--out ${file} is a folder; give a file name, such as ${path.join(file, 'scores.jsonl')}`);
    const dir = path.dirname(path.resolve(file));
    ensureDir(dir, 'the output folder');
    this.tmp = st !== undefined && !st.isFile() ? undefined : path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
    try {
      this.fd = fs.openSync(this.tmp ?? file, 'w');
    } catch (e) {
      throw this.ioError(e);
    }
    if (this.tmp) {
      process.once('SIGINT', this.onSignal);
      process.once('SIGTERM', this.onSignal);
    }
  }

  write(text: string): void {
    const buf = Buffer.from(text);
    for (let off = 0; off < buf.length;) {
      try {
        off += fs.writeSync(this.fd!, buf, off, buf.length - off);
      } catch (e) {
        // A non-blocking pipe that is full (stdout read slowly): wait a moment and go on.
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw this.ioError(e);
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
      }
    }
  }

  /** Flushes, closes and (for a regular file) renames into place. */
  commit(): void {
    try {
      if (this.tmp) fs.fsyncSync(this.fd!);
      if (this.fd !== 1) fs.closeSync(this.fd!);
      this.fd = undefined;
      if (this.tmp) fs.renameSync(this.tmp, this.file);
    } catch (e) {
      throw this.ioError(e);
    } finally {
      this.unhook();
    }
  }

  /** Closes and removes the temporary file; never throws. */
  discard(): void {
    if (this.fd !== undefined && this.fd !== 1) { try { fs.closeSync(this.fd); } catch { /* already failing */ } }
    this.fd = undefined;
    if (this.tmp) { try { fs.rmSync(this.tmp, { force: true }); } catch { /* best effort */ } }
    this.unhook();
  }

  private unhook(): void {
    process.removeListener('SIGINT', this.onSignal);
    process.removeListener('SIGTERM', this.onSignal);
  }

  private ioError(e: unknown): HVAEError {
    return new HVAEError('ERR_HVAE_IO', `cannot write ${this.file}: ${(e as Error).message}`, { cause: e });
  }
}

function csvCell(v: string | number | boolean | undefined): string {
  if (v === undefined) return '';
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

async function cmdEvaluate(flags: Flags, main = false): Promise<void> {
  const { runEvaluation } = await import('./report.js');
  const model = loadModel(flags, main ? BUNDLED_MODEL : undefined);
  const root = str(flags, 'root');
  const idName = str(flags, 'id', 'FashionMNIST')!;
  const oodNames = (str(flags, 'ood', 'MNIST,notMNIST')!).split(',').filter(Boolean);
  if (flags.full && flags.limit !== undefined) throw new HVAEError('ERR_HVAE_OPTION', '--full and --limit exclude each other: --full evaluates every image');
  const limit = flags.full ? undefined : positiveInt(flags, 'limit', main ? 2000 : undefined);
  const out = str(flags, 'out', main ? 'report' : 'evaluation')!;
  // A dataset name without a split means its test split; a path is opened as it is.
  const shape = model.config.inputShape;
  const id = await openSource(idName, { root, defaultSplit: 'test', shape });
  const ood: Dataset[] = [];
  for (const n of oodNames) ood.push(await openSource(n, { root, defaultSplit: 'test', shape }));
  const idTrainName = str(flags, 'id-train');
  const idTrain = idTrainName ? await openSource(idTrainName, { root, defaultSplit: 'train', shape }) : undefined;
  const bar = flags.quiet ? undefined : new ProgressBar('scoring', 1);
  const r = await runEvaluation(model, { id, ood, idTrain, modelFile: str(flags, 'model', BUNDLED_MODEL)! }, {
    limit, importanceSamples: num(flags, 'importance-samples', 1), seed: num(flags, 'seed', 0), outDir: out,
    lowerLatents: (str(flags, 'lower-latents', 'mode') as 'mode' | 'sample'), dataRoot: root,
    precision: (str(flags, 'precision', 'float32') as 'float32' | 'bfloat16'),
    onProgress: (p) => bar?.update(p.done, '', p.total, `scoring ${p.set}`),
  });
  bar?.done();
  console.log(r.markdown);
  console.log(`\nreport and figures: ${path.resolve(out)} (${r.files.map((f) => path.basename(f)).join(', ')})`);
  model.dispose();
}

async function cmdData(sub: string[], flags: Flags): Promise<void> {
  const data = await import('./data/index.js');
  if (sub[0] === 'list' || sub.length === 0) {
    for (const d of data.listDatasets()) console.log(`${d.name.padEnd(24)} ${JSON.stringify(d).slice(0, 160)}`);
    return;
  }
  if (sub[0] === 'fetch') {
    const name = sub[1];
    if (!name) throw new HVAEError('ERR_HVAE_OPTION', 'usage: hvae-native data fetch NAME [--split S] [--root DIR] [--base-url URL]');
    const r = await data.fetchDataset(name, { root: str(flags, 'root'), baseUrl: str(flags, 'base-url'), ...(str(flags, 'split') ? { split: str(flags, 'split') as 'train' } : {}) });
    console.log(JSON.stringify(r, null, 2));
    return;
  }
  throw new HVAEError('ERR_HVAE_OPTION', `unknown data command '${sub[0]}' (list, fetch)`);
}

/** Runs the CLI with the given arguments (without `node` and the script). */
export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parse(argv);
  } catch (e) {
    console.error(`hvae-native: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { command, sub, flags } = parsed;
  if (flags.help || command === 'help') {
    console.log(USAGE);
    return 0;
  }
  try {
    const threads = num(flags, 'threads');
    if (threads !== undefined) setNumThreads(threads);
    switch (command) {
      case 'versions': console.log(JSON.stringify(getVersions(), null, 2)); break;
      case 'demo': await cmdDemo(flags); break;
      case 'train': await cmdTrain(flags); break;
      case 'score': await cmdScore(flags); break;
      case 'evaluate': await cmdEvaluate(flags); break;
      case 'main': await cmdEvaluate(flags, true); break;
      case 'data': await cmdData(sub, flags); break;
      default:
        console.error(`hvae-native: unknown command '${command}'\n\n${USAGE}`);
        return 2;
    }
    return 0;
  } catch (e) {
    const err = e as HVAEError;
    console.error(`hvae-native ${command}: ${err.code ? `[${err.code}] ` : ''}${err.message}`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
}
