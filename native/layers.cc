#include "layers.h"

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace F = torch::nn::functional;

namespace hvae {

namespace {
std::atomic<int> gConvTImpl{static_cast<int>(ConvTransposeImpl::Auto)};

// TF "same" padding for one dimension (§2.2): returns {lo, hi}.
std::pair<int64_t, int64_t> samePadding(int64_t n, int64_t k, int64_t s) {
  const int64_t out = (n + s - 1) / s;
  const int64_t total = std::max<int64_t>(0, (out - 1) * s + k - n);
  return {total / 2, total - total / 2};
}
}  // namespace

namespace {
thread_local bool tInitActive = false;
thread_local c10::optional<at::Generator> tInitGenerator;
}  // namespace
InitScope::InitScope(c10::optional<at::Generator> generator)
    : previous_(tInitActive), previousGenerator_(tInitGenerator) {
  tInitActive = true;
  tInitGenerator = std::move(generator);
}
InitScope::~InitScope() {
  tInitActive = previous_;
  tInitGenerator = previousGenerator_;
}
bool InitScope::active() { return tInitActive; }
c10::optional<at::Generator> InitScope::generator() { return tInitGenerator; }

namespace {
std::atomic<bool> gChannelsLast{true};
std::atomic<bool> gLinearAsConv{true};
}  // namespace
void setCpuFastPaths(bool channelsLast, bool linearAsConv) {
  gChannelsLast = channelsLast;
  gLinearAsConv = linearAsConv;
}
bool cpuChannelsLast() { return gChannelsLast.load(); }
bool cpuLinearAsConv() { return gLinearAsConv.load(); }

namespace {
thread_local at::ScalarType tPrecision = at::kFloat;
}
PrecisionScope::PrecisionScope(at::ScalarType type) : previous_(tPrecision) { tPrecision = type; }
PrecisionScope::~PrecisionScope() { tPrecision = previous_; }
at::ScalarType PrecisionScope::current() { return tPrecision; }

namespace {
// The CPU's flags as the kernel reports them (no compiler-specific feature names): AVX-512 BF16 or AMX-BF16.
bool cpuFlagsHaveBFloat16() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line);
    std::string w;
    while (words >> w) {
      if (w == "avx512_bf16" || w == "amx_bf16") return true;
    }
    return false;  // the first processor's flags suffice
  }
  return false;
}
}  // namespace

bool nativeBFloat16(const torch::Device& device) {
  if (device.is_cuda()) return true;
  if (const char* v = std::getenv("HVAE_CPU_BF16")) {  // "0": treat the CPU as lacking it (tests, comparisons)
    if (std::string(v) == "0") return false;
  }
  static const bool flags = cpuFlagsHaveBFloat16();
  return flags && at::globalContext().userEnabledMkldnn();
}

void setConvTransposeImpl(ConvTransposeImpl impl) { gConvTImpl = static_cast<int>(impl); }
ConvTransposeImpl convTransposeImpl() { return static_cast<ConvTransposeImpl>(gConvTImpl.load()); }

// ---------------------------------------------------------------------------------------------------------------
// WNLayer
// ---------------------------------------------------------------------------------------------------------------

WNLayerImpl::WNLayerImpl(WNKind kind, int64_t in, int64_t out, int64_t kernel, int64_t stride)
    : kind_(kind), in_(in), out_(out), kernel_(kernel), stride_(stride) {
  switch (kind) {
    case WNKind::Conv:
      weight_v = register_parameter("weight_v", torch::empty({out, in, kernel, kernel}));
      weight_g = register_parameter("weight_g", torch::ones({out, 1, 1, 1}));
      break;
    case WNKind::ConvTranspose:
      weight_v = register_parameter("weight_v", torch::empty({in, out, kernel, kernel}));
      weight_g = register_parameter("weight_g", torch::ones({1, out, 1, 1}));
      break;
    case WNKind::Linear:
      weight_v = register_parameter("weight_v", torch::empty({out, in}));
      weight_g = register_parameter("weight_g", torch::ones({out, 1}));
      break;
  }
  bias = register_parameter("bias", torch::zeros({out}));
  {
    torch::NoGradGuard ng;
    torch::nn::init::kaiming_normal_(weight_v, 0.0, torch::kFanIn, torch::kReLU);
  }

  if (kind == WNKind::ConvTranspose) {
    // Subpixel rewrite (see layers.h). In one dimension, with crop c = floor((k - s) / 2), output j = s*q + r
    // (phase r) is sum_m x[q + a_r - m] * w[s*m + b_r] with a_r = (r + c) / s, b_r = (r + c) % s and
    // 0 <= s*m + b_r < k. As a cross-correlation over offsets u = a_r - m in [uMin, uMax] this is a K'-tap
    // convolution with padding (-uMin, uMax), one output channel block per phase.
    const int64_t s = stride, k = kernel, c = (k - s) / 2;
    int64_t uMin = 0, uMax = 0;
    bool first = true;
    for (int64_t r = 0; r < s; ++r) {
      const int64_t a = (r + c) / s, b = (r + c) % s, M = (k - b + s - 1) / s;
      const int64_t lo = a - M + 1, hi = a;
      uMin = first ? lo : std::min(uMin, lo);
      uMax = first ? hi : std::max(uMax, hi);
      first = false;
    }
    subK_ = uMax - uMin + 1;
    subPadLo_ = -uMin;
    subPadHi_ = uMax;
    subIndex_.assign(s * s * subK_ * subK_, k * k);
    auto tap = [&](int64_t r, int64_t t) -> int64_t {  // kernel index for phase r and tap t, or -1
      const int64_t a = (r + c) / s, b = (r + c) % s;
      const int64_t m = a - (t + uMin);
      const int64_t idx = s * m + b;
      return (m >= 0 && idx < k) ? idx : -1;
    };
    for (int64_t rh = 0; rh < s; ++rh)
      for (int64_t rw = 0; rw < s; ++rw)
        for (int64_t th = 0; th < subK_; ++th)
          for (int64_t tw = 0; tw < subK_; ++tw) {
            const int64_t ih = tap(rh, th), iw = tap(rw, tw);
            const int64_t phase = rh * s + rw;
            subIndex_[((phase * subK_) + th) * subK_ + tw] = (ih >= 0 && iw >= 0) ? ih * k + iw : k * k;
          }
  }
}

void WNLayerImpl::invalidate() {
  folded_ = false;
  foldedW_ = Tensor();
  foldedB_ = Tensor();
  foldedWLow_ = Tensor();
  foldedBLow_ = Tensor();
  subIndexTensor_ = Tensor();
}

Tensor WNLayerImpl::effectiveWeight() const {
  // torch._weight_norm: v * (g / ||v||) with the norm over every axis but the output-unit axis, no epsilon.
  switch (kind_) {
    case WNKind::Conv:
      return weight_v * (weight_g / weight_v.norm(2, {1, 2, 3}, true));
    case WNKind::ConvTranspose:
      return weight_v * (weight_g / weight_v.norm(2, {0, 2, 3}, true));
    case WNKind::Linear:
    default:
      return weight_v * (weight_g / weight_v.norm(2, {1}, true));
  }
}

Tensor WNLayerImpl::subpixelIndex(const torch::Device& device) const {
  if (!subIndexTensor_.defined() || subIndexTensor_.device() != device) {
    // A normal (non-inference) tensor even when first needed under InferenceMode: training reuses it in autograd.
    c10::InferenceMode off(false);
    subIndexTensor_ = torch::tensor(subIndex_, torch::TensorOptions().dtype(torch::kLong)).to(device);
  }
  return subIndexTensor_;
}

Tensor WNLayerImpl::subpixelWeight(const Tensor& w) const {
  // w: (in, out, k, k) -> (out * s*s, in, K', K') with output channel o*s*s + phase (the pixel-shuffle order).
  const int64_t s = stride_, k = kernel_;
  Tensor flat = w.transpose(0, 1).reshape({out_, in_, k * k});
  flat = torch::cat({flat, torch::zeros({out_, in_, 1}, flat.options())}, 2);
  Tensor g = flat.index_select(2, subpixelIndex(w.device()));
  return g.view({out_, in_, s * s, subK_, subK_}).permute({0, 2, 1, 3, 4}).reshape({out_ * s * s, in_, subK_, subK_});
}

Tensor WNLayerImpl::convForward(const Tensor& x, const Tensor& w, const Tensor& b) const {
  const auto ph = samePadding(x.size(2), kernel_, stride_);
  const auto pw = samePadding(x.size(3), kernel_, stride_);
  Tensor in = x;
  if (ph.first != ph.second || pw.first != pw.second) {
    // Builtin padding is symmetric (lo); the extra row/column goes to the bottom/right (§2.2).
    in = F::pad(x, F::PadFuncOptions({0, pw.second - pw.first, 0, ph.second - ph.first}));
  }
  return at::conv2d(in, w, b, {stride_, stride_}, {ph.first, pw.first});
}

Tensor WNLayerImpl::convTransposeNative(const Tensor& x, const Tensor& w, const Tensor& b) const {
  // ConvTranspose2d without padding gives (n-1)*s + k; the crop removes floor(P/2) top/left and ceil(P/2)
  // bottom/right with P = k - s (§2.2). Built-in padding p removes p on both sides, the rest is narrowed.
  const int64_t P = std::max<int64_t>(0, kernel_ - stride_), lo = P / 2;
  Tensor y = at::conv_transpose2d(x, w, b, {stride_, stride_}, {lo, lo});
  const int64_t oh = x.size(2) * stride_, ow = x.size(3) * stride_;
  if (y.size(2) != oh || y.size(3) != ow) y = y.narrow(2, 0, oh).narrow(3, 0, ow);
  return y;
}

void WNLayerImpl::dataDependentInit(const Tensor& x) {
  // §2.4: v ~ Kaiming-normal (fan_in, ReLU gain), g = 1, b = 0; y = layer(x) (pre-crop for transposed convs);
  // per output unit m = mean, s2 = unbiased variance; g = 1/sqrt(s2 + 1e-8), b = -m*g.
  torch::NoGradGuard ng;
  // kaiming_normal_(fan_in, relu) with the model's generator: std = sqrt(2 / fan_in), where fan_in is dim 1 times
  // the kernel area, as torch computes it (also for transposed convs, whose dim 1 is the output channels).
  const int64_t fanIn = weight_v.size(1) * (weight_v.dim() > 2 ? weight_v[0][0].numel() : 1);
  weight_v.normal_(0.0, std::sqrt(2.0 / static_cast<double>(fanIn)), InitScope::generator());
  weight_g.fill_(1.0);
  bias.zero_();
  Tensor w = effectiveWeight();
  Tensor y;
  std::vector<int64_t> dims;
  switch (kind_) {
    case WNKind::Conv:
      y = convForward(x, w, bias);
      dims = {0, 2, 3};
      break;
    case WNKind::ConvTranspose:
      y = at::conv_transpose2d(x, w, bias, {stride_, stride_}, {0, 0});
      dims = {0, 2, 3};
      break;
    case WNKind::Linear:
      y = at::linear(x, w, bias);
      dims = {0};
      break;
  }
  Tensor m = y.mean(dims);
  Tensor v = y.var(dims, /*unbiased=*/true);
  Tensor g = 1.0 / torch::sqrt(v + 1e-8);
  weight_g.copy_(g.view(weight_g.sizes()));
  bias.copy_(-m * g);
  initPending_ = false;
  invalidate();
}

Tensor WNLayerImpl::forward(const Tensor& x, bool keepLow) {
  if (initPending_ && InitScope::active()) dataDependentInit(x);
  const bool useFold = !torch::GradMode::is_enabled();
  const ConvTransposeImpl impl = convTransposeImpl();
  const bool subpixel = kind_ == WNKind::ConvTranspose &&
                        (impl == ConvTransposeImpl::Subpixel || (impl == ConvTransposeImpl::Auto && x.is_cpu()));
  const bool channelsLast = x.is_cpu() && cpuChannelsLast();
  Tensor w, b;
  if (useFold && folded_ && foldedSubpixel_ == subpixel && foldedChannelsLast_ == channelsLast && foldedW_.device() == x.device()) {
    w = foldedW_;
    b = foldedB_;
  } else {
    w = effectiveWeight();
    b = bias;
    if (subpixel) {
      w = subpixelWeight(w);
      b = bias.repeat_interleave(stride_ * stride_);
    }
    if (useFold && channelsLast && (kind_ == WNKind::Conv || subpixel)) w = w.contiguous(at::MemoryFormat::ChannelsLast);
    if (useFold) {
      foldedW_ = w;
      foldedB_ = b;
      foldedWLow_ = Tensor();
      foldedBLow_ = Tensor();
      foldedSubpixel_ = subpixel;
      foldedChannelsLast_ = channelsLast;
      folded_ = true;
    }
  }
  // Reduced precision (PrecisionScope), output back to float32 unless keepLow. At inference the weights are cast
  // once and cached; in training the float32 weights are cast on every forward (the cast is part of the graph, so
  // their gradients and Adam's update stay float32: mixed precision with float32 master weights).
  const at::ScalarType precision = PrecisionScope::current();
  const bool low = precision != at::kFloat;
  Tensor in = x;
  if (low) {
    if (!useFold) {
      w = w.to(precision);
      b = b.to(precision);
    } else {
      if (!foldedWLow_.defined() || foldedWLow_.scalar_type() != precision) {
        foldedWLow_ = w.to(precision);
        foldedBLow_ = b.to(precision);
      }
      w = foldedWLow_;
      b = foldedBLow_;
    }
    if (x.scalar_type() != precision) in = x.to(precision);
  }
  Tensor y;
  switch (kind_) {
    case WNKind::Conv:
      y = convForward(in, w, b);
      break;
    case WNKind::ConvTranspose:
      if (!subpixel) {
        y = convTransposeNative(in, w, b);
      } else if (subPadLo_ != subPadHi_) {
        in = F::pad(in, F::PadFuncOptions({subPadLo_, subPadHi_, subPadLo_, subPadHi_}));
        y = at::pixel_shuffle(at::conv2d(in, w, b), stride_);
      } else {
        y = at::pixel_shuffle(at::conv2d(in, w, b, {1, 1}, {subPadLo_, subPadLo_}), stride_);
      }
      break;
    case WNKind::Linear:
    default:
      if (x.is_cpu() && cpuLinearAsConv()) {
        // y = x W^T + b as a 1x1 convolution over a 1x1 image: the same sums, computed by oneDNN.
        y = at::conv2d(in.reshape({x.size(0), in_, 1, 1}), w.view({out_, in_, 1, 1}), b).view({x.size(0), out_});
      } else {
        y = at::linear(in, w, b);
      }
      break;
  }
  return low && !keepLow ? y.to(at::kFloat) : y;
}

// ---------------------------------------------------------------------------------------------------------------
// ResBlock
// ---------------------------------------------------------------------------------------------------------------

ResBlockImpl::ResBlockImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, bool transposed, bool residual,
                           AuxSpec aux)
    : in_(in), out_(out), stride_(stride), transposed_(transposed && stride > 1), residual_(residual) {
  conv1_ = register_module("conv1", Named("conv", WNLayer(WNKind::Conv, in, out, kernel, 1)));
  switch (aux.kind) {
    case AuxKind::None:
      break;
    case AuxKind::Conv:
      auxOp_ = register_module("aux_op", Named("conv", WNLayer(WNKind::Conv, aux.channels, out, aux.kernel, aux.stride)));
      break;
    case AuxKind::ConvTranspose:
      auxOp_ = register_module(
          "aux_op", Named("conv", WNLayer(WNKind::ConvTranspose, aux.channels, out, aux.kernel, aux.stride)));
      break;
    case AuxKind::Conv1x1:
      auxOp_ = register_module("aux_op", Named("conv", WNLayer(WNKind::Conv, aux.channels, out, 1, 1)));
      break;
  }
  conv2_ = register_module(
      "conv2", Named("conv", WNLayer(transposed_ ? WNKind::ConvTranspose : WNKind::Conv, out, out, kernel, stride)));
}

Tensor ResBlockImpl::residualPath(const Tensor& x, const Tensor& y) const {
  // §2.5: zero-pad channels (appended) when growing, crop when shrinking; AvgPool 3x3 stride s after zero-padding
  // bottom/right ("same" padding with P = 1; zeros counted, divisor 9) when the spatial size shrinks.
  Tensor r = x;
  if (out_ > in_) {
    r = F::pad(r, F::PadFuncOptions({0, 0, 0, 0, 0, out_ - in_}));
  } else if (out_ < in_) {
    r = r.narrow(1, 0, out_);
  }
  if (y.size(2) < x.size(2)) {
    const int64_t s = x.size(2) / y.size(2);
    const auto ph = samePadding(x.size(2), 3, s);
    const auto pw = samePadding(x.size(3), 3, s);
    r = F::pad(r, F::PadFuncOptions({pw.first, pw.second, ph.first, ph.second}));
    r = at::avg_pool2d(r, {3, 3}, {s, s});
  }
  return r;
}

Tensor ResBlockImpl::forward(const Tensor& x, const Tensor& aux) {
  Tensor a = residual_ ? torch::relu(x) : x;
  // Under a reduced-precision scope the block's inner activation stays in that precision (conv1 -> relu -> conv2);
  // the block's output and the residual sum are float32.
  Tensor y = conv1_->forward(a, /*keepLow=*/true);
  if (!auxOp_.is_empty() && aux.defined()) y = y + auxOp_->forward(torch::relu(aux), /*keepLow=*/true);
  y = torch::relu(y);
  y = conv2_->forward(y);
  if (residual_ && y.size(2) <= x.size(2)) y = y + residualPath(x, y);
  return y;
}

// ---------------------------------------------------------------------------------------------------------------

Tensor scaleFromRaw(const Tensor& r) {
  static const double kBeta = std::log(2.0);
  return torch::softplus(r, kBeta, 20.0).clamp_min(1e-6);
}

Tensor gaussianLogProb(const Tensor& z, const Tensor& mu, const Tensor& sigma) {
  static const double kHalfLog2Pi = std::log(std::sqrt(2.0 * M_PI));
  return -(z - mu).pow(2) / (2 * sigma.pow(2)) - sigma.log() - kHalfLog2Pi;
}

}  // namespace hvae
