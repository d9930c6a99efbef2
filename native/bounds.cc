#include "bounds.h"

#include <algorithm>

#include "errors.h"

namespace hvae {

namespace {

// A group's rows inside a stacked tensor.
struct Seg {
  int group;
  int64_t offset;
  int64_t rows;
};

const Seg* findSeg(const std::vector<Seg>& segs, int g) {
  for (const auto& s : segs)
    if (s.group == g) return &s;
  return nullptr;
}

// Rows of the wanted groups, in the wanted order. A single narrow (no copy) when they are adjacent in `t`.
Tensor gatherSegs(const Tensor& t, const std::vector<Seg>& segs, const std::vector<int>& want) {
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (int g : want) {
    const Seg* s = findSeg(segs, g);
    if (!ranges.empty() && ranges.back().first + ranges.back().second == s->offset) {
      ranges.back().second += s->rows;
    } else {
      ranges.emplace_back(s->offset, s->rows);
    }
  }
  if (ranges.size() == 1) return t.narrow(0, ranges[0].first, ranges[0].second);
  std::vector<Tensor> parts;
  parts.reserve(ranges.size());
  for (auto& r : ranges) parts.push_back(t.narrow(0, r.first, r.second));
  return torch::cat(parts, 0);
}

Tensor catOrSingle(const std::vector<Tensor>& parts) { return parts.size() == 1 ? parts[0] : torch::cat(parts, 0); }

// Repeat rows sample-major: (B, ...) -> (S*B, ...), row s*B + b = row b.
Tensor repeatRows(const Tensor& t, int64_t S) {
  if (S == 1) return t;
  std::vector<int64_t> rep(t.dim(), 1);
  rep[0] = S;
  return t.repeat(rep);
}

std::vector<int64_t> withRows(int64_t n, const std::vector<int64_t>& shape) {
  std::vector<int64_t> s{n};
  s.insert(s.end(), shape.begin(), shape.end());
  return s;
}

struct EncLayer {
  Tensor z, mu, sigma, h;
  std::vector<Seg> segs;
};

// log-mean-exp over dim 0 with the reference's guard (§3.4), log(mean(exp(a - max)) + 1e-8) + max, of a tensor that
// arrives in slices along dim 0: a running maximum and the sum of exp(a - max), rescaled when the maximum grows.
// result() equals the formula applied to all slices stacked.
struct StreamingLogMeanExp {
  Tensor max, sum;
  int64_t count = 0;
  void add(const Tensor& a) {
    if (a.size(0) == 0) return;
    Tensor m = std::get<0>(a.max(0));
    if (!max.defined()) {
      max = m;
      sum = torch::exp(a - m).sum(0);
    } else {
      Tensor nm = torch::maximum(max, m);
      sum = sum * torch::exp(max - nm) + torch::exp(a - nm).sum(0);
      max = nm;
    }
    count += a.size(0);
  }
  Tensor result() const { return torch::log(sum / static_cast<double>(count) + 1e-8) + max; }
};

Tensor addOrSet(const Tensor& acc, const Tensor& v) { return acc.defined() ? acc + v : v; }

}  // namespace

std::vector<GroupResult> runGroups(HVAEImpl& m, const Tensor& x, const std::vector<GroupSpec>& groups,
                                   const EngineOptions& opt) {
  const int L = m.numLayers();
  const int G = static_cast<int>(groups.size());
  const int64_t B = x.size(0);
  std::vector<int64_t> offset(G), rows(G);
  int64_t N = 0;
  for (int g = 0; g < G; ++g) {
    offset[g] = N;
    rows[g] = groups[g].samples * B;
    N += rows[g];
  }
  std::vector<Seg> globalSegs;
  for (int g = 0; g < G; ++g) globalSegs.push_back({g, offset[g], rows[g]});

  // ---- encoder: stage 1 and the posterior-mean path, once per example (§4.4) ----
  // (On CPU the activations flow in channels-last layout; results do not depend on it.)
  int maxJoin = 0;
  for (const auto& gs : groups)
    if (gs.encJoin < gs.postHi) maxJoin = std::max(maxJoin, gs.encJoin);
  std::vector<GaussianParams> meanPath(L);
  std::vector<Tensor> meanH(L);
  // Channels-last pays at inference; in training (grad mode) oneDNN's backward is faster in the default layout.
  const bool channelsLast = x.is_cpu() && cpuChannelsLast() && !torch::GradMode::is_enabled();
  meanH[0] = m.encode(0, channelsLast ? x.contiguous(at::MemoryFormat::ChannelsLast) : x, Tensor());
  meanPath[0] = m.qParams(0, meanH[0]);
  for (int i = 1; i <= maxJoin; ++i) {
    meanH[i] = m.encode(i, m.qProject(i - 1, meanPath[i - 1].mu), meanH[i - 1]);
    meanPath[i] = m.qParams(i, meanH[i]);
  }

  // ---- encoder: the sampled chains of all groups, stacked per layer ----
  std::vector<EncLayer> enc(L);
  for (int i = 0; i < L; ++i) {
    const bool keepH = m.encoderHasAux(i + 1);
    std::vector<Tensor> mus, sigmas, hs;
    std::vector<Seg>& segs = enc[i].segs;
    int64_t pos = 0;
    if (i > 0) {
      std::vector<int> cont;
      for (const auto& s : enc[i - 1].segs)
        if (groups[s.group].postHi > i) cont.push_back(s.group);
      if (!cont.empty()) {
        Tensor z = gatherSegs(enc[i - 1].z, enc[i - 1].segs, cont);
        Tensor aux = enc[i - 1].h.defined() ? gatherSegs(enc[i - 1].h, enc[i - 1].segs, cont) : Tensor();
        Tensor h = m.encode(i, m.qProject(i - 1, z), aux);
        GaussianParams q = m.qParams(i, h);
        mus.push_back(q.mu);
        sigmas.push_back(q.sigma);
        if (keepH) hs.push_back(h);
        for (int g : cont) {
          segs.push_back({g, pos, rows[g]});
          pos += rows[g];
        }
      }
    }
    for (int g = 0; g < G; ++g) {
      if (groups[g].encJoin != i || groups[g].postHi <= i) continue;
      mus.push_back(repeatRows(meanPath[i].mu, groups[g].samples));
      sigmas.push_back(repeatRows(meanPath[i].sigma, groups[g].samples));
      if (keepH) hs.push_back(repeatRows(meanH[i], groups[g].samples));
      segs.push_back({g, pos, rows[g]});
      pos += rows[g];
    }
    if (pos == 0) continue;
    EncLayer& e = enc[i];
    e.mu = catOrSingle(mus);
    e.sigma = catOrSingle(sigmas);
    if (keepH) e.h = catOrSingle(hs);
    Tensor eps;
    if (static_cast<int>(opt.noise.size()) > i && opt.noise[i].defined()) {
      eps = opt.noise[i];
      check(eps.sizes() == e.mu.sizes(), "ERR_HVAE_SHAPE",
            "injected noise for layer " + std::to_string(i + 1) + " has shape " + c10::str(eps.sizes()) +
                ", expected " + c10::str(e.mu.sizes()));
      eps = eps.to(e.mu.device(), e.mu.scalar_type());
    } else {
      eps = torch::randn(e.mu.sizes(), opt.generator, e.mu.options());
    }
    e.z = e.mu + e.sigma * eps;  // reparameterised sample (Normal.rsample)
  }

  // ---- decoder: all rows at once, top-down ----
  std::vector<GroupResult> out(G);
  for (auto& r : out) {
    r.kl.resize(L);
    if (opt.keepElementwiseKL) r.klElem.resize(L);
  }
  Tensor d;
  std::vector<Tensor> skips;
  for (int i = L - 1; i >= 0; --i) {
    GaussianParams p;
    const auto& shape = m.geometry(i).latentShape;
    if (i == L - 1) {
      p.mu = torch::zeros(withRows(N, shape), x.options());
      p.sigma = torch::ones(withRows(N, shape), x.options());
    } else {
      p = m.pParams(i, d);
    }
    std::vector<int> post;
    for (int g = 0; g < G; ++g)
      if (groups[g].postLo <= i && i < groups[g].postHi) post.push_back(g);
    Tensor zq;
    if (!post.empty()) {
      zq = gatherSegs(enc[i].z, enc[i].segs, post);
      Tensor muq = gatherSegs(enc[i].mu, enc[i].segs, post);
      Tensor sq = gatherSegs(enc[i].sigma, enc[i].segs, post);
      Tensor mup = gatherSegs(p.mu, globalSegs, post);
      Tensor sp = gatherSegs(p.sigma, globalSegs, post);
      // One-sample Monte Carlo KL, elementwise, at the posterior sample (§3.1).
      Tensor klE = gaussianLogProb(zq, muq, sq) - gaussianLogProb(zq, mup, sp);
      Tensor klS = klE.flatten(1).sum(1);
      int64_t at = 0;
      for (int g : post) {
        out[g].kl[i] = klS.narrow(0, at, rows[g]);
        if (opt.keepElementwiseKL) out[g].klElem[i] = klE.narrow(0, at, rows[g]);
        at += rows[g];
      }
    }
    // z_i in global row order: posterior samples, or the conditional prior's mean (or a sample from it).
    std::vector<Tensor> parts;
    int64_t qat = 0;
    for (int g = 0; g < G;) {
      const bool isPost = groups[g].postLo <= i && i < groups[g].postHi;
      int h = g;
      int64_t n = 0;
      while (h < G && (groups[h].postLo <= i && i < groups[h].postHi) == isPost &&
             (isPost || groups[h].priorSample == groups[g].priorSample)) {
        n += rows[h];
        ++h;
      }
      if (isPost) {
        parts.push_back(zq.narrow(0, qat, n));
        qat += n;
      } else {
        Tensor mu = p.mu.narrow(0, offset[g], n);
        if (groups[g].priorSample) {
          Tensor sg = p.sigma.narrow(0, offset[g], n);
          parts.push_back(mu + sg * torch::randn(mu.sizes(), opt.generator, mu.options()));
        } else {
          parts.push_back(mu);
        }
      }
      g = h;
    }
    Tensor z = catOrSingle(parts);
    auto dec = m.decode(i, m.pProject(i, z), skips);
    d = std::move(dec.first);
    skips = std::move(dec.second);
  }

  // ---- likelihood ----
  Tensor lp = m.likelihood()->params(d);
  std::vector<Tensor> xs;
  for (int g = 0; g < G; ++g) xs.push_back(repeatRows(x, groups[g].samples));
  Tensor ll = m.likelihood()->logProb(catOrSingle(xs), lp);
  for (int g = 0; g < G; ++g) {
    GroupResult& r = out[g];
    r.logLikelihood = ll.narrow(0, offset[g], rows[g]);
    Tensor klTotal;
    for (int i = groups[g].postLo; i < groups[g].postHi; ++i) klTotal = klTotal.defined() ? klTotal + r.kl[i] : r.kl[i];
    r.bound = klTotal.defined() ? r.logLikelihood - klTotal : r.logLikelihood;
    if (opt.keepLikelihoodParams) r.likelihoodParams = lp.narrow(0, offset[g], rows[g]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------

ScoreResult score(HVAEImpl& m, const Tensor& x, const ScoreRequest& req, c10::optional<at::Generator> generator) {
  const int L = m.numLayers();
  const int64_t B = x.size(0);
  check(req.samples >= 1, "ERR_HVAE_OPTION", "importanceSamples must be >= 1");
  check(req.samplesAboveK >= 1, "ERR_HVAE_OPTION", "importanceSamplesAboveK must be >= 1");
  for (int k : req.ks) check(k >= 0 && k <= L, "ERR_HVAE_OPTION", "k = " + std::to_string(k) + " is out of range 0.." + std::to_string(L));
  for (int l : req.ls) check(l >= 1 && l <= L, "ERR_HVAE_OPTION", "l = " + std::to_string(l) + " is out of range 1.." + std::to_string(L));

  const bool wantK0 = std::find(req.ks.begin(), req.ks.end(), 0) != req.ks.end();
  std::vector<GroupSpec> groups;
  GroupSpec elbo;
  elbo.postLo = 0;
  elbo.postHi = L;
  elbo.encJoin = 0;
  elbo.samples = std::max(req.samples, wantK0 ? req.samplesAboveK : 1);
  groups.push_back(elbo);
  std::vector<int> ks;
  for (int k : req.ks)
    if (k > 0 && std::find(ks.begin(), ks.end(), k) == ks.end()) ks.push_back(k);
  std::sort(ks.begin(), ks.end());
  std::map<int, int> groupOfK, groupOfL;
  for (int k : ks) {
    GroupSpec g;
    g.postLo = k;
    g.postHi = L;
    g.priorSample = req.priorSample;
    // Reference mode rule (§4.2): q(z_{k+1}) on the posterior-mean path. Sampled variant: q(z>k|x) estimated
    // with one sample of the whole chain, z<=k from the conditional prior.
    g.encJoin = req.priorSample ? 0 : k;
    // With the mode rule and k = L the bound is deterministic: one sample is enough.
    g.samples = (k == L && !req.priorSample) ? 1 : req.samplesAboveK;
    groupOfK[k] = static_cast<int>(groups.size());
    groups.push_back(g);
  }
  std::vector<int> ls(req.ls.begin(), req.ls.end());
  std::sort(ls.begin(), ls.end(), std::greater<int>());
  ls.erase(std::unique(ls.begin(), ls.end()), ls.end());
  for (int l : ls) {
    GroupSpec g;
    g.postLo = 0;
    g.postHi = l;
    g.encJoin = 0;
    g.priorSample = req.priorSample;
    g.samples = req.samplesAboveK;
    groupOfL[l] = static_cast<int>(groups.size());
    groups.push_back(g);
  }

  int64_t rowsPerExample = 0;
  for (auto& g : groups) rowsPerExample += g.samples;
  int64_t chunk = std::max<int64_t>(1, req.chunkRows / std::max<int64_t>(1, rowsPerExample));
  const bool injected = !req.noise.empty();
  if (injected) chunk = B;  // injected noise is laid out for the whole batch

  // bounds[G] holds L>0^{S'}, taken from the ELBO group's first S' samples.
  std::vector<std::vector<Tensor>> bounds(groups.size() + 1), lls(groups.size());
  std::vector<std::vector<std::vector<Tensor>>> kls(groups.size(), std::vector<std::vector<Tensor>>(L));
  std::vector<Tensor> elboSamples;
  // Images run in chunks of `chunk`, each chunk in P passes over slices of every group's samples; the bounds,
  // log-likelihoods and KL terms are combined across passes exactly (a streaming log-mean-exp; sums over the
  // samples). P is 1 unless one image's rows exceed the budget (S above chunkRows): then a chunk is one image and
  // its samples run in P passes of at most about chunkRows rows each, so memory stays bounded at any S. Split or
  // not, the estimates are the same, from other draws.
  const bool splitSamples = !injected && rowsPerExample > req.chunkRows;
  const int64_t P = splitSamples ? (rowsPerExample + req.chunkRows - 1) / req.chunkRows : 1;
  if (splitSamples) chunk = 1;
  const size_t G = groups.size();
  for (int64_t b0 = 0; b0 < B; b0 += chunk) {
    const int64_t n = std::min(chunk, B - b0);
    const Tensor xb = x.narrow(0, b0, n);
    std::vector<StreamingLogMeanExp> lme(G);
    StreamingLogMeanExp lmeK0;
    std::vector<Tensor> llSum(G);
    std::vector<std::vector<Tensor>> klSum(G, std::vector<Tensor>(L));
    std::vector<Tensor> elboS;
    EngineOptions opt;
    opt.generator = generator;
    if (injected) opt.noise = req.noise;  // laid out for the whole batch: chunk = B and P = 1
    for (int64_t p = 0; p < P; ++p) {
      std::vector<GroupSpec> sub;
      std::vector<size_t> which;
      std::vector<int64_t> from;
      for (size_t g = 0; g < G; ++g) {
        const int64_t S = groups[g].samples, lo = S * p / P, hi = S * (p + 1) / P;
        if (hi <= lo) continue;
        GroupSpec gs = groups[g];
        gs.samples = static_cast<int>(hi - lo);
        sub.push_back(gs);
        which.push_back(g);
        from.push_back(lo);
      }
      if (sub.empty()) continue;  // more passes than samples in every group: some passes hold none
      auto res = runGroups(m, xb, sub, opt);
      for (size_t j = 0; j < sub.size(); ++j) {
        const size_t g = which[j];
        const int64_t S = sub[j].samples, lo = from[j];
        // The ELBO group draws max(S, S') samples: its bound uses the first S, L>0^{S'} the first S'.
        const int64_t use = g == 0 ? req.samples : groups[g].samples;
        const int64_t u = std::clamp<int64_t>(use - lo, 0, S);
        Tensor bnd = res[j].bound.view({S, n});
        if (u > 0) {
          lme[g].add(bnd.narrow(0, 0, u));
          llSum[g] = addOrSet(llSum[g], res[j].logLikelihood.view({S, n}).narrow(0, 0, u).sum(0));
          for (int i = 0; i < L; ++i)
            if (res[j].kl[i].defined()) klSum[g][i] = addOrSet(klSum[g][i], res[j].kl[i].view({S, n}).narrow(0, 0, u).sum(0));
          if (g == 0 && req.returnElboSamples) elboS.push_back(bnd.narrow(0, 0, u));
        }
        if (g == 0 && wantK0) {
          const int64_t u0 = std::clamp<int64_t>(req.samplesAboveK - lo, 0, S);
          if (u0 > 0) lmeK0.add(bnd.narrow(0, 0, u0));
        }
      }
    }
    for (size_t g = 0; g < G; ++g) {
      const double use = static_cast<double>(g == 0 ? req.samples : groups[g].samples);
      bounds[g].push_back(lme[g].result());
      lls[g].push_back(llSum[g] / use);
      for (int i = 0; i < L; ++i)
        if (klSum[g][i].defined()) kls[g][i].push_back(klSum[g][i] / use);
    }
    if (wantK0) bounds[G].push_back(lmeK0.result());
    if (req.returnElboSamples) elboSamples.push_back(elboS.size() == 1 ? elboS[0] : torch::cat(elboS, 0));
  }

  ScoreResult r;
  r.elbo = catOrSingle(bounds[0]);
  r.elboLogLikelihood = catOrSingle(lls[0]);
  r.elboKl.resize(L);
  for (int i = 0; i < L; ++i) r.elboKl[i] = catOrSingle(kls[0][i]);
  if (req.returnElboSamples) r.elboSamples = torch::cat(elboSamples, 1);
  auto collect = [&](int g, Tensor& bound, Tensor* ll, std::vector<Tensor>* kl) {
    bound = catOrSingle(bounds[g]);
    if (ll) *ll = catOrSingle(lls[g]);
    if (kl) {
      kl->resize(L);
      for (int i = 0; i < L; ++i)
        if (!kls[g][i].empty()) (*kl)[i] = catOrSingle(kls[g][i]);
    }
  };
  if (wantK0) {
    r.aboveK[0] = catOrSingle(bounds[groups.size()]);
    r.aboveKLogLikelihood[0] = r.elboLogLikelihood;
    r.aboveKKl[0] = r.elboKl;
  }
  for (auto& [k, g] : groupOfK) collect(g, r.aboveK[k], &r.aboveKLogLikelihood[k], &r.aboveKKl[k]);
  for (auto& [l, g] : groupOfL) collect(g, r.belowL[l], nullptr, nullptr);
  return r;
}

}  // namespace hvae

namespace hvae {
Tensor decodeFromPrior(HVAEImpl& m, int64_t n, bool priorSample, c10::optional<at::Generator> generator,
                       const torch::TensorOptions& options) {
  const int L = m.numLayers();
  Tensor d;
  std::vector<Tensor> skips;
  for (int i = L - 1; i >= 0; --i) {
    Tensor z;
    if (i == L - 1) {
      z = torch::randn(withRows(n, m.geometry(i).latentShape), generator, options);
    } else {
      GaussianParams p = m.pParams(i, d);
      z = priorSample ? p.mu + p.sigma * torch::randn(p.mu.sizes(), generator, p.mu.options()) : p.mu;
    }
    auto dec = m.decode(i, m.pProject(i, z), skips);
    d = std::move(dec.first);
    skips = std::move(dec.second);
  }
  return m.likelihood()->params(d);
}
}  // namespace hvae
