// The bounds engine: the ELBO, L>k, the complementary L<l, importance weighting and LLR, computed for many bounds
// and samples in one stacked forward computation (ALGORITHM.md §3, §4 and §4.4).
//
// A request is a list of *groups*. Every group is one bound with S_g importance samples; its rows in the stacked
// batch are sample-major (row = offset_g + s*B + b). A group uses the approximate posterior for latent layers
// [postLo, postHi) (with their KL terms) and the conditional prior for the others:
//   - the ELBO L:          [0, L)
//   - L>k (paper eq. 5):   [k, L)  the k lowest latents from the conditional prior
//   - L<l (appendix E):    [0, l)  the latents l..L from the prior
// In the encoder, a group enters at `encJoin`: an L>k group in the reference's mode rule (§4.2) joins at layer k
// with q(z_k) computed on the deterministic posterior-mean path, which is computed once and shared; in the
// paper's sampled variant every group samples its chain from layer 0.
// Prior layers use the conditional-prior mean (the reference's mode rule) or a sample (the paper's expectation).
//
// Sharing: the first encoder stage and the posterior-mean path are computed once per example; every group that
// needs a layer's encoder runs in one stacked call; the decoder runs once over all rows.
#pragma once

#include <torch/torch.h>

#include <map>
#include <optional>
#include <vector>

#include "model.h"

namespace hvae {

struct GroupSpec {
  int postLo = 0, postHi = 0;  // posterior layers [postLo, postHi)
  int encJoin = 0;             // first encoder layer of the group's sampled chain; q(z_encJoin) comes from the
                               // posterior-mean path (for encJoin = 0 that is simply q(z_1|x))
  int samples = 1;             // importance samples S_g
  bool priorSample = false;    // prior layers: sample instead of the conditional-prior mean
};

struct GroupResult {
  Tensor logLikelihood;         // (S_g * B) per sample
  std::vector<Tensor> kl;       // per layer: (S_g * B), undefined for prior layers
  std::vector<Tensor> klElem;   // per layer: elementwise KL (only with keepElementwiseKL)
  Tensor bound;                 // (S_g * B) per-sample bound log p(x|z) - sum KL
  Tensor likelihoodParams;      // (S_g * B, ...) only with keepLikelihoodParams
};

struct EngineOptions {
  // Test seam: per encoder layer, the standard-normal noise for all rows sampled at that layer, stacked in the
  // engine's row order (see runGroups). Empty in normal use: noise is then drawn with `generator`.
  std::vector<Tensor> noise;
  c10::optional<at::Generator> generator;
  bool keepElementwiseKL = false;
  bool keepLikelihoodParams = false;
};

// Runs the groups on x (B, C, H, W; float, already transformed) and returns one result per group.
// Noise row order at encoder layer i: first the groups that continue from layer i-1 (in their order at i-1),
// then the groups joining at i (in group order). For L>k groups sorted by k this is simply group order.
std::vector<GroupResult> runGroups(HVAEImpl& model, const Tensor& x, const std::vector<GroupSpec>& groups,
                                   const EngineOptions& options);

// ---- scoring requests (what the API exposes) ----

struct ScoreRequest {
  std::vector<int> ks;            // L>k for these k (0..L)
  std::vector<int> ls;            // L<l for these l (1..L), appendix E
  int samples = 1;                // S for the ELBO L^S
  int samplesAboveK = 1;          // S' for L>k^{S'} and L<l^{S'}
  bool priorSample = false;       // the paper's sampled L>k instead of the reference's mode rule
  int64_t chunkRows = 4096;       // memory budget: rows of the stacked batch per pass (an image's samples are
                                  // split over several passes when they alone exceed it)
  bool returnElboSamples = false;
  std::vector<Tensor> noise;      // test seam: per encoder layer, in runGroups' row order (disables chunking)
};

struct ScoreResult {
  Tensor elbo;                    // (B) L^S
  Tensor elboLogLikelihood;       // (B) mean over the S samples of log p(x|z)
  std::vector<Tensor> elboKl;     // per layer (B), mean over samples
  Tensor elboSamples;             // (S, B) if requested
  std::map<int, Tensor> aboveK;   // k -> (B) L>k^{S'}
  std::map<int, Tensor> aboveKLogLikelihood;
  std::map<int, std::vector<Tensor>> aboveKKl;  // k -> per layer (B) (undefined for prior layers)
  std::map<int, Tensor> belowL;   // l -> (B) L<l^{S'}
};

ScoreResult score(HVAEImpl& model, const Tensor& x, const ScoreRequest& request,
                  c10::optional<at::Generator> generator);

}  // namespace hvae

namespace hvae {
// Decodes n prior draws: z_L ~ N(0, I), lower latents from the conditional prior (mean, or a sample), and returns
// the likelihood parameters (n, ...).
Tensor decodeFromPrior(HVAEImpl& model, int64_t n, bool priorSample, c10::optional<at::Generator> generator,
                       const torch::TensorOptions& options);
}  // namespace hvae
