'use strict';
// Multiply-add FLOPs (2 per MAC) of the HVAE per image, from its config (ALGORITHM.md §2.9, §2.10). Used to say
// how close a measured throughput comes to the device's convolution rate. Counts convolutions and dense layers
// (the arithmetic that matters); elementwise work is left out. Transposed convolutions count their true MACs
// (Cin * Cout * k^2 per input position), whatever algorithm runs them.

function conv(cin, cout, k, hout, wout) { return 2 * cin * cout * k * k * hout * wout; }

/** Per-stage and total FLOPs of one full forward pass (encoder + decoder + likelihood) for one image. */
function modelFlops(cfg) {
  const [cx, H] = cfg.inputShape;
  const L = cfg.stages.length;
  let res = H;
  const geo = [];
  for (let i = 0; i < L; i++) {
    const s = cfg.stages[i];
    const inRes = res;
    const blockIn = [];
    for (const st of s.strides) { blockIn.push(res); res = Math.ceil(res / st); }
    const encIn = i === 0 ? cx : (cfg.stages[i - 1].latent.type === 'conv' ? cfg.stages[i - 1].latent.size : cfg.stages[i - 1].channels);
    geo.push({ inRes, outRes: res, blockIn, encIn });
  }
  const enc = [], dec = [];
  for (let i = 0; i < L; i++) {
    const s = cfg.stages[i], g = geo[i], C = s.channels, D = s.latent.size;
    let f = 0;
    s.kernels.forEach((k, j) => {
      const r = g.blockIn[j];
      f += conv(j === 0 ? g.encIn : C, C, k, r, r); // conv1
      const ro = Math.ceil(r / s.strides[j]);
      f += conv(C, C, k, ro, ro); // conv2 (strided)
    });
    // q(z_i): conv 3x3 C -> 2D, or dense C*H*W -> 2D; q_projection for dense latents below the top
    f += s.latent.type === 'conv' ? conv(C, 2 * D, 3, g.outRes, g.outRes) : 2 * C * g.outRes * g.outRes * 2 * D;
    if (s.latent.type === 'dense' && i < L - 1) f += 2 * D * C * g.outRes * g.outRes;
    enc.push(f);
    // decoder stage i
    let d = 0;
    if (s.latent.type === 'dense') d += 2 * D * C * g.outRes * g.outRes; // p_projection
    const n = s.kernels.length;
    let r = g.outRes;
    const decIn = s.latent.type === 'conv' ? D : C;
    for (let j = 0; j < n; j++) {
      const e = n - 1 - j, k = s.kernels[e], st = s.strides[e];
      d += conv(j === 0 ? decIn : C, C, k, r, r); // conv1 at the block's input resolution
      if (i < L - 1 && j > 0 && j < cfg.stages[i + 1].kernels.length) d += conv(cfg.stages[i + 1].channels, C, k, r / 2, r / 2); // aux ConvT
      d += st > 1 ? conv(C, C, k, r, r) : conv(C, C, k, r, r); // conv2 (a transposed conv counts per input position)
      r *= st;
    }
    if (i < L - 1) {
      // p(z_i | d_{i+1}) from the stage above's output
      const ca = cfg.stages[i + 1].channels;
      d += s.latent.type === 'conv' ? conv(ca, 2 * D, 3, g.outRes, g.outRes) : 2 * ca * g.outRes * g.outRes * 2 * D;
    }
    dec.push(d);
  }
  const C0 = cfg.stages[0].channels;
  const lik = cfg.likelihood === 'bernoulli' ? conv(C0, cx, 3, H, H) : conv(C0, 10 * cfg.mixtureComponents, 1, H, H);
  const total = enc.reduce((a, b) => a + b, 0) + dec.reduce((a, b) => a + b, 0) + lik;
  return { enc, dec, lik, total };
}

/**
 * FLOPs per image of the scoring request L^S + L>k for every k in ks (S' = 1), as the official recipe computes it
 * (one full pass per sample and per k, L recomputed per k) and as hvae-native computes it (stage 1 and the mean
 * path once, decoder once per row).
 */
function scoringFlops(cfg, S, ks) {
  const m = modelFlops(cfg);
  const L = cfg.stages.length;
  const official = ks.length * (S + 1) * m.total;
  const encAbove = (k) => m.enc.slice(Math.max(1, k)).reduce((a, b) => a + b, 0);
  const decoder = m.dec.reduce((a, b) => a + b, 0) + m.lik;
  let ours = m.enc[0] + m.enc.slice(1, Math.max(...ks, 1)).reduce((a, b) => a + b, 0); // stage 1 + mean path
  ours += S * (encAbove(1) + decoder); // ELBO samples
  for (const k of ks) if (k > 0) ours += (k < L ? encAbove(k + 1) : 0) + decoder;
  return { perPass: m.total, official, ours };
}

module.exports = { modelFlops, scoringFlops };

if (require.main === module) {
  const { resolveConfig } = require('../lib/config.js');
  for (const p of ['fashionmnist', 'cifar10']) {
    const cfg = resolveConfig({ preset: p });
    const m = modelFlops(cfg);
    const s1 = scoringFlops(cfg, 1, [0, 1, 2]);
    const s64 = scoringFlops(cfg, 64, [0, 1, 2]);
    console.log(`${p}: ${(m.total / 1e9).toFixed(3)} GFLOP per full pass (encoder ${m.enc.map((v) => (v / 1e9).toFixed(3)).join('/')}, decoder ${m.dec.map((v) => (v / 1e9).toFixed(3)).join('/')}, likelihood ${(m.lik / 1e9).toFixed(3)})`);
    console.log(`  scoring S=1 k=0,1,2: official ${(s1.official / 1e9).toFixed(2)} GFLOP/image, hvae-native ${(s1.ours / 1e9).toFixed(2)}; S=64: ${(s64.official / 1e9).toFixed(1)} vs ${(s64.ours / 1e9).toFixed(1)}`);
  }
}
