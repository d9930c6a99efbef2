#include <napi.h>
#include <torch/torch.h>
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("torch", Napi::String::New(env, TORCH_VERSION));
  return exports;
}
NODE_API_MODULE(hvae_native, Init)
