#!/usr/bin/env node
'use strict';
// Issue 8 item 4: streams N images (default 1,000,000) through the N-API boundary and the model, and checks that
// resident memory stays flat (no leak across the boundary, no growing caches). A small model (4 channels per
// block, same structure as the fashionmnist preset) keeps the run short; the boundary traffic per image is the same.
// On CUDA it also samples the device memory this process holds (nvidia-smi), which must stay flat too.
//   node bench/memory.js [--images 1000000] [--batch 1000] [--channels 4] [--device cpu|cuda]
const { spawnSync } = require('node:child_process');
const hv = require('..');

const args = process.argv.slice(2);
const opt = (n, d) => { const i = args.indexOf(`--${n}`); return i >= 0 ? Number(args[i + 1]) : d; };
const N = opt('images', 1_000_000);
const B = opt('batch', 1000);
const device = (() => { const i = args.indexOf('--device'); return i >= 0 ? args[i + 1] : 'cpu'; })();

/**
 * MiB of device memory: what nvidia-smi lists for this process, else (a container often shows no per-process rows:
 * host PIDs, or none) the whole device's used memory, which on a lent machine is ours alone. null where neither can
 * be read. `deviceSource` says which.
 */
let deviceSource = null;
function deviceMB() {
  if (device === 'cpu') return null;
  const q = (what) => spawnSync('nvidia-smi', [what, '--format=csv,noheader,nounits'], { encoding: 'utf8' });
  const apps = q('--query-compute-apps=pid,used_memory');
  if (apps.status === 0) {
    for (const line of apps.stdout.trim().split('\n')) {
      const [pid, mb] = line.split(',').map((x) => Number(x.trim()));
      if (pid === process.pid && Number.isFinite(mb)) { deviceSource = 'process'; return mb; }
    }
  }
  const index = /^cuda:(\d+)$/.exec(device)?.[1] ?? '0';
  const gpu = spawnSync('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits', '-i', index], { encoding: 'utf8' });
  const mb = gpu.status === 0 ? Number(gpu.stdout.trim().split('\n')[0]) : NaN;
  if (Number.isFinite(mb)) { deviceSource = 'device'; return mb; }
  return null;
}

let samples = [];
let t0 = Date.now();
let done = 0;
let checksum = 0;
// A time box (timeout's SIGTERM; bench/gpu/run.sh) still gets the JSON of what was measured, marked partial.
function onTerm() {
  process.stderr.write('SIGTERM: reporting what was measured so far\n');
  report(true);
  process.exit(2);
}
process.on('SIGTERM', onTerm);

(async () => {
  const model = hv.HVAE.create({ preset: 'fashionmnist', channels: opt('channels', 4), seed: 1, device });
  const ds = hv.proceduralDataset({ name: 'synthetic', length: N, shape: [1, 28, 28], generate: (i, out) => { for (let j = 0; j < out.length; j++) out[j] = (i * 31 + j * 7) & 255; } });
  await model.initialize((await ds.read(Array.from({ length: 64 }, (_, i) => i))).images);
  t0 = Date.now();
  samples = [];
  let nextMark = 0;
  for await (const b of hv.batches(ds, { batchSize: B, readAhead: 2 })) {
    const s = await model.scores(b.images, { k: [0, 1, 2] });
    checksum += s.llr[1][0];
    done += s.size;
    if (done >= nextMark) {
      if (global.gc) global.gc();
      const rss = process.memoryUsage().rss / 2 ** 20;
      const dev = deviceMB();
      samples.push({ images: done, rssMB: Math.round(rss), ...(dev !== null ? { deviceMB: dev } : {}) });
      process.stderr.write(`${done} images, rss ${rss.toFixed(0)} MB${dev !== null ? `, device ${dev} MB` : ''}, ${(done / ((Date.now() - t0) / 1000)).toFixed(0)} images/s\n`);
      nextMark += N / 20;
    }
  }
  process.removeListener('SIGTERM', onTerm);
  report(false);
  model.dispose();
})().catch((e) => { console.error(e); process.exit(1); });

function report(partial) {
  const after = samples.filter((s) => s.images >= N / 10);
  if (after.length === 0) {
    console.log(JSON.stringify({ images: done, device, partial, samples }));
    process.exitCode = 1;
    return;
  }
  const growth = after[after.length - 1].rssMB - after[0].rssMB;
  const peak = Math.max(...samples.map((s) => s.rssMB));
  const devSamples = after.filter((s) => s.deviceMB !== undefined);
  const deviceGrowth = devSamples.length > 1 ? devSamples[devSamples.length - 1].deviceMB - devSamples[0].deviceMB : null;
  const res = { images: done, device, partial, ...(devSamples.length ? { peakDeviceMB: Math.max(...devSamples.map((s) => s.deviceMB)), deviceGrowthAfter10PercentMB: deviceGrowth, deviceSource } : {}), seconds: (Date.now() - t0) / 1000, peakRssMB: peak, rssGrowthAfter10PercentMB: growth, maxRssMB: Number(/VmHWM:\s+(\d+) kB/.exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'))[1]) / 1024, checksumFinite: Number.isFinite(checksum), samples };
  console.log(JSON.stringify(res));
  // On CUDA the device memory must have been read: a flat line that was never measured is no evidence.
  const deviceOk = device === 'cpu' ? true : deviceGrowth !== null && deviceGrowth < 50;
  if (device !== 'cpu' && deviceGrowth === null) process.stderr.write('no device memory could be read (nvidia-smi): the device-side check fails\n');
  process.exitCode = growth < 50 && deviceOk ? 0 : 1;
}
