// Running work off the JS thread. A Job is a piece of C++ work (`run`, touching no JS value) and a result builder
// (`result`, on the JS thread). runAsync wraps it in a Napi::AsyncWorker and returns a Promise; runSync runs both
// from the calling thread (for use inside worker_threads). C++ exceptions become JS errors whose message starts with
// the stable code: "[ERR_HVAE_...] message".
//
// Where `run` executes: a CPU job runs on the libuv worker thread (async) or the calling thread (sync). A CUDA job
// runs on one long-lived thread per device, whichever way it was called. ATen keeps cuDNN's execution plans (found
// by heuristics and, with benchmark mode, by autotuning) in a thread_local cache, so jobs spread over libuv's pool
// searched and autotuned every convolution again on each new thread: measured on an H100 (stop 15, bench/GPU.md),
// scoring ran at 226 images/s from the pool and at 13,610 with UV_THREADPOOL_SIZE=1. The libuv thread of an async
// CUDA job only waits for the device thread, as a CPU job already waits on its model's mutex.
#pragma once

#include <napi.h>
#include <c10/core/Device.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace hvae {

struct Job {
  std::function<void()> run;
  std::function<Napi::Value(Napi::Env)> result;
  std::vector<Napi::ObjectReference> keep;  // JS buffers that must outlive `run`
  // The CUDA device whose thread runs `run` (-1: a CPU job). `run` should leave its results on the host, so that
  // `result` (on the JS thread) never waits for the GPU.
  int cudaDevice = -1;
};

// The device thread key of a device: its index for CUDA, -1 for the CPU.
int deviceThreadKey(const c10::Device& device);

// Test hook: route CPU jobs through a dedicated thread too (key -2), so that the CUDA path's threading is exercised
// on machines without a GPU. Returns the previous setting.
bool setCpuDedicatedThread(bool on);

// The current exception as "[CODE] message" (call inside a catch block).
std::string describeCurrentException();

Napi::Value runAsync(Napi::Env env, std::shared_ptr<Job> job);
Napi::Value runSync(Napi::Env env, std::shared_ptr<Job> job);

// Throws a JS Error for the current C++ exception (call inside a catch block on the JS thread).
[[noreturn]] void rethrowAsJs(Napi::Env env);

}  // namespace hvae
