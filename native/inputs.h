// Input preparation on the model's device (ALGORITHM.md §1.2): 8-bit pixels to the model's input space, with the
// random transforms (dynamic binarisation, dequantisation) drawn here, in C++, where the model consumes the batch.
#pragma once

#include <torch/torch.h>

namespace hvae {

enum class InputTransform {
  None,        // float input used as is
  Scale,       // v / 255
  Binarize,    // Bernoulli(v / 255): a fresh draw every call (dynamic binarisation)
  Threshold,   // (v / 255) > threshold
  Dequantize,  // ((v / 255) * 255 + u) / 256, u ~ U[0, 1) (the reference's TRANSFORM_DEQUANTIZE_8BIT)
};

// `raw` is uint8 (0..255) or float32 (already in the model's space; only None/Binarize/Threshold apply, with
// values taken as probabilities in [0, 1]). Returns float32 on raw's device.
torch::Tensor prepareInput(const torch::Tensor& raw, InputTransform transform, double threshold,
                           c10::optional<at::Generator> generator);

}  // namespace hvae
