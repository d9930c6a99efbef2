'use strict';
// Benchmark (c), our side: MNIST test from its IDX .gz file, read in batches with read-ahead, scored (k = 0, 1, 2,
// S = 1), one JSON line per image written to a file. Like the reference side (bench_extra.py --task e2e): the model
// is loaded before the clock starts, one untimed warm-up pass, then REPEATS timed passes in this one process, each
// opening, reading and decoding the file again. Prints {runs (seconds each), images, loadSeconds, maxRssMB}.
//   node bench/e2e.js ours WEIGHTS N OUT DEVICE THREADS BATCH REPEATS
const fs = require('node:fs');
const path = require('node:path');
const hv = require('..');

(async () => {
  const [, , , weights, nStr, out, device, threads, batchStr, repeatsStr] = process.argv;
  hv.setNumThreads(Number(threads));
  const shared = process.env.HVAE_SHARED || path.resolve(__dirname, '..', '..', 'shared');
  const file = path.join(shared, 'data', 'mnist', 't10k-images-idx3-ubyte.gz');
  const batchSize = Number(batchStr);
  const tl = process.hrtime.bigint();
  const model = hv.HVAE.load(weights, { config: 'fashionmnist', device });
  const loadSeconds = Number(process.hrtime.bigint() - tl) / 1e9;
  let n = 0;
  const once = async () => {
    const t0 = process.hrtime.bigint();
    const ds = await hv.openIdx(file);
    n = Math.min(Number(nStr), ds.length);
    const view = n < ds.length ? hv.subset(ds, Array.from({ length: n }, (_, i) => i)) : ds;
    const fd = fs.openSync(out, 'w');
    for await (const b of hv.batches(view, { batchSize, readAhead: 2 })) {
      const s = await model.scores(b.images, { k: [0, 1, 2] });
      let text = '';
      for (let i = 0; i < s.size; i++) {
        text += `${JSON.stringify({ index: b.indices[i], elbo: s.elbo[i], 'L>1': s.boundAboveK[1][i], 'L>2': s.boundAboveK[2][i], 'LLR>1': s.llr[1][i], 'LLR>2': s.llr[2][i] })}\n`;
      }
      fs.writeSync(fd, text);
    }
    fs.closeSync(fd);
    return Number(process.hrtime.bigint() - t0) / 1e9;
  };
  await once();  // warm-up
  const runs = [];
  for (let i = 0; i < Number(repeatsStr); i++) runs.push(await once());
  model.dispose();
  // Peak resident memory of this process (VmHWM; getrusage's maxrss would include the parent's, inherited at fork).
  const hwm = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  console.log(JSON.stringify({ runs, images: n, loadSeconds, maxRssMB: hwm ? Number(hwm[1]) / 1024 : null }));
})().catch((e) => { console.error(e); process.exit(1); });
