#include "bridge.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "compat.h"
#include "errors.h"

namespace hvae {

torch::Tensor InputView::tensor() const {
  if (owned.defined()) return owned;
  // from_blob wants a mutable pointer; nothing writes through it.
  return torch::from_blob(data, shape, torch::TensorOptions().dtype(dtype));
}

void InputView::own() {
  if (defined() && !owned.defined()) owned = tensor().clone();
}

InputView readBatch(const Napi::Value& value, const std::string& what, std::vector<Napi::ObjectReference>& keep) {
  InputView v;
  check(value.IsObject(), "ERR_HVAE_DTYPE", what + " must be an object { data, shape }");
  Napi::Object o = value.As<Napi::Object>();
  Napi::Value data = o.Get("data");
  check(data.IsTypedArray(), "ERR_HVAE_DTYPE", what + ".data must be a Uint8Array or Float32Array");
  Napi::TypedArray ta = data.As<Napi::TypedArray>();
  size_t elem = 0;
  switch (ta.TypedArrayType()) {
    case napi_uint8_array:
      v.dtype = torch::kUInt8;
      elem = 1;
      break;
    case napi_float32_array:
      v.dtype = torch::kFloat32;
      elem = 4;
      break;
    default:
      fail("ERR_HVAE_DTYPE", what + ".data must be a Uint8Array or Float32Array");
  }
  Napi::ArrayBuffer buf = ta.ArrayBuffer();
  v.data = static_cast<uint8_t*>(buf.Data()) + ta.ByteOffset();
  v.shape = getIntArray(o, "shape", "ERR_HVAE_SHAPE");
  int64_t n = 1;
  for (auto s : v.shape) {
    check(s > 0, "ERR_HVAE_SHAPE", what + ".shape must have positive entries");
    // A product that wraps around could match the data's length while describing far more memory.
    check(!__builtin_mul_overflow(n, s, &n), "ERR_HVAE_SHAPE", what + ".shape is too large");
  }
  check(static_cast<size_t>(n) == ta.ElementLength(), "ERR_HVAE_SHAPE",
        what + ".shape does not match the length of " + what + ".data");
  check(ta.ByteLength() == static_cast<size_t>(n) * elem, "ERR_HVAE_SHAPE", what + ": unexpected byte length");
  if (n == 0 || v.data == nullptr) v.data = nullptr;
  check(v.data != nullptr, "ERR_HVAE_SHAPE", what + " is empty");
  keep.push_back(Napi::Persistent(data.As<Napi::Object>()));
  return v;
}

Napi::Float32Array toFloat32Array(Napi::Env env, const torch::Tensor& t) {
  torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  auto out = Napi::Float32Array::New(env, static_cast<size_t>(c.numel()));
  if (c.numel() > 0) std::memcpy(out.Data(), c.data_ptr<float>(), c.numel() * sizeof(float));
  return out;
}

Napi::Uint8Array toUint8Array(Napi::Env env, const torch::Tensor& t) {
  torch::Tensor c = t.detach().to(torch::kCPU, torch::kUInt8).contiguous();
  auto out = Napi::Uint8Array::New(env, static_cast<size_t>(c.numel()));
  if (c.numel() > 0) std::memcpy(out.Data(), c.data_ptr<uint8_t>(), c.numel());
  return out;
}

Napi::Object toJsTensor(Napi::Env env, const torch::Tensor& t) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("data", toFloat32Array(env, t));
  Napi::Array shape = Napi::Array::New(env, t.dim());
  for (int64_t i = 0; i < t.dim(); ++i) shape.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(t.size(i))));
  o.Set("shape", shape);
  return o;
}

bool has(const Napi::Object& o, const char* key) {
  return o.Has(key) && !o.Get(key).IsUndefined() && !o.Get(key).IsNull();
}

int64_t toInt(const Napi::Value& v, const std::string& what, const char* code) {
  check(v.IsNumber(), code, what + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  // Int64Value() would turn NaN into 0, truncate 1.5 to 1 and saturate 1e300: refuse what is not an integer in
  // int64's range (every integral double below 2^63 converts exactly) instead of computing with something else.
  check(std::isfinite(d) && std::trunc(d) == d && std::fabs(d) < 9223372036854775808.0, code,
        what + " must be an integer (|n| < 2^63)");
  return static_cast<int64_t>(d);
}

int64_t getInt(const Napi::Object& o, const char* key, int64_t def) {
  if (!has(o, key)) return def;
  return toInt(o.Get(key), key, "ERR_HVAE_OPTION");
}

int narrowInt(int64_t v, const std::string& what) {
  check(v >= std::numeric_limits<int>::min() && v <= std::numeric_limits<int>::max(), "ERR_HVAE_OPTION",
        what + " is out of range (|n| <= 2^31-1)");
  return static_cast<int>(v);
}

int getInt32(const Napi::Object& o, const char* key, int def) { return narrowInt(getInt(o, key, def), key); }

double getDouble(const Napi::Object& o, const char* key, double def) {
  if (!has(o, key)) return def;
  Napi::Value v = o.Get(key);
  check(v.IsNumber(), "ERR_HVAE_OPTION", std::string(key) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

bool getBool(const Napi::Object& o, const char* key, bool def) {
  if (!has(o, key)) return def;
  return o.Get(key).ToBoolean().Value();
}

std::string getString(const Napi::Object& o, const char* key, const std::string& def) {
  if (!has(o, key)) return def;
  Napi::Value v = o.Get(key);
  check(v.IsString(), "ERR_HVAE_OPTION", std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

std::vector<int64_t> getIntArray(const Napi::Object& o, const char* key, const char* code) {
  std::vector<int64_t> out;
  if (!has(o, key)) return out;
  Napi::Value v = o.Get(key);
  check(v.IsArray(), code, std::string(key) + " must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(toInt(a.Get(i), std::string(key) + "[" + std::to_string(i) + "]", code));
  return out;
}

ModelConfig parseConfig(const Napi::Object& o) {
  ModelConfig c;
  c.inputShape = getIntArray(o, "inputShape");
  check(c.inputShape.size() == 3, "ERR_HVAE_OPTION", "config.inputShape must be [c, h, w]");
  const std::string lik = getString(o, "likelihood", "bernoulli");
  check(lik == "bernoulli" || lik == "dlm", "ERR_HVAE_OPTION", "config.likelihood must be 'bernoulli' or 'dlm'");
  c.likelihood = lik == "dlm" ? Likelihood::DLM : Likelihood::Bernoulli;
  c.mixtureComponents = getInt(o, "mixtureComponents", 10);
  const std::string skip = getString(o, "skipConnections", "reference");
  check(skip == "reference" || skip == "paper", "ERR_HVAE_OPTION", "config.skipConnections must be 'reference' or 'paper'");
  c.skipConnections = skip == "paper" ? SkipMode::Paper : SkipMode::Reference;
  check(has(o, "stages") && o.Get("stages").IsArray(), "ERR_HVAE_OPTION", "config.stages must be an array");
  Napi::Array stages = o.Get("stages").As<Napi::Array>();
  for (uint32_t i = 0; i < stages.Length(); ++i) {
    check(stages.Get(i).IsObject(), "ERR_HVAE_OPTION", "config.stages entries must be objects");
    Napi::Object s = stages.Get(i).As<Napi::Object>();
    StageConfig sc;
    sc.channels = getInt(s, "channels", 64);
    sc.kernels = getIntArray(s, "kernels");
    sc.strides = getIntArray(s, "strides");
    check(has(s, "latent") && s.Get("latent").IsObject(), "ERR_HVAE_OPTION", "stage.latent must be an object");
    Napi::Object lat = s.Get("latent").As<Napi::Object>();
    const std::string type = getString(lat, "type", "conv");
    check(type == "conv" || type == "dense", "ERR_HVAE_OPTION", "stage.latent.type must be 'conv' or 'dense'");
    sc.latentType = type == "dense" ? LatentType::Dense : LatentType::Conv;
    sc.latentSize = getInt(lat, "size", 8);
    c.stages.push_back(sc);
  }
  return c;
}

torch::Device parseDevice(const std::string& device) {
  if (device == "cpu") return torch::Device(torch::kCPU);
  if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (device.size() > 5) {
      try {
        size_t used = 0;
        index = std::stoi(device.substr(5), &used);
        check(used == device.size() - 5 && index >= 0, "ERR_HVAE_DEVICE", "invalid device '" + device + "'");
      } catch (const std::logic_error&) {
        fail("ERR_HVAE_DEVICE", "invalid device '" + device + "'; use 'cpu', 'cuda' or 'cuda:N'");
      }
    }
    check(compat::cudaAvailable(), "ERR_HVAE_DEVICE",
          "device '" + device + "' was requested but CUDA is not available: this addon is built against " +
              std::string(HVAE_TORCH_FLAVOUR) + " LibTorch " + compat::torchVersion() +
              (std::string(HVAE_TORCH_FLAVOUR) == "cpu" ? " (no CUDA support); rebuild against a CUDA LibTorch"
                                                         : " but no CUDA device is visible"));
    check(index < compat::cudaDeviceCount(), "ERR_HVAE_DEVICE",
          "device '" + device + "' does not exist: " + std::to_string(compat::cudaDeviceCount()) + " CUDA device(s)");
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  fail("ERR_HVAE_DEVICE", "unknown device '" + device + "'; use 'cpu', 'cuda' or 'cuda:N'");
}

}  // namespace hvae
