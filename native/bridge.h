// The tensor bridge, C++ side: JS values to tensors (from_blob over the TypedArray for sync calls, one copy on the
// JS thread for async ones, see InputView::own), results back as Float32Arrays, and small option readers. Only
// this file and addon.cc/workers.h include napi.h.
#pragma once

#include <napi.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "config.h"

namespace hvae {

// A view of a JS { data: Uint8Array | Float32Array, shape } batch: borrowed, or owned after own().
struct InputView {
  void* data = nullptr;
  torch::ScalarType dtype = torch::kFloat32;
  std::vector<int64_t> shape;
  torch::Tensor owned;  // set by own(): a copy that no longer depends on the JS memory
  bool defined() const { return data != nullptr; }
  // The tensor over the JS memory (no copy), or the owned copy. A borrowed view is valid while the TypedArray is
  // referenced and its buffer is not detached; never written to.
  torch::Tensor tensor() const;
  // Copies the JS memory into a tensor of its own (on the JS thread, before an async job is queued). A reference
  // keeps a TypedArray from being collected but not its ArrayBuffer from being detached (transfer(),
  // postMessage with a transfer list), which would free the memory under a running job. The copy is the one copy
  // in across the boundary: float32 input is otherwise read in place, uint8 input is converted on the job's thread.
  void own();
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
// An integer option: refused (with `code`, else ERR_HVAE_OPTION) unless a number holding an integer, |n| < 2^63.
int64_t toInt(const Napi::Value& v, const std::string& what, const char* code);
int64_t getInt(const Napi::Object& o, const char* key, int64_t def);
// The same, also refused outside the range of int (what LibTorch's sizes and the bounds' counts take).
int getInt32(const Napi::Object& o, const char* key, int def);
int narrowInt(int64_t v, const std::string& what);
double getDouble(const Napi::Object& o, const char* key, double def);
bool getBool(const Napi::Object& o, const char* key, bool def);
std::string getString(const Napi::Object& o, const char* key, const std::string& def);
std::vector<int64_t> getIntArray(const Napi::Object& o, const char* key, const char* code = "ERR_HVAE_OPTION");

ModelConfig parseConfig(const Napi::Object& o);
torch::Device parseDevice(const std::string& device);

}  // namespace hvae
