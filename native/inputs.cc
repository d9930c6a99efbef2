#include "inputs.h"

#include "errors.h"

namespace hvae {

torch::Tensor prepareInput(const torch::Tensor& raw, InputTransform transform, double threshold,
                           c10::optional<at::Generator> generator) {
  const bool u8 = raw.scalar_type() == torch::kUInt8;
  torch::Tensor x = u8 ? raw.to(torch::kFloat32).div_(255.0) : raw.to(torch::kFloat32);
  switch (transform) {
    case InputTransform::None:
    case InputTransform::Scale:
      return x;
    case InputTransform::Binarize:
      check(u8 || (x.min().item<float>() >= 0 && x.max().item<float>() <= 1), "ERR_HVAE_OPTION",
            "binarize needs float input in [0, 1] (probabilities) or uint8 pixels");
      return torch::bernoulli(x, generator);
    case InputTransform::Threshold:
      return (x > threshold).to(torch::kFloat32);
    case InputTransform::Dequantize: {
      check(u8, "ERR_HVAE_OPTION", "dequantize needs uint8 pixels");
      torch::Tensor u = torch::rand(x.sizes(), generator, x.options());
      return x.mul_(255.0).add_(u).div_(256.0);
    }
  }
  return x;
}

}  // namespace hvae
