// Version-specific LibTorch code lives here and only here, so that the addon builds unchanged against Debian's
// LibTorch 1.13 (CPU) and current LibTorch 2.x with CUDA.
#pragma once

#include <torch/torch.h>
#include <torch/version.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <string>

namespace hvae {
namespace compat {

inline std::string torchVersion() { return TORCH_VERSION; }

// Whether the LibTorch we were built against contains the CUDA backend, and whether a device is usable now.
inline bool cudaAvailable() { return torch::cuda::is_available(); }
inline int cudaDeviceCount() { return static_cast<int>(torch::cuda::device_count()); }
inline bool cudnnAvailable() { return torch::cuda::cudnn_is_available(); }

// cuDNN's version as an integer (e.g. 90100), 0 if absent. at::detail::getCUDAHooks() exists in both 1.13 and 2.x.
inline long cudnnVersion() {
  if (!cudnnAvailable()) return 0;
  try {
    return at::detail::getCUDAHooks().versionCuDNN();
  } catch (...) {
    return 0;
  }
}

// CUDA runtime version the LibTorch was built with (e.g. 12040), 0 for CPU builds.
inline int cudaVersion() {
  if (!cudaAvailable()) return 0;
  try {
    return at::detail::getCUDAHooks().versionCUDART();
  } catch (...) {
    return 0;
  }
}

// A generator for `device`: a private CPU generator (so two models never share a stream), or the device's
// default generator for CUDA (creating private CUDA generators needs the CUDA headers, which CPU builds lack).
inline at::Generator makeGenerator(const torch::Device& device, uint64_t seed) {
  if (device.is_cpu()) return at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Generator gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_current_seed(seed);
  return gen;
}

// Enable cuDNN autotuning and (optionally) TF32 for CUDA convolutions.
inline void setCudnnBenchmark(bool on) { at::globalContext().setBenchmarkCuDNN(on); }
inline bool cudnnBenchmark() { return at::globalContext().benchmarkCuDNN(); }
inline void setAllowTF32(bool on) {
  at::globalContext().setAllowTF32CuDNN(on);
  at::globalContext().setAllowTF32CuBLAS(on);
}

}  // namespace compat
}  // namespace hvae

// Also version-dependent, and handled where it is used: c10::Allocator's interface (allocate() const in 1.13,
// non-const from 2.3, plus copy_data()); native/allocator.cc declares both forms.
