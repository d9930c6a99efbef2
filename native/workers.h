// Running work off the JS thread. A Job is a piece of C++ work (`run`, on a libuv worker thread, touching no JS
// value) and a result builder (`result`, on the JS thread). runAsync wraps it in a Napi::AsyncWorker and returns
// a Promise; runSync runs both inline (for use inside worker_threads). C++ exceptions become JS errors whose
// message starts with the stable code: "[ERR_HVAE_...] message".
#pragma once

#include <napi.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace hvae {

struct Job {
  std::function<void()> run;
  std::function<Napi::Value(Napi::Env)> result;
  std::vector<Napi::ObjectReference> keep;  // JS buffers that must outlive `run`
};

// The current exception as "[CODE] message" (call inside a catch block).
std::string describeCurrentException();

Napi::Value runAsync(Napi::Env env, std::shared_ptr<Job> job);
Napi::Value runSync(Napi::Env env, std::shared_ptr<Job> job);

// Throws a JS Error for the current C++ exception (call inside a catch block on the JS thread).
[[noreturn]] void rethrowAsJs(Napi::Env env);

}  // namespace hvae
