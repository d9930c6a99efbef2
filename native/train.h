// One training step (ALGORITHM.md §3.2 and §5.2): forward with one posterior sample, the reference loss
// (-log p(x|z) + beta * free-nats-clamped KL, averaged over the batch), backward and an Adam step, all in C++.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "model.h"

namespace hvae {

// How free nats clamp the KL (§3.2).
enum class FreeNatsMode {
  Reference,  // [REF] elementwise max(KL_elem, lambda / C_l), C_l = channels/features; unchanged at lambda = 0
  LayerTotal, // per example and layer: max(KL_l, lambda) (biva-pytorch); unchanged at lambda = 0
  PaperEra    // [PAPER-ERA] elementwise max(KL_elem, lambda / numel_l); max(KL_elem, 0) once lambda = 0
};

// Adam exactly as torch.optim.Adam (1.13, no amsgrad, no weight decay), with its state kept by parameter name so
// that checkpoints can store and restore it. The update runs as multi-tensor (_foreach) ops unless
// setAdamForeach(false) chose torch.optim's single-tensor loop; both do the same arithmetic.
class Adam {
 public:
  struct State {
    Tensor expAvg, expAvgSq;
    int64_t step = 0;
  };
  void step(const std::vector<std::pair<std::string, Tensor>>& params, double lr, double beta1, double beta2,
            double eps);
  std::map<std::string, State>& state() { return state_; }
  void clear() { state_.clear(); }

 private:
  std::map<std::string, State> state_;
};

// Chooses the multi-tensor update (default) or the single-tensor loop; returns the previous choice.
bool setAdamForeach(bool on);
bool adamForeach();

struct TrainStepOptions {
  double beta = 1.0;          // KL weight (warm-up)
  double freeNats = 0.0;      // lambda
  FreeNatsMode freeNatsMode = FreeNatsMode::Reference;
  double lr = 3e-4, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  bool step = true;           // take the optimizer step (false: forward/backward only)
  bool collectGrads = false;  // return every parameter's gradient (tests)
  bool skipNonFinite = false; // on a non-finite loss: skip the batch instead of failing
  // The layers' arithmetic in the forward pass and its backward (PrecisionScope): float32 is ALGORITHM.md's; with
  // bfloat16 the convolutions and dense layers run in bfloat16 on float32 master weights (opt-in, measured in
  // bench/RESULTS.md). The data-dependent initialisation is always float32.
  at::ScalarType precision = at::kFloat;
  std::vector<Tensor> noise;  // test seam, as EngineOptions::noise
};

struct TrainStepResult {
  Tensor loss, elbo, logLikelihood;  // per example
  std::vector<Tensor> kl;            // per layer, per example (raw MC KL)
  double lossMean = 0, elboMean = 0;
  bool skipped = false;
  bool initialised = false;          // this step ran the data-dependent initialisation
  std::vector<std::pair<std::string, Tensor>> grads;
};

TrainStepResult trainStep(HVAEImpl& model, Adam& adam, const Tensor& x, const TrainStepOptions& options,
                          c10::optional<at::Generator> generator);

// The per-example KL penalty of the loss under a free-nats rule (exposed for tests).
Tensor freeNatsPenalty(const std::vector<Tensor>& klElem, double lambda, FreeNatsMode mode);

}  // namespace hvae
