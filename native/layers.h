// Building blocks of the HVAE (ALGORITHM.md §2.2 to §2.7), pure LibTorch (no N-API).
//
// Parameter names mirror the official implementation's state_dict (ALGORITHM.md §2.12), e.g.
// `stages.0.q_deterministic.layers.0.conv1.conv.weight_v`, so its checkpoints load by name. The extra level of
// nesting (`conv1` -> `conv`) is what the `Named` holder below provides.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>
#include <utility>

namespace hvae {

using torch::Tensor;

enum class WNKind { Conv, ConvTranspose, Linear };

// Data-dependent initialisation happens only inside an InitScope (the first training step, or an explicit
// initialize call); scoring an uninitialised model never changes its weights. The scope carries the model's
// generator, from which the re-drawn Kaiming weights come, so that a model's initialisation depends on its own
// seed and stream only (not on the process-wide generator, which other models' construction reseeds).
class InitScope {
 public:
  explicit InitScope(c10::optional<at::Generator> generator);
  ~InitScope();
  static bool active();
  static c10::optional<at::Generator> generator();

 private:
  bool previous_;
  c10::optional<at::Generator> previousGenerator_;
};

// How ConvTranspose2d is evaluated (the result is the same up to float rounding):
//  - Native: at::conv_transpose2d plus the crop of §2.2 (what cuDNN does well);
//  - Subpixel: the transposed convolution rewritten as one ordinary convolution producing s*s phases followed by a
//    pixel shuffle. On CPU builds of LibTorch 1.13 the native transposed convolution falls back to im2col with the
//    reference BLAS (about 4 GFLOP/s here) while ordinary convolutions run in oneDNN (about 165 GFLOP/s), so this
//    rewrite is the single largest speed-up of the decoder on CPU.
enum class ConvTransposeImpl { Native, Subpixel, Auto /* subpixel on CPU, native on CUDA */ };
void setConvTransposeImpl(ConvTransposeImpl impl);
ConvTransposeImpl convTransposeImpl();

// CPU fast paths (both on by default; switchable for benchmarks and comparisons):
//  - channels-last (NHWC) activations and folded weights: oneDNN's native layout, no reorder per convolution;
//  - dense layers as 1x1 convolutions: oneDNN's GEMM instead of the reference BLAS Debian's LibTorch links.
void setCpuFastPaths(bool channelsLast, bool linearAsConv);
bool cpuChannelsLast();
bool cpuLinearAsConv();

// The arithmetic of the convolutions and dense layers at inference, for the calls made on this thread while a
// scope is alive. Float (the default) is the contract's float32. BFloat16 is an opt-in speed setting (a deliberate
// difference from ALGORITHM.md, which is float32 throughout): each layer's folded weight and bias are cast to
// bfloat16 once and cached, each layer's input is cast to bfloat16 and its output back to float32 (except inside a
// residual block, where conv1 -> ReLU -> conv2 stays bfloat16: `keepLow`), so everything between the blocks
// (block outputs, residual sums, the heads' outputs, the likelihoods, KL terms, log-mean-exp) stays float32.
// In training (grad mode on) the float32 weights are cast on every forward instead (mixed precision: gradients,
// Adam moments and weights stay float32). Its effect on the scores, AUROCs and training is measured in
// bench/RESULTS.md.
class PrecisionScope {
 public:
  explicit PrecisionScope(at::ScalarType type);
  ~PrecisionScope();
  static at::ScalarType current();

 private:
  at::ScalarType previous_;
};
// Whether `device` runs bfloat16 convolutions natively: CUDA, or a CPU with AVX-512 BF16 or AMX (where oneDNN has
// bfloat16 kernels; elsewhere LibTorch falls back to a slow reference path).
bool nativeBFloat16(const torch::Device& device);

// A weight-normalised layer (W = g * v / ||v||, §2.3) with bias and data-dependent initialisation (§2.4).
//  - Conv: weight_v (out,in,k,k), weight_g (out,1,1,1); TF-style "same" padding (§2.2).
//  - ConvTranspose: weight_v (in,out,k,k), weight_g (1,out,1,1); output n*s after the crop of §2.2.
//  - Linear: weight_v (out,in), weight_g (out,1).
// At inference (grad mode off) the effective weight is folded once and cached until `invalidate()`.
class WNLayerImpl : public torch::nn::Module {
 public:
  WNLayerImpl(WNKind kind, int64_t in, int64_t out, int64_t kernel = 1, int64_t stride = 1);

  // keepLow: under a reduced-precision scope, return the output in that precision (for a caller that feeds it
  // straight into another layer); otherwise the output is float32.
  Tensor forward(const Tensor& x, bool keepLow = false);

  // Forget folded weights (after an optimizer step, a load, or a device move).
  void invalidate();
  // Request data-dependent init on the next forward call.
  void requestInit(bool on) { initPending_ = on; }
  bool initPending() const { return initPending_; }

  WNKind kind() const { return kind_; }
  int64_t in() const { return in_; }
  int64_t out() const { return out_; }
  int64_t kernel() const { return kernel_; }
  int64_t stride() const { return stride_; }

  Tensor weight_v, weight_g, bias;

 private:
  Tensor effectiveWeight() const;
  void dataDependentInit(const Tensor& x);
  Tensor convForward(const Tensor& x, const Tensor& w, const Tensor& b) const;
  Tensor convTransposeNative(const Tensor& x, const Tensor& w, const Tensor& b) const;
  Tensor subpixelWeight(const Tensor& w) const;
  Tensor subpixelIndex(const torch::Device& device) const;

  WNKind kind_;
  int64_t in_, out_, kernel_, stride_;
  bool initPending_ = false;
  // Subpixel geometry (ConvTranspose only): kernel size K' and padding of the phase convolution.
  int64_t subK_ = 0, subPadLo_ = 0, subPadHi_ = 0;
  std::vector<int64_t> subIndex_;  // (s*s, K', K') indices into the flattened k*k kernel, k*k = zero
  mutable Tensor subIndexTensor_;
  // Folded cache.
  mutable Tensor foldedW_, foldedB_;
  mutable bool folded_ = false;
  mutable bool foldedSubpixel_ = false;
  mutable bool foldedChannelsLast_ = false;
  mutable Tensor foldedWLow_, foldedBLow_;  // bfloat16 copies of foldedW_/foldedB_ (PrecisionScope)
};
TORCH_MODULE(WNLayer);

// A module with a single named child; reproduces the official names' extra nesting level.
class NamedImpl : public torch::nn::Module {
 public:
  NamedImpl(const std::string& name, WNLayer layer) : layer_(register_module(name, std::move(layer))) {}
  Tensor forward(const Tensor& x, bool keepLow = false) { return layer_->forward(x, keepLow); }
  WNLayer& layer() { return layer_; }

 private:
  WNLayer layer_;
};
TORCH_MODULE(Named);

// The aux (skip) operation of a residual block (§2.5).
enum class AuxKind { None, Conv, ConvTranspose, Conv1x1 };
struct AuxSpec {
  AuxKind kind = AuxKind::None;
  int64_t channels = 0;  // aux input channels
  int64_t stride = 1;    // resolution ratio
  int64_t kernel = 1;
};

// ResBlockConv2d with gated=false, dropout 0, ReLU (§2.5).
class ResBlockImpl : public torch::nn::Module {
 public:
  ResBlockImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, bool transposed, bool residual, AuxSpec aux);
  Tensor forward(const Tensor& x, const Tensor& aux);

  bool hasAux() const { return !auxOp_.is_empty(); }

 private:
  Tensor residualPath(const Tensor& x, const Tensor& y) const;

  Named conv1_{nullptr}, conv2_{nullptr}, auxOp_{nullptr};
  int64_t in_, out_, stride_;
  bool transposed_, residual_;
};
TORCH_MODULE(ResBlock);

// Softplus with beta = ln 2 and threshold 20, clamped to >= 1e-6 (§2.6): sigma = 1 at r = 0.
Tensor scaleFromRaw(const Tensor& r);

// log N(z; mu, sigma), elementwise, in the same arithmetic as torch.distributions.Normal.log_prob.
Tensor gaussianLogProb(const Tensor& z, const Tensor& mu, const Tensor& sigma);

}  // namespace hvae
