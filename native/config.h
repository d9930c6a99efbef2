// The model config in C++: the same fields as HVAEConfig in ts/config.ts (validated there; checked again here).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hvae {

enum class LatentType { Conv, Dense };
enum class Likelihood { Bernoulli, DLM };
enum class SkipMode { Reference, Paper };

struct StageConfig {
  int64_t channels = 64;
  std::vector<int64_t> kernels;
  std::vector<int64_t> strides;
  LatentType latentType = LatentType::Conv;
  int64_t latentSize = 8;
};

struct ModelConfig {
  std::vector<int64_t> inputShape;  // c, h, w
  std::vector<StageConfig> stages;
  Likelihood likelihood = Likelihood::Bernoulli;
  int64_t mixtureComponents = 10;
  SkipMode skipConnections = SkipMode::Reference;

  int numLayers() const { return static_cast<int>(stages.size()); }
  int64_t dataDims() const { return inputShape[0] * inputShape[1] * inputShape[2]; }
};

}  // namespace hvae
