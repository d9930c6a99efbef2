/**
 * Loading the native addon. Order: `HVAE_NATIVE_PATH` (an explicit .node file), then a local build stamped with the
 * current sources (`npm rebuild`, `HVAE_FORCE_BUILD=1`, `npm run build:native`), then a prebuild under
 * `prebuilds/<platform>-<arch>/` whose recorded LibTorch is present on this machine, then `build/Release` (a local
 * build), then a relocatable prebuild (one built against a PyTorch wheel or a LibTorch archive) whose LibTorch
 * version and flavour match the PyTorch or `LIBTORCH` found here, then any other prebuild; where an NVIDIA driver
 * is present, a matching CUDA relocatable prebuild goes first of all ({@link candidateOrder}). If nothing loads, one
 * error explains what was tried, what was found, the likely cause and the fix.
 *
 * A relocatable prebuild cannot know where its LibTorch lies on the user's machine (a wheel sits in some
 * site-packages). Its LibTorch libraries are therefore loaded first, by absolute path, and the addon's own
 * dependencies (`libtorch.so`, `libc10.so`, ...) then resolve to them by soname; the wheel's libraries find their
 * own CUDA libraries through their RUNPATH, as they do under Python.
 *
 * Deliberately not `node-gyp-build` (which the project brief names): it picks one prebuild per platform, arch,
 * runtime and libc, while ours differ by LibTorch version and flavour, and each loads only beside its own LibTorch.
 * The prebuilds keep its layout and naming (`prebuilds/<platform>-<arch>/<name>.napi.<tags>.node`), so its tools
 * can still list them.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HVAEError } from './errors.js';

/** Runtime facts reported by the addon. */
export interface NativeVersions {
  /** The LibTorch version the addon was built against, e.g. `1.13.0` or `2.14.1`. */
  libtorch: string;
  /** Whether that LibTorch has CUDA. */
  flavour: 'cpu' | 'cuda';
  /** The folder of the LibTorch libraries in use (for a relocatable prebuild: the one found on this machine). */
  libtorchPath: string;
  /** How that LibTorch was chosen: at build time (`system`, `explicit`, `python (...)`), or `preloaded from ...`. */
  libtorchSource: string;
  /** Whether the addon was built with the C++11 ABI of libstdc++ (it must match the LibTorch it loads). */
  cxx11Abi?: boolean;
  /** Whether CUDA is usable: a CUDA build of LibTorch and at least one visible GPU. */
  cuda: boolean;
  /** Visible CUDA devices (0 without CUDA). */
  cudaDeviceCount: number;
  /** The CUDA runtime version as CUDA encodes it (12040 = 12.4), or null without CUDA. */
  cudaVersion: number | null;
  /** The cuDNN version as cuDNN encodes it (90100 = 9.1.0), or null without CUDA or cuDNN. */
  cudnn: number | null;
  /** Whether LibTorch has oneDNN (MKL-DNN), which runs the CPU convolutions. */
  mkldnn: boolean;
  /** Whether this CPU runs bfloat16 convolutions natively (AVX-512 BF16 or AMX): `precision: 'bfloat16'` on CPU. */
  cpuBFloat16: boolean;
  /** CPU threads LibTorch uses for intra-op parallelism (`setNumThreads`). */
  numThreads: number;
  /**
   * Whether cuDNN autotuning is on (process-wide; see `setCudnn`). Creating or loading a CUDA model turns it on
   * unless `setCudnn({ benchmark })` has chosen. Has no effect without CUDA.
   */
  cudnnBenchmark: boolean;
}

/** A JS-side tensor as the addon takes and returns it. */
export interface NativeTensor {
  /** The values, row-major: float32, or uint8 where the call takes pixels. */
  data: Float32Array | Uint8Array;
  /** The dimensions; their product is `data.length`. */
  shape: number[];
}

/** Raw scores as the addon returns them (see HVAE.scores for the public shape). */
export interface NativeScoreResult {
  elbo: Float32Array;
  elboLogLikelihood: Float32Array;
  elboKl: (Float32Array | null)[];
  elboSamples?: { data: Float32Array; shape: number[] };
  aboveK: Record<string, Float32Array>;
  aboveKLogLikelihood: Record<string, Float32Array>;
  aboveKKl: Record<string, (Float32Array | null)[]>;
  belowL: Record<string, Float32Array>;
}

/** Raw training-step result. */
export interface NativeTrainResult {
  loss: Float32Array;
  elbo: Float32Array;
  logLikelihood: Float32Array;
  kl: (Float32Array | null)[];
  lossMean: number;
  elboMean: number;
  skipped: boolean;
  initialised: boolean;
  grads?: Record<string, { data: Float32Array; shape: number[] }>;
}

/** Adam state of one parameter. */
export interface NativeAdamState {
  step: number;
  expAvg: { data: Float32Array; shape: number[] };
  expAvgSq: { data: Float32Array; shape: number[] };
}

/** The native model object (internal; wrapped by HVAE). */
export interface NativeModel {
  info(): { parameters: { name: string; shape: number[] }[]; numParameters: number; device: string; initialized: boolean };
  getState(): Record<string, { data: Float32Array; shape: number[] }>;
  setState(state: Record<string, NativeTensor>): void;
  score(images: NativeTensor, options: object): Promise<NativeScoreResult>;
  scoreSync(images: NativeTensor, options: object): NativeScoreResult;
  trainStep(images: NativeTensor, options: object): Promise<NativeTrainResult>;
  trainStepSync(images: NativeTensor, options: object): NativeTrainResult;
  generate(options: object): Promise<{ data: Float32Array; shape: number[] }>;
  generateSync(options: object): { data: Float32Array; shape: number[] };
  initialize(images: NativeTensor, options?: object): Promise<void>;
  initializeSync(images: NativeTensor, options?: object): void;
  getOptimizerState(): Record<string, NativeAdamState>;
  setOptimizerState(state: Record<string, NativeAdamState>): void;
  getRngState(): Uint8Array;
  setRngState(state: Uint8Array): void;
  seed(seed: number): void;
  dispose(): void;
}

/** The addon's exports. */
export interface NativeAddon {
  NativeModel: new (config: object, options: object) => NativeModel;
  versions(): NativeVersions;
  setNumThreads(n: number): number;
  getNumThreads(): number;
  setConvTranspose(mode: 'native' | 'subpixel' | 'auto'): void;
  setCudnn(options: { benchmark?: boolean; allowTF32?: boolean }): void;
  setCpuFastPaths(options: { channelsLast?: boolean; linearAsConv?: boolean }): void;
  setCpuCache(options: { maxBytes?: number; empty?: boolean }): void;
  cpuCache(): CpuCacheStats;
  _throw(kind: string): Promise<void>;
  _spin(ms: number): Promise<void>;
  /** Test hook: run CPU jobs on one dedicated thread, as CUDA jobs always are; returns the previous setting. */
  _setCpuDedicatedThread(on: boolean): boolean;
  /** Test hook: Adam's update as multi-tensor ops ('foreach', the default) or a per-tensor loop; returns the previous one. */
  _setAdamImpl(impl?: 'foreach' | 'per-tensor'): 'foreach' | 'per-tensor';
}

/** The package root (the directory holding package.json). */
export const PACKAGE_ROOT = path.resolve(__dirname, '..');

/** Description of a prebuilt addon, read from the JSON file next to it. */
export interface PrebuildInfo {
  file: string;
  sourceHash?: string;
  libtorch?: string;
  flavour?: string;
  libtorchPath?: string;
  /** Built against a LibTorch outside the system directories (a PyTorch wheel, a LibTorch archive): it can load
   * against the same LibTorch version installed anywhere, see {@link findTorch}. */
  relocatable?: boolean;
}

/**
 * Lists prebuilds for this platform with their recorded LibTorch (from the JSON file beside each, else from the
 * name). With `only`, describes that one .node file.
 */
export function listPrebuilds(root = PACKAGE_ROOT, only?: string): PrebuildInfo[] {
  const dir = only ? path.dirname(only) : path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  if (!fs.existsSync(dir)) return [];
  return (only ? [path.basename(only)] : fs.readdirSync(dir))
    .filter((f) => f.endsWith('.node'))
    .map((f) => {
      const file = path.join(dir, f);
      let meta: Partial<PrebuildInfo> = {};
      try {
        meta = JSON.parse(fs.readFileSync(`${file}.json`, 'utf8')) as Partial<PrebuildInfo>;
      } catch { /* no sidecar: tags from the name only */ }
      const m = /libtorch-([0-9.]+[^.]*)\.(cpu|cuda)/.exec(f);
      return {
        file, libtorch: meta.libtorch ?? m?.[1], flavour: meta.flavour ?? m?.[2], libtorchPath: meta.libtorchPath,
        sourceHash: meta.sourceHash, relocatable: meta.relocatable === true,
      };
    });
}

/** What LibTorch installations are visible on this machine (for the loader's choice and its error message). */
export function detectLibtorch(): { path: string; version?: string }[] {
  const found: { path: string; version?: string }[] = [];
  const dirs = new Set<string>();
  if (process.env.LIBTORCH) dirs.add(path.join(process.env.LIBTORCH, 'lib'));
  for (const d of ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/local/lib', '/opt/libtorch/lib', '/usr/local/libtorch/lib']) dirs.add(d);
  for (const d of dirs) {
    try {
      const files = fs.readdirSync(d).filter((f) => f.startsWith('libtorch.so') || f.startsWith('libtorch_cpu.so'));
      if (files.length === 0) continue;
      const ver = files.map((f) => /\.so\.([0-9.]+)$/.exec(f)?.[1]).filter(Boolean).sort((a, b) => b!.length - a!.length)[0];
      found.push({ path: d, version: ver });
    } catch { /* not there */ }
  }
  return found;
}

function describeFound(): string {
  const f = findTorch();
  return f.length ? f.map((t) => `${t.version} (${t.flavour}) in ${t.root} [${t.source}]`).join(', ') : 'none';
}

/** A LibTorch that a relocatable prebuild may load against: a PyTorch package or a LibTorch archive. */
export interface FoundTorch {
  /** The directory holding `lib/` (a wheel's `torch/`, or an archive's `libtorch/`). */
  root: string;
  /** Its `lib/`, with libtorch.so and libc10.so. */
  lib: string;
  /** The full version, e.g. `2.14.1+cu130` (from `version.py` or `build-version`). */
  version: string;
  /** `cuda` when `lib/` has libtorch_cuda.so. */
  flavour: 'cpu' | 'cuda';
  /** Where it was found: `LIBTORCH`, or the Python interpreter that has it. */
  source: string;
}

/** Describes the LibTorch under `root` (a wheel's `torch/` folder or an archive's `libtorch/`), if it is one. */
export function describeTorchDir(root: string, source: string): FoundTorch | undefined {
  const lib = path.join(root, 'lib');
  if (!fs.existsSync(path.join(lib, 'libtorch.so')) || !fs.existsSync(path.join(lib, 'libc10.so'))) return undefined;
  let version: string | undefined;
  try {
    version = /__version__\s*(?::\s*str\s*)?=\s*['"]([^'"]+)['"]/.exec(fs.readFileSync(path.join(root, 'version.py'), 'utf8'))?.[1];
  } catch { /* not a wheel */ }
  if (!version) {
    try { version = fs.readFileSync(path.join(root, 'build-version'), 'utf8').trim() || undefined; } catch { /* not an archive */ }
  }
  if (!version) return undefined;
  const flavour = fs.existsSync(path.join(lib, 'libtorch_cuda.so')) ? 'cuda' : 'cpu';
  return { root, lib, version, flavour, source };
}

let foundTorch: FoundTorch[] | undefined;

/**
 * The LibTorch installs a relocatable prebuild can use: `LIBTORCH`, then the `torch` package of `HVAE_PYTHON`,
 * `python3` and `python` (located without importing it, so this takes milliseconds, not seconds). Cached.
 */
export function findTorch(): FoundTorch[] {
  if (foundTorch) return foundTorch;
  const out: FoundTorch[] = [];
  if (process.env.LIBTORCH) {
    const t = describeTorchDir(path.resolve(process.env.LIBTORCH), 'LIBTORCH');
    if (t) out.push(t);
  }
  const pythons = [process.env.HVAE_PYTHON, 'python3', 'python'].filter((p): p is string => !!p);
  const seen = new Set<string>();
  const probe = 'import importlib.util as u; s = u.find_spec("torch"); print(s.submodule_search_locations[0] if s and s.submodule_search_locations else "")';
  for (const py of pythons) {
    const r = spawnSync(py, ['-c', probe], { encoding: 'utf8', timeout: 10000 });
    const dir = r.status === 0 ? r.stdout.trim() : '';
    if (!dir || seen.has(dir)) continue;
    seen.add(dir);
    const t = describeTorchDir(dir, py);
    if (t) out.push(t);
  }
  foundTorch = out;
  return out;
}

/** glibc's RTLD_NODELETE (not in `os.constants.dlopen`): keeps a library loaded after Node's dlclose. */
const RTLD_NODELETE = 0x1000;

/**
 * Loads a LibTorch's libraries by absolute path and keeps them loaded, so that an addon linked against the same
 * version resolves its `libtorch*.so` / `libc10*.so` dependencies to them. Node loads each and, finding no addon in
 * it, closes it again ("did not self-register"); RTLD_NODELETE makes that close a no-op. Throws dlopen's own error
 * (a missing CUDA library of the wheel, say).
 */
export function preloadTorch(t: FoundTorch): void {
  const names = ['libc10.so', 'libtorch_cpu.so', ...(t.flavour === 'cuda' ? ['libc10_cuda.so', 'libtorch_cuda.so'] : []), 'libtorch.so'];
  for (const name of names) {
    const file = path.join(t.lib, name);
    if (!fs.existsSync(file)) continue;
    try {
      process.dlopen({ exports: {} }, file, os.constants.dlopen.RTLD_NOW | RTLD_NODELETE);
    } catch (e) {
      if (!/did not self-register/.test((e as Error).message)) throw e;
    }
  }
}

/** The LibTorch a relocatable prebuild can load against here: same version (ignoring a `+cu130` tag) and flavour. */
export function torchFor(p: PrebuildInfo, found: FoundTorch[] = findTorch()): FoundTorch | undefined {
  if (!p.relocatable || !p.libtorch) return undefined;
  return found.find((t) => t.version.split('+')[0] === p.libtorch && t.flavour === p.flavour);
}

/** Maps a dlopen/require failure message to its likely cause and fix (exported for tests). */
export function diagnoseLoadFailure(message: string): { cause: string; fix: string } {
  const needs = /needs LibTorch ([0-9][^ ]*) \((cpu|cuda)\)/.exec(message);
  if (needs) {
    return {
      cause: `no LibTorch that a prebuilt addon can use was found (a relocatable prebuild needs LibTorch ${needs[1]}, ${needs[2]})`,
      fix: `install that PyTorch (\`pip install torch==${needs[1]}\`${needs[2] === 'cpu' ? ' from the CPU index' : ''}) or point LIBTORCH at that LibTorch, or build against the LibTorch you have: \`npm rebuild hvae-native\` (see README "Troubleshooting")`,
    };
  }
  if (/libtorch[_a-z]*\.so|libc10[_a-z]*\.so/.test(message) && /cannot open shared object/.test(message)) {
    return {
      cause: 'the LibTorch shared libraries (libtorch*.so / libc10*.so) the addon was linked against are missing',
      fix: 'install LibTorch (sudo apt-get install libtorch-dev on Debian/Ubuntu, or pip install torch) and run `npm rebuild hvae-native`',
    };
  }
  if (/libcud|libnv|torch_cuda/.test(message)) {
    return {
      cause: 'the addon was built against a CUDA LibTorch whose CUDA libraries are not present (wrong flavour)',
      fix: 'rebuild against the LibTorch on this machine: `npm rebuild hvae-native` (LIBTORCH=/path/to/libtorch to choose one)',
    };
  }
  if (/undefined symbol: .*(cxx11|St7__cxx11)/.test(message)) {
    return {
      cause: 'C++ ABI mismatch: the addon and LibTorch disagree on _GLIBCXX_USE_CXX11_ABI',
      fix: 'rebuild from source so LibTorch\'s own TORCH_CXX_FLAGS are used: `npm rebuild hvae-native`',
    };
  }
  if (/undefined symbol/.test(message)) {
    return {
      cause: 'the LibTorch found at run time is a different version from the one the addon was built against',
      fix: 'rebuild against the installed LibTorch: `npm rebuild hvae-native`',
    };
  }
  if (/Cannot find module|ENOENT|: not found$/.test(message)) {
    return {
      cause: 'the addon has not been built',
      fix: 'build it: `npm run build:native` (needs cmake, a C++17 compiler and LibTorch; see README "Troubleshooting")',
    };
  }
  return { cause: 'the addon could not be loaded', fix: 'rebuild it with `npm rebuild hvae-native` and see README "Troubleshooting"' };
}

let cached: NativeAddon | undefined;
let loadedFrom: string | undefined;
let loadedTorch: FoundTorch | undefined;

/** The LibTorch that was loaded ahead of a relocatable prebuild, if one was. */
export function preloadedTorch(): FoundTorch | undefined {
  return loadedTorch;
}

/** Where the loaded addon came from (after a successful load). */
export function nativePath(): string | undefined {
  return loadedFrom;
}

/**
 * The order in which the loader tries addon files (exported for tests):
 *  0. the local build, when it was stamped with these sources (`localFresh`, see scripts/stamp-build.js): compiled
 *     here, on purpose, against the LibTorch the build found, so it goes ahead of every prebuild;
 *  1. with an NVIDIA driver present (`gpu`), CUDA relocatable prebuilds whose PyTorch is installed (a machine with
 *     Debian's CPU libtorch-dev and a CUDA PyTorch wants the GPU);
 *  2. prebuilds for a system LibTorch that is present, built from these sources (`sourceHash`);
 *  3. the local build;
 *  4. the other fresh relocatable prebuilds (only these need a look for PyTorch, which starts a Python);
 *  5. everything else, for the error message.
 */
export function candidateOrder(o: {
  prebuilds: PrebuildInfo[]; present: Set<string>; sourceHash?: string; gpu: boolean; findTorch: () => FoundTorch[]; localBuild: string;
  localFresh?: boolean;
}): { file: string; prebuild?: PrebuildInfo }[] {
  if (o.localFresh) return [{ file: o.localBuild }, ...candidateOrder({ ...o, localFresh: false }).filter((c) => c.file !== o.localBuild)];
  const fresh = (p: PrebuildInfo): boolean => !o.sourceHash || !p.sourceHash || p.sourceHash === o.sourceHash;
  const matching = o.prebuilds.filter((p) => !p.relocatable && p.libtorchPath && o.present.has(p.libtorchPath) && fresh(p));
  const relocatable = o.prebuilds.filter((p) => p.relocatable && fresh(p));
  const cudaFirst = o.gpu ? relocatable.filter((p) => p.flavour === 'cuda' && torchFor(p, o.findTorch()) !== undefined) : [];
  const rest = o.prebuilds.filter((p) => !matching.includes(p) && !relocatable.includes(p));
  return [
    ...cudaFirst.map((p) => ({ file: p.file, prebuild: p })),
    ...matching.map((p) => ({ file: p.file, prebuild: p })),
    { file: o.localBuild },
    ...relocatable.filter((p) => !cudaFirst.includes(p)).map((p) => ({ file: p.file, prebuild: p })),
    ...rest.map((p) => ({ file: p.file, prebuild: p })),
  ];
}

/** Loads (once) and returns the native addon, or throws ERR_HVAE_LOAD with a full explanation. */
export function loadNative(): NativeAddon {
  if (cached) return cached;
  // Each candidate: a .node file and, for a prebuild, its description (a relocatable one needs its LibTorch first).
  const candidates: { file: string; prebuild?: PrebuildInfo }[] = [];
  const prebuilds = listPrebuilds();
  const gpu = fs.existsSync('/proc/driver/nvidia/version');
  if (process.env.HVAE_NATIVE_PATH) {
    const file = path.resolve(process.env.HVAE_NATIVE_PATH);
    candidates.push({ file, prebuild: listPrebuilds(undefined, file)[0] });
  } else {
    const present = new Set(detectLibtorch().map((l) => l.path));
    // A prebuild is preferred when its LibTorch is present and it was built from these sources (a local build
    // of newer sources wins over a stale prebuild).
    let current: string | undefined;
    let localFresh = false;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      current = (require(path.join(PACKAGE_ROOT, 'scripts', 'source-hash.js')) as { sourceHash: (r: string) => string }).sourceHash(PACKAGE_ROOT);
      // A local build stamped with these sources goes first (scripts/stamp-build.js); without a stamp it keeps its
      // place after the matching prebuilds.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      localFresh = (require(path.join(PACKAGE_ROOT, 'scripts', 'stamp-build.js')) as { stampIsCurrent: (r: string) => boolean }).stampIsCurrent(PACKAGE_ROOT);
    } catch { /* sources not shipped: any matching prebuild */ }
    const order = candidateOrder({
      prebuilds, present, sourceHash: current, gpu, findTorch, localBuild: path.join(PACKAGE_ROOT, 'build', 'Release', 'hvae_native.node'), localFresh,
    });
    candidates.push(...order);
  }
  const tried: string[] = [];
  for (const { file, prebuild } of candidates) {
    if (!fs.existsSync(file)) {
      tried.push(`${file}: not found`);
      continue;
    }
    let t: FoundTorch | undefined;
    try {
      if (prebuild?.relocatable) {
        t = torchFor(prebuild);
        if (!t) {
          tried.push(`${file}: needs LibTorch ${prebuild.libtorch ?? '?'} (${prebuild.flavour ?? '?'}) from a PyTorch install or LIBTORCH; found ${describeFound()}`);
          continue;
        }
        preloadTorch(t);
      }
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      cached = require(file) as NativeAddon;
      loadedFrom = file;
      loadedTorch = t;
      return cached;
    } catch (e) {
      tried.push(`${file}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  const libs = detectLibtorch();
  // The failure to explain: the first real one (not a missing file), a CUDA prebuild's where an NVIDIA driver is
  // present (a GPU user wants the CUDA fix, not the CPU prebuild's).
  const real = tried.filter((t) => !t.endsWith('not found'));
  const lastFailure = (gpu ? real.find((t) => /\.cuda\.node: /.test(t)) : undefined) ?? real[0] ?? tried[tried.length - 1] ?? '';
  const { cause, fix } = diagnoseLoadFailure(lastFailure);
  const message = [
    'hvae-native: the native addon could not be loaded.',
    'Tried:',
    ...tried.map((t) => `  - ${t}`),
    'Found:',
    `  - platform ${process.platform}-${process.arch}, Node ${process.version} (N-API ${process.versions.napi})`,
    libs.length
      ? `  - LibTorch: ${libs.map((l) => `${l.path}${l.version ? ` (libtorch.so.${l.version})` : ''}`).join(', ')}`
      : '  - LibTorch: none found (LIBTORCH unset; nothing in /usr/lib/*-linux-gnu, /usr/local/lib, /opt/libtorch)',
    ...(prebuilds.some((p) => p.relocatable) ? [`  - PyTorch / LIBTORCH for relocatable prebuilds: ${describeFound()}`] : []),
    `  - CUDA: ${fs.existsSync('/proc/driver/nvidia/version') ? 'NVIDIA driver present' : 'no NVIDIA driver'}`,
    `Likely cause: ${cause}.`,
    `Fix: ${fix}.`,
  ].join('\n');
  throw new HVAEError('ERR_HVAE_LOAD', message);
}

/** What the CPU memory cache holds (see {@link cpuCache} in the public API). */
export interface CpuCacheStats {
  /** Whether the cache serves LibTorch's CPU tensors (false when `HVAE_CPU_CACHE_MB=0` was set at start-up). */
  installed: boolean;
  /** The most bytes kept for reuse. */
  maxBytes: number;
  /** Bytes kept for reuse now. */
  cachedBytes: number;
  /** Blocks kept for reuse now. */
  cachedBlocks: number;
  /** Bytes in large blocks (1 MiB and more) that tensors hold now. */
  liveBytes: number;
  /** The most bytes in large blocks held at once so far. */
  peakLiveBytes: number;
  /** Large requests served from the cache. */
  hits: number;
  /** Large requests that went to the C library. */
  misses: number;
}
