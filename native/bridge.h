// The tensor bridge, C++ side: JS values to tensors without copying (from_blob over the TypedArray, kept alive
// for the call), results back as Float32Arrays, and small option readers. Only this file and addon.cc/workers.h
// include napi.h.
#pragma once

#include <napi.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "config.h"

namespace hvae {

// A borrowed view of a JS { data: Uint8Array | Float32Array, shape } batch.
struct InputView {
  void* data = nullptr;
  torch::ScalarType dtype = torch::kFloat32;
  std::vector<int64_t> shape;
  bool defined() const { return data != nullptr; }
  // The tensor over the JS memory (no copy). Valid while the TypedArray is referenced; never written to.
  torch::Tensor tensor() const;
};

// Reads a batch and appends a reference to its TypedArray to `keep`, which the caller holds for the duration of
// the computation (the Job's `keep`), so the memory cannot be collected while C++ reads it.
InputView readBatch(const Napi::Value& value, const std::string& what, std::vector<Napi::ObjectReference>& keep);

// Results.
Napi::Float32Array toFloat32Array(Napi::Env env, const torch::Tensor& t);
Napi::Object toJsTensor(Napi::Env env, const torch::Tensor& t);  // { data: Float32Array, shape: number[] }
Napi::Uint8Array toUint8Array(Napi::Env env, const torch::Tensor& t);

// Options.
bool has(const Napi::Object& o, const char* key);
int64_t getInt(const Napi::Object& o, const char* key, int64_t def);
double getDouble(const Napi::Object& o, const char* key, double def);
bool getBool(const Napi::Object& o, const char* key, bool def);
std::string getString(const Napi::Object& o, const char* key, const std::string& def);
std::vector<int64_t> getIntArray(const Napi::Object& o, const char* key);

ModelConfig parseConfig(const Napi::Object& o);
torch::Device parseDevice(const std::string& device);

}  // namespace hvae
