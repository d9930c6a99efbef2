/**
 * The addon loader and runtime facts: versions, devices, threads, and the one readable load error.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as hv from 'hvae-native';
import { ROOT, tmpDir } from './setup.js';

function nodeEval(code: string, env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['-e', code], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('10 loader and runtime facts', function () {
  it('versions reports the package, LibTorch and CUDA facts', function () {
    const v = hv.versions;
    assert.equal(v.package, JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version);
    assert.match(v.libtorch, /^\d+\.\d+\.\d+/);
    assert.ok(v.flavour === 'cpu' || v.flavour === 'cuda');
    assert.equal(typeof v.cuda, 'boolean');
    assert.equal(typeof v.cudaDeviceCount, 'number');
    assert.ok(fs.existsSync(v.addon), 'the loaded addon file exists');
  });

  it("require('hvae-native').versions works from a fresh process", function () {
    const r = nodeEval("console.log(JSON.stringify(require('hvae-native').versions))");
    assert.equal(r.status, 0, r.stderr);
    const v = JSON.parse(r.stdout) as hv.Versions;
    assert.match(v.libtorch, /^\d+\.\d+/);
  });

  it('ESM named imports work (import { HVAE, versions } from hvae-native)', function () {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e',
      "import { HVAE, versions, auroc } from 'hvae-native'; console.log(typeof HVAE, typeof auroc, versions.libtorch)"],
    { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^function function \d+\.\d+/);
  });

  it('devices() always lists the CPU; CUDA devices match versions.cudaDeviceCount', function () {
    const d = hv.devices();
    assert.deepEqual(d[0], { device: 'cpu', type: 'cpu' });
    assert.equal(d.length, 1 + hv.versions.cudaDeviceCount);
  });

  it('setNumThreads sets and reports the intra-op thread count; <= 0 means all cores', function () {
    const before = hv.getNumThreads();
    try {
      assert.equal(hv.setNumThreads(1), 1);
      assert.equal(hv.getNumThreads(), 1);
      assert.ok(hv.setNumThreads(0) >= 1);
      assert.throws(() => hv.setNumThreads(Number.NaN), { code: 'ERR_HVAE_OPTION' });
    } finally {
      hv.setNumThreads(before);
    }
  });

  it('HVAE_NUM_THREADS sets the initial thread count (default: all cores, not LibTorch\'s 1)', function () {
    const r = nodeEval("console.log(require('hvae-native').getNumThreads())", { HVAE_NUM_THREADS: '1' });
    assert.equal(r.stdout.trim(), '1');
    const all = nodeEval("console.log(require('hvae-native').getNumThreads(), require('os').cpus().length)", { HVAE_NUM_THREADS: '', OMP_NUM_THREADS: '' });
    const [n, cores] = all.stdout.trim().split(' ').map(Number);
    assert.equal(n, cores);
  });

  it('a missing addon gives one ERR_HVAE_LOAD error: what was tried, what was found, the cause and the fix', function () {
    const r = nodeEval(
      "try { require('hvae-native').versions } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }",
      { HVAE_NATIVE_PATH: path.join(tmpDir(), 'nope.node') });
    const e = JSON.parse(r.stdout) as { code: string; message: string };
    assert.equal(e.code, 'ERR_HVAE_LOAD');
    assert.match(e.message, /Tried:\n  - .*nope\.node: not found/);
    assert.match(e.message, /Found:\n  - platform linux-/);
    assert.match(e.message, /LibTorch: /);
    assert.match(e.message, /Likely cause: the addon has not been built/);
    assert.match(e.message, /Fix: build it: `npm run build:native`/);
  });

  it('a corrupt addon file is reported, not a crash', function () {
    const bad = path.join(tmpDir(), 'hvae_native.node');
    fs.writeFileSync(bad, 'this is not an ELF file');
    const r = nodeEval(
      "try { require('hvae-native').HVAE.create() } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }",
      { HVAE_NATIVE_PATH: bad });
    const e = JSON.parse(r.stdout) as { code: string; message: string };
    assert.equal(e.code, 'ERR_HVAE_LOAD');
    assert.match(e.message, /hvae_native\.node: .*(invalid ELF|too short)/);
  });

  it('load failures are diagnosed: missing LibTorch, C++ ABI mismatch, wrong flavour, version mismatch', function () {
    const { diagnoseLoadFailure } = require('../lib/native.js') as typeof import('../lib/native.js');
    assert.match(diagnoseLoadFailure('libtorch_cpu.so: cannot open shared object file: No such file or directory').cause, /LibTorch shared libraries .* are missing/);
    assert.match(diagnoseLoadFailure('libc10_cuda.so: cannot open shared object file').cause, /CUDA LibTorch|LibTorch shared/);
    assert.match(diagnoseLoadFailure('libcudart.so.12: cannot open shared object file').cause, /wrong flavour/);
    assert.match(diagnoseLoadFailure('undefined symbol: _ZN3c105ErrorC2ENS_14SourceLocationENSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE').cause, /C\+\+ ABI mismatch/);
    assert.match(diagnoseLoadFailure('undefined symbol: _ZN2at4_ops5zeros4callEv').cause, /different version/);
  });

  it('prebuilds are described by their LibTorch version and flavour', function () {
    const { listPrebuilds } = require('../lib/native.js') as typeof import('../lib/native.js');
    const root = tmpDir();
    const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'hvae-native.napi.libtorch-2.5.1.cuda.node'), '');
    fs.writeFileSync(path.join(dir, 'hvae-native.napi.libtorch-1.13.0.cpu.node'), '');
    fs.writeFileSync(path.join(dir, 'hvae-native.napi.libtorch-1.13.0.cpu.node.json'), JSON.stringify({ libtorchPath: '/usr/lib/x86_64-linux-gnu' }));
    const p = listPrebuilds(root).sort((a, b) => a.file.localeCompare(b.file));
    assert.equal(p.length, 2);
    assert.deepEqual([p[0].libtorch, p[0].flavour, p[0].libtorchPath], ['1.13.0', 'cpu', '/usr/lib/x86_64-linux-gnu']);
    assert.deepEqual([p[1].libtorch, p[1].flavour], ['2.5.1', 'cuda']);
  });

  it('a PyTorch wheel or LibTorch archive is recognised by its version file and CUDA library', function () {
    const { describeTorchDir } = require('../lib/native.js') as typeof import('../lib/native.js');
    const make = (files: Record<string, string>): string => {
      const dir = tmpDir();
      for (const [f, text] of Object.entries(files)) {
        fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
        fs.writeFileSync(path.join(dir, f), text);
      }
      return dir;
    };
    const libs = { 'lib/libtorch.so': '', 'lib/libc10.so': '' };
    const wheel = make({ ...libs, 'lib/libtorch_cuda.so': '', 'version.py': "from typing import Optional\n__version__ = '2.14.1+cu130'\ncuda: Optional[str] = '13.0'\n" });
    const t = describeTorchDir(wheel, 'python3');
    assert.deepEqual([t?.version, t?.flavour, t?.lib], ['2.14.1+cu130', 'cuda', path.join(wheel, 'lib')]);
    const archive = describeTorchDir(make({ ...libs, 'build-version': '2.5.1+cpu\n' }), 'LIBTORCH');
    assert.deepEqual([archive?.version, archive?.flavour], ['2.5.1+cpu', 'cpu']);
    assert.equal(describeTorchDir(make({ 'lib/libtorch.so': '', 'version.py': "__version__ = '2.5.1'" }), 'x'), undefined, 'no libc10.so');
    assert.equal(describeTorchDir(make(libs), 'x'), undefined, 'no version file');
  });

  it('a relocatable prebuild is matched to a LibTorch of the same version (any +tag) and flavour', function () {
    const { torchFor } = require('../lib/native.js') as typeof import('../lib/native.js');
    const found = (version: string, flavour: 'cpu' | 'cuda') => ({ root: '/t', lib: '/t/lib', version, flavour, source: 'python3' });
    const cuda = { file: 'x.node', relocatable: true, libtorch: '2.14.1', flavour: 'cuda' };
    assert.equal(torchFor(cuda, [found('2.14.1+cu130', 'cuda')])?.version, '2.14.1+cu130');
    assert.equal(torchFor(cuda, [found('2.14.0+cu130', 'cuda'), found('2.14.1+cpu', 'cpu')]), undefined);
    assert.equal(torchFor({ ...cuda, relocatable: false }, [found('2.14.1', 'cuda')]), undefined, 'a system prebuild is matched by path, not here');
  });

  it('a relocatable prebuild without its LibTorch gives ERR_HVAE_LOAD naming the version to install', function () {
    const dir = tmpDir();
    const file = path.join(dir, 'hvae-native.napi.libtorch-2.99.0.cpu.node');
    fs.writeFileSync(file, '');
    fs.writeFileSync(`${file}.json`, JSON.stringify({ libtorch: '2.99.0', flavour: 'cpu', relocatable: true }));
    const r = nodeEval(
      "try { require('hvae-native').versions } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }",
      { HVAE_NATIVE_PATH: file, HVAE_PYTHON: '/nonexistent/python', LIBTORCH: '' });
    const e = JSON.parse(r.stdout) as { code: string; message: string };
    assert.equal(e.code, 'ERR_HVAE_LOAD');
    assert.match(e.message, /libtorch-2\.99\.0\.cpu\.node: needs LibTorch 2\.99\.0 \(cpu\) from a PyTorch install or LIBTORCH; found /);
    assert.match(e.message, /Likely cause: no LibTorch that a prebuilt addon can use was found/);
    assert.match(e.message, /pip install torch==2\.99\.0/);
  });

  it('relocatable prebuilds keep no library search path (RUNPATH), and removing one leaves a loadable addon', function () {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const elf = require(path.join(ROOT, 'scripts', 'elf-runpath.js')) as {
      readRunpaths: (f: string) => { tag: string; value: string }[]; removeRunpaths: (f: string) => string[];
    };
    const { listPrebuilds } = require('../lib/native.js') as typeof import('../lib/native.js');
    for (const p of listPrebuilds().filter((q) => q.relocatable)) assert.deepEqual(elf.readRunpaths(p.file), [], p.file);
    // On a copy of the addon loaded now (built with a RUNPATH unless it is such a prebuild).
    const loaded = hv.versions.addon;
    const copy = path.join(tmpDir(), 'addon-copy.node');
    fs.copyFileSync(loaded, copy);
    const before = elf.readRunpaths(copy);
    assert.deepEqual(elf.removeRunpaths(copy), before.map((r) => r.value));
    assert.deepEqual(elf.readRunpaths(copy), []);
    assert.throws(() => elf.readRunpaths(path.join(ROOT, 'package.json')), /not an ELF file/);
    const readelf = spawnSync('readelf', ['-d', copy], { encoding: 'utf8' });
    if (readelf.status === 0) {
      // Every other entry of the dynamic array survives, in order (readelf absent: the load below still checks).
      const entries = (f: string): string[] => spawnSync('readelf', ['-d', f], { encoding: 'utf8' }).stdout.split('\n')
        .filter((l) => /^ *0x[0-9a-f]+ \(/.test(l) && !/\((RUNPATH|RPATH|NULL)\)/.test(l)).map((l) => l.trim());
      assert.deepEqual(entries(copy), entries(loaded));
      assert.doesNotMatch(readelf.stdout, /RUNPATH|RPATH/);
    }
    // A LibTorch on the system search path needs no RUNPATH: the stripped copy loads from a fresh process.
    if (hv.versions.libtorchPath.startsWith('/usr/lib')) {
      const r = nodeEval("console.log(require('hvae-native').versions.libtorch)", { HVAE_NATIVE_PATH: copy });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), hv.versions.libtorch);
    }
  });

  it("npm's install hook reads HVAE_FORCE_BUILD=0 as off: it picks an addon that loads instead of building", function () {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'install.js'), '--check'],
      { cwd: ROOT, env: { ...process.env, HVAE_FORCE_BUILD: '0', HVAE_SKIP_BUILD: 'false' }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /using the prebuilt addon|the addon in build\/Release loads/);
  });

  it('candidate order: system prebuild, local build, relocatable ones; a CUDA one first where a GPU driver is', function () {
    const { candidateOrder } = require('../lib/native.js') as typeof import('../lib/native.js');
    const sys = { file: 'sys-1.13.cpu.node', libtorch: '1.13.0', flavour: 'cpu', libtorchPath: '/usr/lib/x86_64-linux-gnu', sourceHash: 'h' };
    const cpu2 = { file: 'rel-2.13.0.cpu.node', libtorch: '2.13.0', flavour: 'cpu', relocatable: true, sourceHash: 'h' };
    const cuda2 = { file: 'rel-2.14.1.cuda.node', libtorch: '2.14.1', flavour: 'cuda', relocatable: true, sourceHash: 'h' };
    const stale = { file: 'rel-2.14.1.cuda.old.node', libtorch: '2.14.1', flavour: 'cuda', relocatable: true, sourceHash: 'old' };
    const wheel = [{ root: '/t', lib: '/t/lib', version: '2.14.1+cu130', flavour: 'cuda' as const, source: 'python3' }];
    let looked = 0;
    const base = { prebuilds: [sys, cpu2, cuda2, stale], present: new Set(['/usr/lib/x86_64-linux-gnu']), sourceHash: 'h', localBuild: 'build.node' };
    const files = (gpu: boolean) => candidateOrder({ ...base, gpu, findTorch: () => { looked++; return wheel; } }).map((c) => c.file);
    assert.deepEqual(files(false), ['sys-1.13.cpu.node', 'build.node', 'rel-2.13.0.cpu.node', 'rel-2.14.1.cuda.node', 'rel-2.14.1.cuda.old.node']);
    assert.equal(looked, 0, 'no Python is started to order the candidates without a GPU');
    assert.deepEqual(files(true), ['rel-2.14.1.cuda.node', 'sys-1.13.cpu.node', 'build.node', 'rel-2.13.0.cpu.node', 'rel-2.14.1.cuda.old.node']);
    // A GPU, but the CUDA prebuild's PyTorch is not installed: the usual order.
    assert.deepEqual(candidateOrder({ ...base, gpu: true, findTorch: () => [] }).map((c) => c.file)[0], 'sys-1.13.cpu.node');
    // A local build stamped with these sources (npm rebuild, HVAE_FORCE_BUILD=1) goes first, once, with or without a GPU.
    for (const gpu of [false, true]) {
      const order = candidateOrder({ ...base, gpu, localFresh: true, findTorch: () => wheel }).map((c) => c.file);
      assert.deepEqual(order, ['build.node', ...files(gpu).filter((f) => f !== 'build.node')]);
    }
  });
});
