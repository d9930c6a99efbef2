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

/** MiB of device memory held by this process (nvidia-smi), or null where it cannot be read. */
function deviceMB() {
  if (device === 'cpu') return null;
  const r = spawnSync('nvidia-smi', ['--query-compute-apps=pid,used_memory', '--format=csv,noheader,nounits'], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  for (const line of r.stdout.trim().split('\n')) {
    const [pid, mb] = line.split(',').map((x) => Number(x.trim()));
    if (pid === process.pid) return mb;
  }
  return null;
}

(async () => {
  const model = hv.HVAE.create({ preset: 'fashionmnist', channels: opt('channels', 4), seed: 1, device });
  const ds = hv.proceduralDataset({ name: 'synthetic', length: N, shape: [1, 28, 28], generate: (i, out) => { for (let j = 0; j < out.length; j++) out[j] = (i * 31 + j * 7) & 255; } });
  await model.initialize((await ds.read(Array.from({ length: 64 }, (_, i) => i))).images);
  const t0 = Date.now();
  const samples = [];
  let done = 0;
  let nextMark = 0;
  let checksum = 0;
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
  const after = samples.filter((s) => s.images >= N / 10);
  const growth = after[after.length - 1].rssMB - after[0].rssMB;
  const peak = Math.max(...samples.map((s) => s.rssMB));
  const devSamples = after.filter((s) => s.deviceMB !== undefined);
  const deviceGrowth = devSamples.length > 1 ? devSamples[devSamples.length - 1].deviceMB - devSamples[0].deviceMB : null;
  const res = { images: done, device, ...(devSamples.length ? { peakDeviceMB: Math.max(...devSamples.map((s) => s.deviceMB)), deviceGrowthAfter10PercentMB: deviceGrowth } : {}), seconds: (Date.now() - t0) / 1000, peakRssMB: peak, rssGrowthAfter10PercentMB: growth, maxRssMB: Number(/VmHWM:\s+(\d+) kB/.exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'))[1]) / 1024, checksumFinite: Number.isFinite(checksum), samples };
  console.log(JSON.stringify(res));
  model.dispose();
  process.exitCode = growth < 50 && (deviceGrowth === null || deviceGrowth < 50) ? 0 : 1;
})().catch((e) => { console.error(e); process.exit(1); });
