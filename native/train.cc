#include "train.h"

#include <atomic>
#include <cmath>
#include <map>

#include "allocator.h"
#include "bounds.h"
#include "errors.h"

namespace hvae {

namespace {
std::atomic<bool> gAdamForeach{true};
}

bool setAdamForeach(bool on) { return gAdamForeach.exchange(on); }
bool adamForeach() { return gAdamForeach.load(); }

void Adam::step(const std::vector<std::pair<std::string, Tensor>>& params, double lr, double beta1, double beta2,
                double eps) {
  torch::NoGradGuard ng;
  // Parameters with a gradient, grouped by their step count (equal for all of them in any ordinary run; a group
  // shares the bias corrections).
  std::map<int64_t, std::vector<std::pair<Tensor, State*>>> groups;
  for (const auto& [name, p] : params) {
    if (!p.grad().defined()) continue;  // as torch.optim: parameters without gradients are skipped
    State& s = state_[name];
    if (!s.expAvg.defined() || s.expAvg.device() != p.device()) {
      s.expAvg = torch::zeros_like(p, torch::MemoryFormat::Preserve);
      s.expAvgSq = torch::zeros_like(p, torch::MemoryFormat::Preserve);
    }
    s.step += 1;
    groups[s.step].emplace_back(p, &s);
  }
  const bool foreach = gAdamForeach.load();
  for (auto& [step, group] : groups) {
    const double bc1 = 1 - std::pow(beta1, static_cast<double>(step));
    const double bc2 = 1 - std::pow(beta2, static_cast<double>(step));
    const double stepSize = lr / bc1;
    if (!foreach) {
      // One tensor at a time: torch.optim.Adam's single-tensor path, 8 kernels per parameter.
      for (auto& [p, s] : group) {
        const Tensor& grad = p.grad();
        s->expAvg.mul_(beta1).add_(grad, 1 - beta1);
        s->expAvgSq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
        Tensor denom = (s->expAvgSq.sqrt() / std::sqrt(bc2)).add_(eps);
        p.addcdiv_(s->expAvg, denom, -stepSize);
      }
      continue;
    }
    // The same arithmetic, operation for operation, as multi-tensor (_foreach) ops: on CUDA each is a few fused
    // kernels for all parameters instead of one per parameter (about 1,000 launches a step for the fashionmnist
    // preset, which is launch-bound at batch 128); on the CPU they loop over the tensors with the same kernels, so
    // the weights are bit-identical to the loop above (test 50).
    std::vector<Tensor> ps, grads, m, v;
    for (auto& [p, s] : group) {
      ps.push_back(p);
      grads.push_back(p.grad());
      m.push_back(s->expAvg);
      v.push_back(s->expAvgSq);
    }
    at::_foreach_mul_(m, beta1);
    at::_foreach_add_(m, grads, 1 - beta1);
    at::_foreach_mul_(v, beta2);
    at::_foreach_addcmul_(v, grads, grads, 1 - beta2);
    std::vector<Tensor> denom = at::_foreach_sqrt(v);
    at::_foreach_div_(denom, std::sqrt(bc2));
    at::_foreach_add_(denom, eps);
    at::_foreach_addcdiv_(ps, m, denom, -stepSize);
  }
}

Tensor freeNatsPenalty(const std::vector<Tensor>& klElem, double lambda, FreeNatsMode mode) {
  Tensor total;
  for (const auto& k : klElem) {
    if (!k.defined()) continue;
    Tensor t;
    switch (mode) {
      case FreeNatsMode::Reference:
        t = lambda > 0 ? torch::clamp_min(k, lambda / static_cast<double>(k.size(1))) : k;
        t = t.flatten(1).sum(1);
        break;
      case FreeNatsMode::LayerTotal:
        t = k.flatten(1).sum(1);
        if (lambda > 0) t = torch::clamp_min(t, lambda);
        break;
      case FreeNatsMode::PaperEra: {
        const double numel = static_cast<double>(k[0].numel());
        t = torch::clamp_min(k, lambda > 0 ? lambda / numel : 0.0).flatten(1).sum(1);
        break;
      }
    }
    total = total.defined() ? total + t : t;
  }
  return total;
}

TrainStepResult trainStep(HVAEImpl& m, Adam& adam, const Tensor& x, const TrainStepOptions& o,
                          c10::optional<at::Generator> generator) {
  // Declared first, so that every tensor of the step is freed while it is alive: the step's working set stays in
  // the allocator's cache for the next step instead of going back to the kernel (allocator.h).
  CpuCacheScope cacheScope;
  TrainStepResult r;
  GroupSpec elbo;
  elbo.postLo = 0;
  elbo.postHi = m.numLayers();
  elbo.encJoin = 0;
  elbo.samples = 1;
  if (m.initPending()) {
    // Data-dependent initialisation (§2.4): every layer initialises on its first call, in execution order, with
    // this batch. The reference does it inside the first step's forward; here a separate no-grad pass does it and
    // the step below then runs on the initialised layers (equivalent up to the random draws).
    torch::NoGradGuard ng;
    InitScope scope(generator);
    EngineOptions init;
    init.generator = generator;
    runGroups(m, x, {elbo}, init);
    m.requestInit(false);
    m.invalidateFolds();
    r.initialised = true;
  }
  m.train();
  EngineOptions opt;
  opt.generator = generator;
  opt.keepElementwiseKL = true;
  opt.noise = o.noise;
  GroupResult g = [&] {
    PrecisionScope precisionScope(o.precision);
    return runGroups(m, x, {elbo}, opt)[0];
  }();
  Tensor penalty = freeNatsPenalty(g.klElem, o.freeNats, o.freeNatsMode);
  r.loss = -g.logLikelihood + o.beta * penalty;
  r.logLikelihood = g.logLikelihood.detach();
  r.elbo = g.bound.detach();
  for (auto& k : g.kl) r.kl.push_back(k.detach());
  Tensor lossMean = r.loss.mean();
  r.loss = r.loss.detach();
  auto params = m.named_parameters(/*recurse=*/true);
  for (auto& p : params) {
    if (p.value().grad().defined()) p.value().mutable_grad() = Tensor();
  }
  // Backward is queued before the loss is read back: on CUDA, item() waits for the device, and reading it first
  // would keep the backward pass's launches from overlapping the forward pass's kernels. A non-finite loss is
  // still caught before the update (its gradients are simply dropped).
  lossMean.backward();
  r.lossMean = lossMean.item<double>();
  r.elboMean = r.elbo.mean().item<double>();
  if (!std::isfinite(r.lossMean)) {
    if (o.skipNonFinite) {
      r.skipped = true;
      return r;
    }
    fail("ERR_HVAE_NONFINITE_LOSS", "the training loss is not finite (" + std::to_string(r.lossMean) + ")");
  }
  std::vector<std::pair<std::string, Tensor>> named;
  named.reserve(params.size());
  for (auto& p : params) named.emplace_back(p.key(), p.value());
  if (o.collectGrads) {
    for (auto& [name, p] : named)
      if (p.grad().defined()) r.grads.emplace_back(name, p.grad().detach().clone());
  }
  if (o.step) {
    adam.step(named, o.lr, o.beta1, o.beta2, o.eps);
    m.invalidateFolds();
  }
  return r;
}

}  // namespace hvae
