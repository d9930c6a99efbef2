#include "workers.h"

#include <c10/util/Exception.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <new>
#include <thread>

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

// One long-lived thread that runs submitted functions in order (see workers.h for why CUDA needs it). Created on
// first use and never destroyed: the thread is detached and idles on its condition variable until the process
// exits (a joinable std::thread destroyed at exit would call std::terminate).
class DeviceThread {
 public:
  DeviceThread() { std::thread([this] { loop(); }).detach(); }

  // Runs fn on this thread and waits for it; an exception thrown by fn is rethrown here, unchanged.
  void runAndWait(const std::function<void()>& fn) {
    Task task{&fn, nullptr, false};
    std::unique_lock<std::mutex> lock(mutex_);
    queue_.push_back(&task);
    wake_.notify_all();
    done_.wait(lock, [&] { return task.done; });
    lock.unlock();
    if (task.error) std::rethrow_exception(task.error);
  }

 private:
  struct Task {
    const std::function<void()>* fn;
    std::exception_ptr error;
    bool done;
  };

  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return !queue_.empty(); });
      Task* task = queue_.front();
      queue_.pop_front();
      lock.unlock();
      std::exception_ptr error;
      try {
        (*task->fn)();
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      task->error = error;
      task->done = true;
      done_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::deque<Task*> queue_;
};

std::atomic<bool> gCpuDedicatedThread{false};

DeviceThread& deviceThread(int key) {
  static std::mutex mutex;
  static auto* threads = new std::map<int, DeviceThread*>();  // never freed, as the threads themselves
  std::lock_guard<std::mutex> lock(mutex);
  DeviceThread*& t = (*threads)[key];
  if (!t) t = new DeviceThread();
  return *t;
}

// Runs the job's C++ work where it belongs: on its device's thread, or right here.
void runWork(Job& job) {
  int key = job.cudaDevice;
  if (key < 0 && gCpuDedicatedThread.load()) key = -2;
  if (key == -1) {
    job.run();
    return;
  }
  deviceThread(key).runAndWait(job.run);
}

class JobWorker : public Napi::AsyncWorker {
 public:
  JobWorker(Napi::Env env, std::shared_ptr<Job> job)
      : Napi::AsyncWorker(env, "hvae-native"), deferred_(Napi::Promise::Deferred::New(env)), job_(std::move(job)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      runWork(*job_);
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

int deviceThreadKey(const c10::Device& device) {
  if (!device.is_cuda()) return -1;
  return device.has_index() ? device.index() : 0;
}

bool setCpuDedicatedThread(bool on) { return gCpuDedicatedThread.exchange(on); }

Napi::Value runSync(Napi::Env env, std::shared_ptr<Job> job) {
  try {
    runWork(*job);
    return job->result(env);
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw Napi::Error::New(env, describeCurrentException());
  }
}

void rethrowAsJs(Napi::Env env) { throw Napi::Error::New(env, describeCurrentException()); }

}  // namespace hvae
