#include "workers.h"

#include <c10/util/Exception.h>

#include <exception>
#include <new>

#include "errors.h"

namespace hvae {

std::string describeCurrentException() {
  try {
    throw;
  } catch (const Error& e) {
    return "[" + e.code() + "] " + e.what();
  } catch (const c10::Error& e) {
    return std::string("[ERR_HVAE_TORCH] ") + e.what_without_backtrace();
  } catch (const std::bad_alloc&) {
    return "[ERR_HVAE_TORCH] out of memory";
  } catch (const std::exception& e) {
    return std::string("[ERR_HVAE_TORCH] ") + e.what();
  } catch (...) {
    return "[ERR_HVAE_TORCH] unknown native error";
  }
}

namespace {
class JobWorker : public Napi::AsyncWorker {
 public:
  JobWorker(Napi::Env env, std::shared_ptr<Job> job)
      : Napi::AsyncWorker(env, "hvae-native"), deferred_(Napi::Promise::Deferred::New(env)), job_(std::move(job)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      job_->run();
    } catch (...) {
      SetError(describeCurrentException());
    }
  }

  // Neither callback may throw: when the environment is being torn down (a worker_threads worker terminated
  // mid-computation) every N-API call fails, and an exception escaping here would abort the process.
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(job_->result(env));
    } catch (...) {
      const std::string msg = describeCurrentException();
      try {
        deferred_.Reject(Napi::Error::New(env, msg).Value());
      } catch (...) {
      }
    }
  }

  void OnError(const Napi::Error& e) override {
    try {
      deferred_.Reject(e.Value());
    } catch (...) {
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<Job> job_;
};
}  // namespace

Napi::Value runAsync(Napi::Env env, std::shared_ptr<Job> job) {
  auto* w = new JobWorker(env, std::move(job));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value runSync(Napi::Env env, std::shared_ptr<Job> job) {
  try {
    job->run();
  } catch (...) {
    throw Napi::Error::New(env, describeCurrentException());
  }
  return job->result(env);
}

void rethrowAsJs(Napi::Env env) { throw Napi::Error::New(env, describeCurrentException()); }

}  // namespace hvae
