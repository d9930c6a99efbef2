// The bottom-up hierarchical VAE of ALGORITHM.md §2 as a LibTorch module, exposing the per-stage primitives that
// the bounds engine (bounds.h) and the training step (train.h) compose.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config.h"
#include "layers.h"

namespace hvae {

struct GaussianParams {
  Tensor mu, sigma;
};

// stages.{i}.{q_deterministic,p_deterministic}: a list of residual blocks under `layers`.
class BlocksImpl : public torch::nn::Module {
 public:
  BlocksImpl() { layers_ = register_module("layers", torch::nn::ModuleList()); }
  void add(ResBlock block) { layers_->push_back(std::move(block)); blocks_.push_back(layers_->ptr<ResBlockImpl>(layers_->size() - 1)); }
  size_t size() const { return blocks_.size(); }
  ResBlockImpl& at(size_t j) { return *blocks_[j]; }

 private:
  torch::nn::ModuleList layers_{nullptr};
  std::vector<std::shared_ptr<ResBlockImpl>> blocks_;
};
TORCH_MODULE(Blocks);

// stages.{i}.stochastic: the parameter nets of q(z_i|h_i) and p(z_i|d_{i+1}) (§2.6).
class GaussianImpl : public torch::nn::Module {
 public:
  GaussianImpl(LatentType type, int64_t size, int64_t qIn, int64_t pIn, bool hasPrior);
  GaussianParams q(const Tensor& h);
  GaussianParams p(const Tensor& d);
  bool hasPrior() const { return !inP_.is_empty(); }

 private:
  GaussianParams params(Named& net, const Tensor& h);
  LatentType type_;
  int64_t size_;
  Named inQ_{nullptr}, inP_{nullptr};
};
TORCH_MODULE(Gaussian);

// stages.{i}.{q,p}_projection (AsFeatureMap, §2.7): Linear D -> C*H*W reshaped to (C,H,W); identity for conv.
class ProjectionImpl : public torch::nn::Module {
 public:
  ProjectionImpl(int64_t in, std::vector<int64_t> shape);
  Tensor forward(const Tensor& z);

 private:
  std::shared_ptr<NamedImpl> transform_;
  std::vector<int64_t> shape_;
};
TORCH_MODULE(Projection);

class StageImpl : public torch::nn::Module {
 public:
  Blocks q_deterministic{nullptr}, p_deterministic{nullptr};
  Gaussian stochastic{nullptr};
  Projection q_projection{nullptr}, p_projection{nullptr};  // null for conv latents (identity) / the top q
};
TORCH_MODULE(Stage);

// The output likelihood p(x|d1) (§2.11).
class LikelihoodHeadImpl : public torch::nn::Module {
 public:
  LikelihoodHeadImpl(Likelihood type, int64_t in, int64_t dataChannels, int64_t mixtures);
  // Parameters of p(x|d1): Bernoulli logits (N,C,H,W) or the DLM's raw 1x1-conv output (N,(3*3+1)*K,H,W).
  Tensor params(const Tensor& d1);
  // Per-example log p(x|params), summed over C,H,W: (N).
  Tensor logProb(const Tensor& x, const Tensor& params) const;
  // The image to show for given parameters: Bernoulli probabilities, or a DLM sample (`sample`) / mixture mean.
  Tensor image(const Tensor& params, bool sample, c10::optional<at::Generator> gen) const;

 private:
  Tensor dlmLogProb(const Tensor& x, const Tensor& params) const;
  Tensor dlmImage(const Tensor& params, bool sample, c10::optional<at::Generator> gen) const;
  Likelihood type_;
  int64_t mixtures_;
  Named net_{nullptr};
};
TORCH_MODULE(LikelihoodHead);

// Static shapes of the network, derived from the config.
struct StageGeometry {
  int64_t inRes = 0, outRes = 0;           // spatial size at the stage's input and output
  int64_t encIn = 0;                       // channels entering encoder block 0
  int64_t decIn = 0;                       // channels entering decoder block 0 (after p_projection)
  std::vector<int64_t> latentShape;        // without batch
  std::vector<int64_t> hShape;             // stage output (C, H, W)
  std::vector<int64_t> decBlockOutRes;     // decoder block j output resolution
  std::vector<int64_t> encBlockInRes;      // encoder block j input resolution
};

class HVAEImpl : public torch::nn::Module {
 public:
  explicit HVAEImpl(ModelConfig config);

  const ModelConfig& config() const { return config_; }
  int numLayers() const { return config_.numLayers(); }
  const StageGeometry& geometry(int i) const { return geometry_[i]; }

  // ---- primitives (layer index i is 0-based, bottom to top) ----
  // h_i = EncBlocks_i(u_i, aux = h_{i-1}); aux may be undefined.
  Tensor encode(int i, const Tensor& u, const Tensor& aux);
  GaussianParams qParams(int i, const Tensor& h);
  // u_{i+1} = q_projection_i(z_i)
  Tensor qProject(int i, const Tensor& z);
  // p(z_i | d_{i+1}) for i < L-1.
  GaussianParams pParams(int i, const Tensor& dAbove);
  // Decoder input of stage i from z_i.
  Tensor pProject(int i, const Tensor& z);
  // d_i and its per-block outputs (skips for the stage below) from the decoder input and the skips from above.
  std::pair<Tensor, std::vector<Tensor>> decode(int i, const Tensor& in, const std::vector<Tensor>& skipsAbove);
  LikelihoodHead& likelihood() { return likelihood_; }
  // Whether any encoder block of stage i has a live skip from h_{i-1} (only with skipConnections 'paper').
  bool encoderHasAux(int i);

  // All weight-normalised layers, in data-dependent-init execution order (§2.4).
  std::vector<std::shared_ptr<WNLayerImpl>> wnLayers();
  // Drop folded weights everywhere (after optimizer steps, loads, device moves).
  void invalidateFolds();
  // Request data-dependent initialisation on the next forward pass (fresh models).
  void requestInit(bool on);
  bool initPending();

 private:
  ModelConfig config_;
  std::vector<StageGeometry> geometry_;
  torch::nn::ModuleList stagesList_{nullptr};
  std::vector<Stage> stages_;
  LikelihoodHead likelihood_{nullptr};
};
TORCH_MODULE(HVAE);

}  // namespace hvae
