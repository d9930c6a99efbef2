#include "model.h"

#include "errors.h"

namespace hvae {

namespace {
int64_t prod(const std::vector<int64_t>& v) {
  int64_t p = 1;
  for (auto x : v) p *= x;
  return p;
}

// The aux op of a block whose conv1 output is (C, res) and whose aux input is (auxC, auxRes) (§2.5).
AuxSpec auxFor(int64_t auxC, int64_t auxRes, int64_t res, int64_t kernel, SkipMode mode) {
  AuxSpec a;
  a.channels = auxC;
  a.kernel = kernel;
  if (auxRes > res) {
    a.kind = AuxKind::Conv;
    a.stride = auxRes / res;
  } else if (auxRes < res) {
    a.kind = AuxKind::ConvTranspose;
    a.stride = res / auxRes;
  } else {
    // Equal spatial size. The official code uses a 1x1 conv only when the channels differ and otherwise drops
    // the skip entirely ([BUG] §8 item 1); SkipMode::Paper keeps every skip live with a 1x1 conv.
    a.kind = AuxKind::Conv1x1;
    a.stride = 1;
    a.kernel = 1;
  }
  return a;
}
}  // namespace

// ---------------------------------------------------------------------------------------------------------------

GaussianImpl::GaussianImpl(LatentType type, int64_t size, int64_t qIn, int64_t pIn, bool hasPrior)
    : type_(type), size_(size) {
  if (type == LatentType::Conv) {
    inQ_ = register_module("in_transform_q", Named("conv", WNLayer(WNKind::Conv, qIn, 2 * size, 3, 1)));
    if (hasPrior) inP_ = register_module("in_transform_p", Named("conv", WNLayer(WNKind::Conv, pIn, 2 * size, 3, 1)));
  } else {
    inQ_ = register_module("in_transform_q", Named("linear", WNLayer(WNKind::Linear, qIn, 2 * size)));
    if (hasPrior) inP_ = register_module("in_transform_p", Named("linear", WNLayer(WNKind::Linear, pIn, 2 * size)));
  }
}

GaussianParams GaussianImpl::params(Named& net, const Tensor& h) {
  // ReLU on the input, the parameter net, then [mu | r] and sigma = softplus_{ln 2}(r) clamped (§2.6).
  Tensor a = torch::relu(h);
  if (type_ == LatentType::Dense) a = a.flatten(1);
  Tensor out = net->forward(a);
  auto parts = out.chunk(2, 1);
  return {parts[0], scaleFromRaw(parts[1])};
}

GaussianParams GaussianImpl::q(const Tensor& h) { return params(inQ_, h); }
GaussianParams GaussianImpl::p(const Tensor& d) { return params(inP_, d); }

ProjectionImpl::ProjectionImpl(int64_t in, std::vector<int64_t> shape) : shape_(std::move(shape)) {
  transform_ = register_module("transform", Named("linear", WNLayer(WNKind::Linear, in, prod(shape_))));
}

Tensor ProjectionImpl::forward(const Tensor& z) {
  Tensor y = transform_->forward(z);
  std::vector<int64_t> s{y.size(0)};
  s.insert(s.end(), shape_.begin(), shape_.end());
  return y.view(s);
}

// ---------------------------------------------------------------------------------------------------------------

LikelihoodHeadImpl::LikelihoodHeadImpl(Likelihood type, int64_t in, int64_t dataChannels, int64_t mixtures)
    : type_(type), mixtures_(mixtures) {
  if (type == Likelihood::Bernoulli) {
    net_ = register_module("parameter_net", Named("conv", WNLayer(WNKind::Conv, in, dataChannels, 3, 1)));
  } else {
    net_ = register_module("parameter_net", Named("conv", WNLayer(WNKind::Conv, in, (3 * 3 + 1) * mixtures, 1, 1)));
  }
}

Tensor LikelihoodHeadImpl::params(const Tensor& d1) {
  // Bernoulli: logits = conv3x3(ReLU(d1)); DLM: 1x1 conv on d1 with no activation ([QUIRK] §2.10).
  return type_ == Likelihood::Bernoulli ? net_->forward(torch::relu(d1)) : net_->forward(d1);
}

Tensor LikelihoodHeadImpl::logProb(const Tensor& x, const Tensor& params) const {
  if (type_ == Likelihood::Bernoulli) {
    // log p = sum x*l - softplus(l) = -BCEWithLogits (what torch.distributions.Bernoulli.log_prob computes).
    Tensor lp = -torch::binary_cross_entropy_with_logits(params, x, {}, {}, at::Reduction::None);
    return lp.flatten(1).sum(1);
  }
  return dlmLogProb(x, params);
}

Tensor LikelihoodHeadImpl::dlmLogProb(const Tensor& x, const Tensor& params) const {
  // Discretized logistic mixture, PixelCNN++ form (§2.11). Channel layout of `params` (N, 10K, H, W):
  // [0, K) mixture logits; for colour c, base = K + 3Kc: means, log-scales (clamped at -7), raw coefficients.
  const int64_t K = mixtures_;
  Tensor xt = (2 * x - 1).unsqueeze(2);  // (N,3,1,H,W) in [-1, 1)
  Tensor logits = params.narrow(1, 0, K);
  auto block = [&](int64_t c, int64_t j) { return params.narrow(1, K + 3 * K * c + K * j, K); };
  Tensor xr = xt.select(1, 0), xg = xt.select(1, 1), xb = xt.select(1, 2);  // (N,1,H,W)
  std::vector<Tensor> means, logScales;
  Tensor aR = torch::tanh(block(0, 2)), aG = torch::tanh(block(1, 2)), aB = torch::tanh(block(2, 2));
  // Means autoregressive on the true sub-pixels: slot 0 is G|R, slot 1 is B|R, slot 2 is B|G.
  means.push_back(block(0, 0));
  means.push_back(block(1, 0) + aR * xr);
  means.push_back(block(2, 0) + aG * xr + aB * xg);
  Tensor total;
  static const double kLog127_5 = std::log(127.5);
  for (int64_t c = 0; c < 3; ++c) {
    Tensor ls = block(c, 1).clamp_min(-7.0);
    Tensor xc = xt.select(1, c);  // (N,1,H,W)
    Tensor t = xc - means[c];
    Tensor inv = torch::exp(-ls);
    Tensor pPlus = inv * (t + 1.0 / 255.0);
    Tensor pMinus = inv * (t - 1.0 / 255.0);
    Tensor cdfDelta = torch::sigmoid(pPlus) - torch::sigmoid(pMinus);
    Tensor logCdfPlus = pPlus - torch::softplus(pPlus);
    Tensor log1mCdfMinus = -torch::softplus(pMinus);
    Tensor mid = inv * t;
    Tensor logPdfMid = mid - ls - 2.0 * torch::softplus(mid);
    Tensor inner = torch::where(cdfDelta > 1e-5, torch::log(cdfDelta.clamp_min(1e-12)), logPdfMid - kLog127_5);
    Tensor lp = torch::where(xc < -0.999, logCdfPlus, torch::where(xc > 0.999, log1mCdfMinus, inner));
    total = c == 0 ? lp : total + lp;
  }
  Tensor perPixel = torch::logsumexp(total + torch::log_softmax(logits, 1), 1);  // (N,H,W)
  return perPixel.flatten(1).sum(1);
}

Tensor LikelihoodHeadImpl::image(const Tensor& params, bool sample, c10::optional<at::Generator> gen) const {
  if (type_ == Likelihood::Bernoulli) {
    Tensor p = torch::sigmoid(params);
    return sample ? torch::bernoulli(p, gen) : p;
  }
  return dlmImage(params, sample, gen);
}

Tensor LikelihoodHeadImpl::dlmImage(const Tensor& params, bool sample, c10::optional<at::Generator> gen) const {
  const int64_t K = mixtures_;
  Tensor logits = params.narrow(1, 0, K);
  auto block = [&](int64_t c, int64_t j) { return params.narrow(1, K + 3 * K * c + K * j, K); };
  Tensor aR = torch::tanh(block(0, 2)), aG = torch::tanh(block(1, 2)), aB = torch::tanh(block(2, 2));
  if (!sample) {
    // Mixture mean, autoregressive on the means of the earlier colours.
    Tensor w = torch::softmax(logits, 1);
    Tensor r = (w * block(0, 0)).sum(1, true).clamp(-1, 1);
    Tensor g = (w * (block(1, 0) + aR * r)).sum(1, true).clamp(-1, 1);
    Tensor b = (w * (block(2, 0) + aG * r + aB * g)).sum(1, true).clamp(-1, 1);
    return (torch::cat({r, g, b}, 1) + 1) / 2;
  }
  // Gumbel-max over the mixture logits, then a logistic sample per colour (§2.11, "Sampling").
  Tensor u = torch::rand(logits.sizes(), gen, logits.options()) * (1 - 2e-5) + 1e-5;
  Tensor sel = (logits - torch::log(-torch::log(u))).argmax(1, true);  // (N,1,H,W)
  auto pick = [&](const Tensor& t) { return t.gather(1, sel); };
  auto logistic = [&](const Tensor& mean, const Tensor& ls) {
    Tensor v = torch::rand(mean.sizes(), gen, mean.options()) * (1 - 2e-5) + 1e-5;
    return (mean + torch::exp(ls) * (torch::log(v) - torch::log(1 - v))).clamp(-1, 1);
  };
  Tensor r = logistic(pick(block(0, 0)), pick(block(0, 1).clamp_min(-7)));
  Tensor g = logistic(pick(block(1, 0)) + pick(aR) * r, pick(block(1, 1).clamp_min(-7)));
  Tensor b = logistic(pick(block(2, 0)) + pick(aG) * r + pick(aB) * g, pick(block(2, 1).clamp_min(-7)));
  return (torch::cat({r, g, b}, 1) + 1) / 2;
}

// ---------------------------------------------------------------------------------------------------------------

HVAEImpl::HVAEImpl(ModelConfig config) : config_(std::move(config)) {
  const int L = config_.numLayers();
  check(L >= 1, "ERR_HVAE_OPTION", "a model needs at least one stage");
  check(config_.inputShape.size() == 3, "ERR_HVAE_OPTION", "inputShape must be [c, h, w]");
  for (auto d : config_.inputShape) check(d >= 1, "ERR_HVAE_OPTION", "inputShape entries must be >= 1");
  const SkipMode skip = config_.skipConnections;

  // Geometry, bottom-up.
  geometry_.resize(L);
  int64_t res = config_.inputShape[1];
  for (int i = 0; i < L; ++i) {
    const StageConfig& s = config_.stages[i];
    check(!s.kernels.empty() && s.kernels.size() == s.strides.size(), "ERR_HVAE_OPTION",
          "stage " + std::to_string(i) + ": kernels and strides must be non-empty and equally long");
    StageGeometry& g = geometry_[i];
    g.inRes = res;
    for (auto k : s.kernels) check(k >= 1, "ERR_HVAE_OPTION", "stage " + std::to_string(i) + ": kernels must be >= 1");
    for (auto st : s.strides) {
      check(st >= 1, "ERR_HVAE_OPTION", "stage " + std::to_string(i) + ": strides must be >= 1");
      g.encBlockInRes.push_back(res);
      res = (res + st - 1) / st;
    }
    g.outRes = res;
    g.hShape = {s.channels, g.outRes, g.outRes};
    g.latentShape = s.latentType == LatentType::Conv ? std::vector<int64_t>{s.latentSize, g.outRes, g.outRes}
                                                      : std::vector<int64_t>{s.latentSize};
    if (i == 0) {
      g.encIn = config_.inputShape[0];
    } else {
      const StageConfig& below = config_.stages[i - 1];
      g.encIn = below.latentType == LatentType::Conv ? below.latentSize : below.channels;
    }
    g.decIn = s.latentType == LatentType::Conv ? s.latentSize : s.channels;
    int64_t r = g.outRes;
    for (size_t j = 0; j < s.strides.size(); ++j) {
      r = r * s.strides[s.strides.size() - 1 - j];
      g.decBlockOutRes.push_back(r);
    }
  }

  stagesList_ = register_module("stages", torch::nn::ModuleList());
  for (int i = 0; i < L; ++i) {
    const StageConfig& s = config_.stages[i];
    const StageGeometry& g = geometry_[i];
    Stage stage;
    const size_t n = s.kernels.size();

    // Encoder: block 0 of stage 1 has no residual (raw x into conv1); all others are residual. Aux = h_{i-1}.
    auto enc = Blocks();
    for (size_t j = 0; j < n; ++j) {
      AuxSpec aux;
      if (i > 0) {
        const StageGeometry& gb = geometry_[i - 1];
        const int64_t convRes = g.encBlockInRes[j];
        aux = auxFor(config_.stages[i - 1].channels, gb.outRes, convRes, s.kernels[j], skip);
        if (aux.kind == AuxKind::Conv1x1 && config_.stages[i - 1].channels == s.channels && skip == SkipMode::Reference) {
          aux.kind = AuxKind::None;  // identical shapes: the reference drops the skip
        }
      }
      enc->add(ResBlock(j == 0 ? g.encIn : s.channels, s.channels, s.kernels[j], s.strides[j], false,
                        !(i == 0 && j == 0), aux));
    }
    stage->q_deterministic = stage->register_module("q_deterministic", enc);

    // Decoder: the reversed block list; block 0 has no residual; the upsampling block is a transposed conv.
    auto dec = Blocks();
    for (size_t j = 0; j < n; ++j) {
      const size_t e = n - 1 - j;
      const int64_t inRes = j == 0 ? g.outRes : g.decBlockOutRes[j - 1];
      AuxSpec aux;
      if (i < L - 1 && j < config_.stages[i + 1].kernels.size()) {
        const StageGeometry& ga = geometry_[i + 1];
        aux = auxFor(config_.stages[i + 1].channels, ga.decBlockOutRes[j], inRes, s.kernels[e], skip);
        if (aux.kind == AuxKind::Conv1x1 && config_.stages[i + 1].channels == s.channels && skip == SkipMode::Reference) {
          aux.kind = AuxKind::None;
        }
      }
      const bool residual = j > 0 && s.strides[e] == 1;
      dec->add(ResBlock(j == 0 ? g.decIn : s.channels, s.channels, s.kernels[e], s.strides[e], true, residual, aux));
    }

    // Stochastic layer: q from h_i; p from d_{i+1} (not for the top, whose prior is N(0, I)).
    int64_t qIn = s.latentType == LatentType::Conv ? s.channels : prod(g.hShape);
    int64_t pIn = 0;
    if (i < L - 1) {
      const StageConfig& a = config_.stages[i + 1];
      pIn = s.latentType == LatentType::Conv ? a.channels : a.channels * g.outRes * g.outRes;
    }
    stage->stochastic = stage->register_module("stochastic", Gaussian(s.latentType, s.latentSize, qIn, pIn, i < L - 1));
    stage->p_deterministic = stage->register_module("p_deterministic", dec);
    if (s.latentType == LatentType::Dense) {
      // The top q_projection of the official code is dead (its output is unused, §8 item 10): left out.
      if (i < L - 1) stage->q_projection = stage->register_module("q_projection", Projection(s.latentSize, g.hShape));
      stage->p_projection = stage->register_module("p_projection", Projection(s.latentSize, g.hShape));
    }
    stagesList_->push_back(stage);
    stages_.push_back(stage);
  }
  likelihood_ = register_module(
      "likelihood", LikelihoodHead(config_.likelihood, config_.stages[0].channels, config_.inputShape[0],
                                   config_.mixtureComponents));
}

Tensor HVAEImpl::encode(int i, const Tensor& u, const Tensor& aux) {
  auto& blocks = *stages_[i]->q_deterministic;
  Tensor h = u;
  for (size_t j = 0; j < blocks.size(); ++j) h = blocks.at(j).forward(h, aux);
  return h;
}

GaussianParams HVAEImpl::qParams(int i, const Tensor& h) { return stages_[i]->stochastic->q(h); }

Tensor HVAEImpl::qProject(int i, const Tensor& z) {
  return stages_[i]->q_projection.is_empty() ? z : stages_[i]->q_projection->forward(z);
}

GaussianParams HVAEImpl::pParams(int i, const Tensor& dAbove) { return stages_[i]->stochastic->p(dAbove); }

Tensor HVAEImpl::pProject(int i, const Tensor& z) {
  return stages_[i]->p_projection.is_empty() ? z : stages_[i]->p_projection->forward(z);
}

std::pair<Tensor, std::vector<Tensor>> HVAEImpl::decode(int i, const Tensor& in, const std::vector<Tensor>& skipsAbove) {
  auto& blocks = *stages_[i]->p_deterministic;
  std::vector<Tensor> outs;
  outs.reserve(blocks.size());
  Tensor d = in;
  for (size_t j = 0; j < blocks.size(); ++j) {
    const Tensor aux = j < skipsAbove.size() ? skipsAbove[j] : Tensor();
    d = blocks.at(j).forward(d, aux);
    outs.push_back(d);
  }
  return {d, std::move(outs)};
}

bool HVAEImpl::encoderHasAux(int i) {
  if (i <= 0 || i >= numLayers()) return false;
  auto& blocks = *stages_[i]->q_deterministic;
  for (size_t j = 0; j < blocks.size(); ++j)
    if (blocks.at(j).hasAux()) return true;
  return false;
}

std::vector<std::shared_ptr<WNLayerImpl>> HVAEImpl::wnLayers() {
  std::vector<std::shared_ptr<WNLayerImpl>> out;
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto p = std::dynamic_pointer_cast<WNLayerImpl>(m)) out.push_back(p);
  }
  return out;
}

void HVAEImpl::invalidateFolds() {
  for (auto& l : wnLayers()) l->invalidate();
}

void HVAEImpl::requestInit(bool on) {
  for (auto& l : wnLayers()) l->requestInit(on);
}

bool HVAEImpl::initPending() {
  for (auto& l : wnLayers())
    if (l->initPending()) return true;
  return false;
}

}  // namespace hvae
