// The addon's entry: module init, runtime facts (versions, devices, threads) and the Model class that the
// TypeScript layer (ts/native.ts, ts/model.ts) wraps. Options arrive already validated by TypeScript; they are
// checked again here only where a bad value could crash.
#include <napi.h>
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include <torch/csrc/autograd/profiler_legacy.h>

#include "allocator.h"
#include "bounds.h"
#include "bridge.h"
#include "compat.h"
#include "errors.h"
#include "inputs.h"
#include "model.h"
#include "train.h"
#include "workers.h"

namespace hvae {

namespace {

std::atomic<int> gNumThreads{0};
// Whether the user chose TF32 for CUDA float32 with setCudnn({ allowTF32 }); until then it is kept off.
std::atomic<bool> gTf32Chosen{false};
// Whether the user chose cuDNN autotuning with setCudnn({ benchmark }); until then a CUDA model turns it on.
std::atomic<bool> gCudnnBenchmarkChosen{false};

int defaultThreads() {
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

// Intra-op threads are an OpenMP per-thread setting, so every computing thread applies the process-wide choice.
void applyThreads() {
  const int n = gNumThreads.load();
  if (n > 0 && at::get_num_threads() != n) at::set_num_threads(n);
}

struct ModelState {
  std::mutex mutex;  // held by every job for its whole run, and by the state getters/setters
  HVAE model{nullptr};
  torch::Device device{torch::kCPU};
  at::Generator generator;
  Adam adam;
  // What info() reports, kept outside the mutex so that it answers at once while a long job runs.
  std::vector<std::pair<std::string, std::vector<int64_t>>> parameterShapes;
  int64_t numParameters = 0;
  std::atomic<bool> initialized{false};
};

// Every JS-thread method body runs inside this: C++ exceptions (ours, c10::Error, std::bad_alloc) become JS errors
// with their code instead of escaping into V8, which would abort the process.
template <typename F>
Napi::Value guarded(Napi::Env env, F&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    rethrowAsJs(env);
  }
}

// Before an async job is queued: its inputs become copies of their own (InputView::own). A sync call blocks the
// JS thread for the whole computation, so its inputs cannot change underneath it and are read in place.
void ownUnlessSync(bool sync, InputView& v) {
  if (!sync) v.own();
}
void ownUnlessSync(bool sync, std::vector<InputView>& vs) {
  for (auto& v : vs) ownUnlessSync(sync, v);
}

// Data-dependent initialisation normalises each unit over the batch (§2.4); dense layers reduce over the batch
// alone, so one image gives a NaN variance and NaN weights for good.
void checkInitBatch(ModelState& st, const InputView& v) {
  check(!st.model->initPending() || v.shape[0] >= 2, "ERR_HVAE_SHAPE",
        "the model's first batch initialises its weights from the data and needs at least 2 images, got 1");
}

InputTransform parseTransform(const std::string& name, torch::ScalarType dtype, const ModelConfig& cfg) {
  if (name == "auto") {
    if (dtype != torch::kUInt8) return InputTransform::None;
    return cfg.likelihood == Likelihood::Bernoulli ? InputTransform::Binarize : InputTransform::Dequantize;
  }
  if (name == "none") return InputTransform::None;
  if (name == "scale") return InputTransform::Scale;
  if (name == "binarize") return InputTransform::Binarize;
  if (name == "threshold") return InputTransform::Threshold;
  if (name == "dequantize") return InputTransform::Dequantize;
  fail("ERR_HVAE_OPTION", "unknown transform '" + name + "'");
}

FreeNatsMode parseFreeNats(const std::string& name) {
  if (name == "reference") return FreeNatsMode::Reference;
  if (name == "layer-total") return FreeNatsMode::LayerTotal;
  if (name == "paper-era") return FreeNatsMode::PaperEra;
  fail("ERR_HVAE_OPTION", "unknown freeNatsMode '" + name + "'");
}

// The `precision` option of scoring and training steps ('float32' or 'bfloat16', see PrecisionScope).
at::ScalarType parsePrecision(const Napi::Object& o, const torch::Device& device) {
  const std::string name = getString(o, "precision", "float32");
  check(name == "float32" || name == "bfloat16", "ERR_HVAE_OPTION",
        "precision must be 'float32' or 'bfloat16', got '" + name + "'");
  const at::ScalarType precision = name == "bfloat16" ? at::kBFloat16 : at::kFloat;
  check(precision == at::kFloat || nativeBFloat16(device), "ERR_HVAE_DEVICE",
        "precision 'bfloat16' needs CUDA or a CPU with AVX-512 BF16 or AMX (this CPU has neither, and LibTorch's "
        "fallback would be far slower than float32); use precision 'float32'");
  return precision;
}

void checkImages(const InputView& v, const ModelConfig& cfg, const char* what) {
  check(v.shape.size() == 4, "ERR_HVAE_SHAPE", std::string(what) + " must be [n, c, h, w]");
  check(v.shape[1] == cfg.inputShape[0] && v.shape[2] == cfg.inputShape[1] && v.shape[3] == cfg.inputShape[2],
        "ERR_HVAE_SHAPE",
        std::string(what) + " are " + std::to_string(v.shape[1]) + "x" + std::to_string(v.shape[2]) + "x" +
            std::to_string(v.shape[3]) + " but the model expects " + std::to_string(cfg.inputShape[0]) + "x" +
            std::to_string(cfg.inputShape[1]) + "x" + std::to_string(cfg.inputShape[2]));
}

// An image batch and how to transform it: the common start of every computing call.
struct ImagesArg {
  InputView view;
  InputTransform transform = InputTransform::None;
  double threshold = 0.5;
};

ImagesArg readImages(const Napi::Value& images, const Napi::Object& options, const ModelConfig& cfg, Job& job) {
  ImagesArg a;
  a.view = readBatch(images, "images", job.keep);
  checkImages(a.view, cfg, "images");
  a.transform = parseTransform(getString(options, "transform", "auto"), a.view.dtype, cfg);
  a.threshold = getDouble(options, "threshold", 0.5);
  return a;
}

Napi::Object optionsArg(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i && info[i].IsObject() ? info[i].As<Napi::Object>() : Napi::Object::New(info.Env());
}

std::vector<InputView> readNoise(const Napi::Object& o, std::vector<Napi::ObjectReference>& keep) {
  std::vector<InputView> out;
  if (!has(o, "noise")) return out;
  check(o.Get("noise").IsArray(), "ERR_HVAE_OPTION", "noise must be an array of { data, shape }");
  Napi::Array a = o.Get("noise").As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    if (a.Get(i).IsNull() || a.Get(i).IsUndefined()) {
      out.emplace_back();
      continue;
    }
    out.push_back(readBatch(a.Get(i), "noise[" + std::to_string(i) + "]", keep));
    check(out.back().dtype == torch::kFloat32, "ERR_HVAE_DTYPE", "noise must be Float32Array");
  }
  return out;
}

std::vector<torch::Tensor> noiseTensors(const std::vector<InputView>& views, const torch::Device& device) {
  std::vector<torch::Tensor> out;
  for (const auto& v : views) out.push_back(v.defined() ? v.tensor().to(device) : torch::Tensor());
  return out;
}

Napi::Value numberKeyed(Napi::Env env, const std::map<int, torch::Tensor>& m) {
  Napi::Object o = Napi::Object::New(env);
  for (const auto& [k, t] : m) o.Set(std::to_string(k), toFloat32Array(env, t));
  return o;
}

Napi::Value tensorList(Napi::Env env, const std::vector<torch::Tensor>& ts) {
  Napi::Array a = Napi::Array::New(env, ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    a.Set(static_cast<uint32_t>(i), ts[i].defined() ? Napi::Value(toFloat32Array(env, ts[i])) : env.Null());
  }
  return a;
}

// A job for this model: its C++ work runs on the model's device thread (workers.h).
std::shared_ptr<Job> newJob(const ModelState& st) {
  auto job = std::make_shared<Job>();
  job->cudaDevice = deviceThreadKey(st.device);
  return job;
}

// Results leave the device inside the job (on the device thread): the JS thread, which builds the result objects,
// then never waits for queued GPU work. On the CPU these are no-ops.
torch::Tensor onHost(const torch::Tensor& t) { return t.defined() ? t.to(torch::kCPU) : t; }
void onHost(std::vector<torch::Tensor>& ts) {
  for (auto& t : ts) t = onHost(t);
}
void onHost(std::map<int, torch::Tensor>& m) {
  for (auto& [k, t] : m) t = onHost(t);
}
void onHost(ScoreResult& r) {
  r.elbo = onHost(r.elbo);
  r.elboLogLikelihood = onHost(r.elboLogLikelihood);
  onHost(r.elboKl);
  r.elboSamples = onHost(r.elboSamples);
  onHost(r.aboveK);
  onHost(r.aboveKLogLikelihood);
  for (auto& [k, v] : r.aboveKKl) onHost(v);
  onHost(r.belowL);
}
void onHost(TrainStepResult& r) {
  r.loss = onHost(r.loss);
  r.elbo = onHost(r.elbo);
  r.logLikelihood = onHost(r.logLikelihood);
  onHost(r.kl);
  for (auto& [name, t] : r.grads) t = onHost(t);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "NativeModel",
        {
            InstanceMethod<&ModelWrap::Info>("info"),
            InstanceMethod<&ModelWrap::GetState>("getState"),
            InstanceMethod<&ModelWrap::SetState>("setState"),
            InstanceMethod<&ModelWrap::ScoreAsync>("score"),
            InstanceMethod<&ModelWrap::ScoreSync>("scoreSync"),
            InstanceMethod<&ModelWrap::TrainAsync>("trainStep"),
            InstanceMethod<&ModelWrap::TrainSync>("trainStepSync"),
            InstanceMethod<&ModelWrap::GenerateAsync>("generate"),
            InstanceMethod<&ModelWrap::GenerateSync>("generateSync"),
            InstanceMethod<&ModelWrap::InitializeAsync>("initialize"),
            InstanceMethod<&ModelWrap::InitializeSync>("initializeSync"),
            InstanceMethod<&ModelWrap::GetOptimizerState>("getOptimizerState"),
            InstanceMethod<&ModelWrap::SetOptimizerState>("setOptimizerState"),
            InstanceMethod<&ModelWrap::GetRngState>("getRngState"),
            InstanceMethod<&ModelWrap::SetRngState>("setRngState"),
            InstanceMethod<&ModelWrap::Seed>("seed"),
            InstanceMethod<&ModelWrap::Dispose>("dispose"),
        });
  }

  ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
    Napi::Env env = info.Env();
    try {
      check(info.Length() >= 1 && info[0].IsObject(), "ERR_HVAE_OPTION", "NativeModel(config, options)");
      ModelConfig cfg = parseConfig(info[0].As<Napi::Object>());
      Napi::Object o = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
      const torch::Device device = parseDevice(getString(o, "device", "cpu"));
      const uint64_t seed = static_cast<uint64_t>(getInt(o, "seed", 0));
      auto st = std::make_shared<ModelState>();
      {
        // Initial weights come from the global CPU generator (the modules are built on the CPU, then moved):
        // seed that one alone for reproducible construction. torch::manual_seed would also reseed every CUDA
        // device's default generator, the stream of any CUDA model already running (compat::makeGenerator).
        at::Generator cpu = at::detail::getDefaultCPUGenerator();
        {
          std::lock_guard<std::mutex> glock(cpu.mutex());
          cpu.set_current_seed(seed);
        }
        st->model = HVAE(cfg);
      }
      st->model->to(device);
      // Fixed shapes per call: let cuDNN pick the fastest algorithms, unless the user chose with setCudnn({ benchmark }).
      if (device.is_cuda() && !gCudnnBenchmarkChosen.load()) compat::setCudnnBenchmark(true);
      // Float32 means float32 (ALGORITHM.md): LibTorch lets cuDNN use TF32 (a 10-bit mantissa) for float32
      // convolutions by default; turn that off unless the user chose with setCudnn({ allowTF32 }).
      if (device.is_cuda() && !gTf32Chosen.load()) compat::setAllowTF32(false);
      st->model->requestInit(true);
      st->device = device;
      st->generator = compat::makeGenerator(device, seed);
      for (auto& p : st->model->named_parameters(true)) {
        st->parameterShapes.emplace_back(p.key(), p.value().sizes().vec());
        st->numParameters += p.value().numel();
      }
      st->initialized = false;
      state_ = st;
    } catch (const Napi::Error&) {
      throw;
    } catch (...) {
      rethrowAsJs(env);
    }
  }

 private:
  std::shared_ptr<ModelState> state(Napi::Env env) {
    if (!state_) throw Napi::Error::New(env, "[ERR_HVAE_DISPOSED] the model was disposed");
    return state_;
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    state_.reset();  // running jobs keep their own reference and finish normally
    return info.Env().Undefined();
  }

  // Answers from the cache (no lock), so it never waits for a running job.
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto st = state(env);
    return guarded(env, [&]() -> Napi::Value {
      Napi::Object o = Napi::Object::New(env);
      Napi::Array list = Napi::Array::New(env, st->parameterShapes.size());
      uint32_t i = 0;
      for (const auto& [name, sizes] : st->parameterShapes) {
        Napi::Object e = Napi::Object::New(env);
        e.Set("name", name);
        Napi::Array shape = Napi::Array::New(env, sizes.size());
        for (size_t d = 0; d < sizes.size(); ++d) shape.Set(static_cast<uint32_t>(d), Napi::Number::New(env, static_cast<double>(sizes[d])));
        e.Set("shape", shape);
        list.Set(i++, e);
      }
      o.Set("parameters", list);
      o.Set("numParameters", Napi::Number::New(env, static_cast<double>(st->numParameters)));
      o.Set("device", st->device.str());
      o.Set("initialized", st->initialized.load());
      return o;
    });
  }

  // The state getters and setters take the model's mutex, so they wait for a running job (the TypeScript layer
  // awaits its jobs before reading or writing state).
  Napi::Value GetState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto st = state(env);
    return guarded(env, [&]() -> Napi::Value {
      std::lock_guard<std::mutex> lock(st->mutex);
      Napi::Object o = Napi::Object::New(env);
      for (auto& p : st->model->named_parameters(true)) o.Set(p.key(), toJsTensor(env, p.value()));
      return o;
    });
  }

  // setState({ name: { data: Float32Array, shape } }): every parameter must be present with its exact shape;
  // all mismatches are reported at once.
  Napi::Value SetState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto st = state(env);
    return guarded(env, [&]() -> Napi::Value {
      check(info.Length() >= 1 && info[0].IsObject(), "ERR_HVAE_FORMAT", "setState expects an object of tensors");
      Napi::Object given = info[0].As<Napi::Object>();
      std::lock_guard<std::mutex> lock(st->mutex);
      std::vector<Napi::ObjectReference> keep;
      std::vector<std::string> problems;
      std::vector<std::pair<torch::Tensor, InputView>> assign;
      auto params = st->model->named_parameters(true);
      for (auto& p : params) {
        if (!has(given, p.key().c_str())) {
          problems.push_back("missing tensor '" + p.key() + "' " + c10::str(p.value().sizes()));
          continue;
        }
        InputView v = readBatch(given.Get(p.key()), p.key(), keep);
        if (v.dtype != torch::kFloat32) {
          problems.push_back("tensor '" + p.key() + "' must be float32");
          continue;
        }
        if (c10::IntArrayRef(v.shape) != p.value().sizes()) {
          problems.push_back("tensor '" + p.key() + "' has shape " + c10::str(c10::IntArrayRef(v.shape)) +
                             ", the model needs " + c10::str(p.value().sizes()));
          continue;
        }
        assign.emplace_back(p.value(), v);
      }
      Napi::Array names = given.GetPropertyNames();
      for (uint32_t i = 0; i < names.Length(); ++i) {
        const std::string n = names.Get(i).As<Napi::String>().Utf8Value();
        if (!params.contains(n)) problems.push_back("unexpected tensor '" + n + "' (not a parameter of this model)");
      }
      if (!problems.empty()) {
        std::string msg = "the weights do not match the model (" + std::to_string(problems.size()) + " problem" +
                          (problems.size() > 1 ? "s" : "") + "):";
        for (size_t i = 0; i < problems.size() && i < 20; ++i) msg += "\n  - " + problems[i];
        if (problems.size() > 20) msg += "\n  - ... and " + std::to_string(problems.size() - 20) + " more";
        fail("ERR_HVAE_FORMAT", msg);
      }
      torch::NoGradGuard ng;
      for (auto& [param, view] : assign) param.copy_(view.tensor());
      st->model->requestInit(false);
      st->model->invalidateFolds();
      st->initialized = true;
      return env.Undefined();
    });
  }

  // ---- scoring ----
  Napi::Value Score(const Napi::CallbackInfo& info, bool sync) {
    Napi::Env env = info.Env();
    auto st = state(env);
    auto job = newJob(*st);
    auto result = std::make_shared<ScoreResult>();
    return guarded(env, [&]() -> Napi::Value {
      Napi::Object o = optionsArg(info, 1);
      ImagesArg in = readImages(info[0], o, st->model->config(), *job);
      ScoreRequest req;
      for (auto k : getIntArray(o, "ks")) req.ks.push_back(narrowInt(k, "ks"));
      for (auto l : getIntArray(o, "ls")) req.ls.push_back(narrowInt(l, "ls"));
      req.samples = getInt32(o, "importanceSamples", 1);
      req.samplesAboveK = getInt32(o, "importanceSamplesAboveK", 1);
      req.priorSample = getString(o, "lowerLatents", "mode") == "sample";
      req.chunkRows = getInt(o, "chunkRows", 4096);
      req.returnElboSamples = getBool(o, "returnElboSamples", false);
      check(req.samples >= 1 && req.samplesAboveK >= 1, "ERR_HVAE_OPTION", "importance samples must be >= 1");
      check(req.chunkRows >= 1, "ERR_HVAE_OPTION", "chunkRows must be >= 1");
      const at::ScalarType precision = parsePrecision(o, st->device);
      auto noise = readNoise(o, job->keep);
      ownUnlessSync(sync, in.view);
      ownUnlessSync(sync, noise);
      job->run = [st, in, req, noise, result, precision]() mutable {
        std::lock_guard<std::mutex> lock(st->mutex);
        applyThreads();
        c10::InferenceMode guard;
        PrecisionScope precisionScope(precision);
        st->model->eval();
        torch::Tensor x = prepareInput(in.view.tensor().to(st->device), in.transform, in.threshold, st->generator);
        req.noise = noiseTensors(noise, st->device);
        // HVAE_PROFILE=trace.json writes a Chrome trace of the scoring call (development aid).
        std::unique_ptr<torch::autograd::profiler::RecordProfile> prof;
        if (const char* p = std::getenv("HVAE_PROFILE")) prof = std::make_unique<torch::autograd::profiler::RecordProfile>(std::string(p));
        *result = score(*st->model, x, req, st->generator);
        onHost(*result);
      };
      job->result = [result](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("elbo", toFloat32Array(env, result->elbo));
        o.Set("elboLogLikelihood", toFloat32Array(env, result->elboLogLikelihood));
        o.Set("elboKl", tensorList(env, result->elboKl));
        if (result->elboSamples.defined()) o.Set("elboSamples", toJsTensor(env, result->elboSamples));
        o.Set("aboveK", numberKeyed(env, result->aboveK));
        o.Set("aboveKLogLikelihood", numberKeyed(env, result->aboveKLogLikelihood));
        Napi::Object kk = Napi::Object::New(env);
        for (const auto& [k, v] : result->aboveKKl) kk.Set(std::to_string(k), tensorList(env, v));
        o.Set("aboveKKl", kk);
        o.Set("belowL", numberKeyed(env, result->belowL));
        return o;
      };
      return sync ? runSync(env, job) : runAsync(env, job);
    });
  }
  Napi::Value ScoreAsync(const Napi::CallbackInfo& info) { return Score(info, false); }
  Napi::Value ScoreSync(const Napi::CallbackInfo& info) { return Score(info, true); }

  // ---- training ----
  Napi::Value Train(const Napi::CallbackInfo& info, bool sync) {
    Napi::Env env = info.Env();
    auto st = state(env);
    auto job = newJob(*st);
    auto result = std::make_shared<TrainStepResult>();
    return guarded(env, [&]() -> Napi::Value {
      Napi::Object o = optionsArg(info, 1);
      ImagesArg in = readImages(info[0], o, st->model->config(), *job);
      TrainStepOptions opt;
      opt.beta = getDouble(o, "beta", 1.0);
      opt.freeNats = getDouble(o, "freeNats", 0.0);
      opt.freeNatsMode = parseFreeNats(getString(o, "freeNatsMode", "reference"));
      opt.lr = getDouble(o, "lr", 3e-4);
      opt.beta1 = getDouble(o, "beta1", 0.9);
      opt.beta2 = getDouble(o, "beta2", 0.999);
      opt.eps = getDouble(o, "eps", 1e-8);
      opt.step = getBool(o, "step", true);
      opt.collectGrads = getBool(o, "collectGrads", false);
      opt.skipNonFinite = getBool(o, "skipNonFinite", false);
      opt.precision = parsePrecision(o, st->device);
      auto noise = readNoise(o, job->keep);
      ownUnlessSync(sync, in.view);
      ownUnlessSync(sync, noise);
      job->run = [st, in, opt, noise, result]() mutable {
        std::lock_guard<std::mutex> lock(st->mutex);
        applyThreads();
        checkInitBatch(*st, in.view);
        torch::Tensor x;
        {
          torch::NoGradGuard ng;
          x = prepareInput(in.view.tensor().to(st->device), in.transform, in.threshold, st->generator);
        }
        opt.noise = noiseTensors(noise, st->device);
        std::unique_ptr<torch::autograd::profiler::RecordProfile> prof;
        if (const char* p = std::getenv("HVAE_PROFILE")) prof = std::make_unique<torch::autograd::profiler::RecordProfile>(std::string(p));
        *result = trainStep(*st->model, st->adam, x, opt, st->generator);
        st->initialized = !st->model->initPending();
        onHost(*result);
      };
      job->result = [result](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("loss", toFloat32Array(env, result->loss));
        o.Set("elbo", toFloat32Array(env, result->elbo));
        o.Set("logLikelihood", toFloat32Array(env, result->logLikelihood));
        o.Set("kl", tensorList(env, result->kl));
        o.Set("lossMean", result->lossMean);
        o.Set("elboMean", result->elboMean);
        o.Set("skipped", result->skipped);
        o.Set("initialised", result->initialised);
        if (!result->grads.empty()) {
          Napi::Object g = Napi::Object::New(env);
          for (auto& [name, t] : result->grads) g.Set(name, toJsTensor(env, t));
          o.Set("grads", g);
        }
        return o;
      };
      return sync ? runSync(env, job) : runAsync(env, job);
    });
  }
  Napi::Value TrainAsync(const Napi::CallbackInfo& info) { return Train(info, false); }
  Napi::Value TrainSync(const Napi::CallbackInfo& info) { return Train(info, true); }

  // ---- data-dependent init on a batch, without a training step ----
  Napi::Value Initialize(const Napi::CallbackInfo& info, bool sync) {
    Napi::Env env = info.Env();
    auto st = state(env);
    auto job = newJob(*st);
    return guarded(env, [&]() -> Napi::Value {
      ImagesArg in = readImages(info[0], optionsArg(info, 1), st->model->config(), *job);
      check(in.view.shape[0] >= 2, "ERR_HVAE_SHAPE",
            "initialisation normalises each unit over the batch and needs at least 2 images, got 1");
      ownUnlessSync(sync, in.view);
      job->run = [st, in]() {
        std::lock_guard<std::mutex> lock(st->mutex);
        applyThreads();
        torch::NoGradGuard ng;
        torch::Tensor x = prepareInput(in.view.tensor().to(st->device), in.transform, in.threshold, st->generator);
        st->model->requestInit(true);
        InitScope scope(st->generator);
        GroupSpec g;
        g.postHi = st->model->numLayers();
        EngineOptions e;
        e.generator = st->generator;
        runGroups(*st->model, x, {g}, e);
        st->model->requestInit(false);
        st->model->invalidateFolds();
        st->initialized = true;
      };
      job->result = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
      return sync ? runSync(env, job) : runAsync(env, job);
    });
  }
  Napi::Value InitializeAsync(const Napi::CallbackInfo& info) { return Initialize(info, false); }
  Napi::Value InitializeSync(const Napi::CallbackInfo& info) { return Initialize(info, true); }

  // ---- generation: prior samples, reconstructions, latent reconstructions (paper Figure 1) ----
  // options: { n, k (L>k reconstruction; 0 = plain reconstruction), posteriorMean, lowerLatents, sampleOutput,
  //            transform } and images for reconstructions.
  Napi::Value Generate(const Napi::CallbackInfo& info, bool sync) {
    Napi::Env env = info.Env();
    auto st = state(env);
    auto job = newJob(*st);
    auto result = std::make_shared<torch::Tensor>();
    return guarded(env, [&]() -> Napi::Value {
      Napi::Object o = optionsArg(info, 0);
      const ModelConfig& cfg = st->model->config();
      const bool fromPrior = !has(o, "images");
      ImagesArg in;
      if (!fromPrior) in = readImages(o.Get("images"), o, cfg, *job);
      ownUnlessSync(sync, in.view);
      const int64_t n = getInt(o, "n", 16);
      const int k = getInt32(o, "k", 0);
      check(n >= 1, "ERR_HVAE_OPTION", "n must be >= 1");
      check(k >= 0 && k <= cfg.numLayers(), "ERR_HVAE_OPTION", "k is out of range 0.." + std::to_string(cfg.numLayers()));
      const bool posteriorMean = getBool(o, "posteriorMean", false);
      const bool priorSample = getString(o, "lowerLatents", "mode") == "sample";
      const bool sampleOutput = getBool(o, "sampleOutput", false);
      job->run = [st, fromPrior, in, n, k, posteriorMean, priorSample, sampleOutput, result]() {
        std::lock_guard<std::mutex> lock(st->mutex);
        applyThreads();
        c10::InferenceMode guard;
        st->model->eval();
        torch::Tensor params;
        if (fromPrior) {
          params = decodeFromPrior(*st->model, n, priorSample, st->generator,
                                   torch::TensorOptions().device(st->device).dtype(torch::kFloat32));
        } else {
          torch::Tensor x = prepareInput(in.view.tensor().to(st->device), in.transform, in.threshold, st->generator);
          GroupSpec g;
          g.postLo = k;
          g.postHi = st->model->numLayers();
          g.encJoin = priorSample ? 0 : std::min(k, g.postHi);
          g.priorSample = priorSample;
          EngineOptions e;
          e.generator = st->generator;
          e.keepLikelihoodParams = true;
          if (posteriorMean) {
            // Zero noise: every posterior latent at its mean.
            for (int i = 0; i < st->model->numLayers(); ++i) {
              std::vector<int64_t> s{x.size(0)};
              const auto& ls = st->model->geometry(i).latentShape;
              s.insert(s.end(), ls.begin(), ls.end());
              e.noise.push_back(torch::zeros(s, x.options()));
            }
          }
          params = runGroups(*st->model, x, {g}, e)[0].likelihoodParams;
        }
        *result = onHost(st->model->likelihood()->image(params, sampleOutput, st->generator));
      };
      job->result = [result](Napi::Env env) -> Napi::Value { return toJsTensor(env, *result); };
      return sync ? runSync(env, job) : runAsync(env, job);
    });
  }
  Napi::Value GenerateAsync(const Napi::CallbackInfo& info) { return Generate(info, false); }
  Napi::Value GenerateSync(const Napi::CallbackInfo& info) { return Generate(info, true); }

  // ---- optimizer and RNG state (checkpoints) ----
  Napi::Value GetOptimizerState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto st = state(env);
    return guarded(env, [&]() -> Napi::Value {
      std::lock_guard<std::mutex> lock(st->mutex);
      Napi::Object o = Napi::Object::New(env);
      for (auto& [name, s] : st->adam.state()) {
        Napi::Object e = Napi::Object::New(env);
        e.Set("step", Napi::Number::New(env, static_cast<double>(s.step)));
        e.Set("expAvg", toJsTensor(env, s.expAvg));
        e.Set("expAvgSq", toJsTensor(env, s.expAvgSq));
        o.Set(name, e);
      }
      return o;
    });
  }

  Napi::Value SetOptimizerState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto st = state(env);
    return guarded(env, [&]() -> Napi::Value {
      check(info.Length() >= 1 && info[0].IsObject(), "ERR_HVAE_FORMAT", "setOptimizerState expects an object");
      Napi::Object given = info[0].As<Napi::Object>();
      std::lock_guard<std::mutex> lock(st->mutex);
      std::vector<Napi::ObjectReference> keep;
      auto params = st->model->named_parameters(true);
      std::map<std::string, Adam::State> next;
      Napi::Array names = given.GetPropertyNames();
      for (uint32_t i = 0; i < names.Length(); ++i) {
        const std::string n = names.Get(i).As<Napi::String>().Utf8Value();
        check(params.contains(n), "ERR_HVAE_FORMAT", "optimizer state for unknown parameter '" + n + "'");
        check(given.Get(n).IsObject(), "ERR_HVAE_FORMAT", "optimizer state for '" + n + "' must be an object");
        Napi::Object e = given.Get(n).As<Napi::Object>();
        const torch::Tensor& p = params[n];
        Adam::State s;
        s.step = getInt(e, "step", 0);
        // A negative count would make the next update's bias correction 1 - beta1^0 = 0: NaN weights.
        check(s.step >= 0, "ERR_HVAE_FORMAT",
              "optimizer state for '" + n + "' has step " + std::to_string(s.step) + "; it must be >= 0");
        InputView a = readBatch(e.Get("expAvg"), n + ".expAvg", keep);
        InputView b = readBatch(e.Get("expAvgSq"), n + ".expAvgSq", keep);
        check(a.dtype == torch::kFloat32 && b.dtype == torch::kFloat32, "ERR_HVAE_FORMAT",
              "optimizer state for '" + n + "' must be float32");
        check(c10::IntArrayRef(a.shape) == p.sizes() && c10::IntArrayRef(b.shape) == p.sizes(), "ERR_HVAE_FORMAT",
              "optimizer state for '" + n + "' has the wrong shape");
        s.expAvg = a.tensor().to(st->device).clone();
        s.expAvgSq = b.tensor().to(st->device).clone();
        next[n] = std::move(s);
      }
      st->adam.state() = std::move(next);
      return env.Undefined();
    });
  }

  Napi::Value GetRngState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto st = state(env);
    return guarded(env, [&]() -> Napi::Value {
      std::lock_guard<std::mutex> lock(st->mutex);
      std::lock_guard<std::mutex> glock(st->generator.mutex());
      return toUint8Array(env, st->generator.get_state());
    });
  }

  Napi::Value SetRngState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto st = state(env);
    return guarded(env, [&]() -> Napi::Value {
      check(info.Length() >= 1 && info[0].IsTypedArray(), "ERR_HVAE_FORMAT", "setRngState expects a Uint8Array");
      Napi::Uint8Array a = info[0].As<Napi::Uint8Array>();
      std::lock_guard<std::mutex> lock(st->mutex);
      torch::Tensor t = torch::from_blob(a.Data(), {static_cast<int64_t>(a.ElementLength())}, torch::kUInt8).clone();
      std::lock_guard<std::mutex> glock(st->generator.mutex());
      st->generator.set_state(t);
      return env.Undefined();
    });
  }

  Napi::Value Seed(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto st = state(env);
    return guarded(env, [&]() -> Napi::Value {
      check(info.Length() >= 1 && info[0].IsNumber(), "ERR_HVAE_OPTION", "seed(n) expects a number");
      const uint64_t seed = static_cast<uint64_t>(toInt(info[0], "seed", "ERR_HVAE_OPTION"));
      std::lock_guard<std::mutex> lock(st->mutex);
      std::lock_guard<std::mutex> glock(st->generator.mutex());
      st->generator.set_current_seed(seed);
      return env.Undefined();
    });
  }

  std::shared_ptr<ModelState> state_;
};

// ---------------------------------------------------------------------------------------------------------------

struct AddonData {
  Napi::FunctionReference modelConstructor;
};

Napi::Value Versions(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("libtorch", compat::torchVersion());
  o.Set("flavour", HVAE_TORCH_FLAVOUR);
  o.Set("libtorchPath", HVAE_TORCH_LIBDIR);
  o.Set("libtorchSource", HVAE_TORCH_SOURCE);
#if defined(_GLIBCXX_USE_CXX11_ABI)
  o.Set("cxx11Abi", static_cast<bool>(_GLIBCXX_USE_CXX11_ABI));
#endif
  const bool cuda = compat::cudaAvailable();
  o.Set("cuda", cuda);
  o.Set("cudaDeviceCount", cuda ? compat::cudaDeviceCount() : 0);
  o.Set("cudaVersion", cuda ? Napi::Value(Napi::Number::New(env, compat::cudaVersion())) : env.Null());
  const long cudnn = cuda ? compat::cudnnVersion() : 0;
  o.Set("cudnn", cudnn > 0 ? Napi::Value(Napi::Number::New(env, static_cast<double>(cudnn))) : env.Null());
  o.Set("mkldnn", at::hasMKLDNN());
  o.Set("cpuBFloat16", nativeBFloat16(torch::Device(torch::kCPU)));
  o.Set("numThreads", gNumThreads.load());
  o.Set("cudnnBenchmark", compat::cudnnBenchmark());
  return o;
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    int n = 0;
    if (info.Length() > 0 && !info[0].IsUndefined()) n = narrowInt(toInt(info[0], "setNumThreads(n): n", "ERR_HVAE_OPTION"), "setNumThreads(n): n");
    if (n <= 0) n = defaultThreads();
    gNumThreads = n;
    applyThreads();
    return Napi::Number::New(env, n);
  });
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), gNumThreads.load()); }

Napi::Value SetConvTranspose(const Napi::CallbackInfo& info) {
  const std::string m = info[0].As<Napi::String>().Utf8Value();
  setConvTransposeImpl(m == "native" ? ConvTransposeImpl::Native : m == "subpixel" ? ConvTransposeImpl::Subpixel : ConvTransposeImpl::Auto);
  return info.Env().Undefined();
}

Napi::Value SetCpuFastPaths(const Napi::CallbackInfo& info) {
  Napi::Object o = info[0].As<Napi::Object>();
  setCpuFastPaths(getBool(o, "channelsLast", cpuChannelsLast()), getBool(o, "linearAsConv", cpuLinearAsConv()));
  return info.Env().Undefined();
}

Napi::Value SetCudnn(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    check(info.Length() >= 1 && info[0].IsObject(), "ERR_HVAE_OPTION", "setCudnn(options) expects an object");
    Napi::Object o = info[0].As<Napi::Object>();
    if (has(o, "benchmark")) {
      compat::setCudnnBenchmark(getBool(o, "benchmark", false));
      gCudnnBenchmarkChosen = true;
    }
    if (has(o, "allowTF32")) {
      compat::setAllowTF32(getBool(o, "allowTF32", false));
      gTf32Chosen = true;
    }
    return info.Env().Undefined();
  });
}

// setCpuCache({ maxBytes }): the limit on CPU memory kept for reuse (allocator.h); { empty: true } releases it.
Napi::Value SetCpuCache(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    check(info.Length() >= 1 && info[0].IsObject(), "ERR_HVAE_OPTION", "setCpuCache(options) expects an object");
    Napi::Object o = info[0].As<Napi::Object>();
    if (has(o, "maxBytes")) {
      const int64_t maxBytes = getInt(o, "maxBytes", 0);
      check(maxBytes >= 0, "ERR_HVAE_OPTION", "maxBytes must be >= 0");
      setCpuCacheLimit(static_cast<size_t>(maxBytes));
    }
    if (getBool(o, "empty", false)) emptyCpuCache();
    return info.Env().Undefined();
  });
}

Napi::Value CpuCache(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CpuCacheStats s = cpuCacheStats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("installed", s.installed);
  o.Set("maxBytes", static_cast<double>(s.maxBytes));
  o.Set("cachedBytes", static_cast<double>(s.cachedBytes));
  o.Set("cachedBlocks", static_cast<double>(s.cachedBlocks));
  o.Set("liveBytes", static_cast<double>(s.liveBytes));
  o.Set("peakLiveBytes", static_cast<double>(s.peakLiveBytes));
  o.Set("hits", static_cast<double>(s.hits));
  o.Set("misses", static_cast<double>(s.misses));
  return o;
}

Napi::Value Throw(const Napi::CallbackInfo& info) {
  // Test hook: raises a LibTorch error inside a worker to prove it becomes a JS error, never an abort.
  auto job = std::make_shared<Job>();
  const std::string what = info.Length() > 0 ? info[0].As<Napi::String>().Utf8Value() : "torch";
  job->run = [what]() {
    if (what == "torch") {
      torch::Tensor a = torch::ones({2, 3}), b = torch::ones({4, 5});
      (void)torch::mm(a, b);
    } else if (what == "std") {
      throw std::runtime_error("std failure");
    } else {
      fail("ERR_HVAE_OPTION", "requested failure");
    }
  };
  job->result = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
  return runAsync(info.Env(), job);
}

// Busy work for the event-loop test: `ms` milliseconds of matrix products on a worker thread.
Napi::Value Spin(const Napi::CallbackInfo& info) {
  auto job = std::make_shared<Job>();
  const double ms = info[0].As<Napi::Number>().DoubleValue();
  job->run = [ms]() {
    applyThreads();
    c10::InferenceMode guard;
    auto t0 = std::chrono::steady_clock::now();
    torch::Tensor a = torch::randn({256, 256});
    while (std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() < ms) {
      a = torch::tanh(torch::mm(a, a) * 1e-3);
    }
  };
  job->result = [](Napi::Env env) -> Napi::Value { return env.Undefined(); };
  return runAsync(info.Env(), job);
}

// Test hooks: _setCpuDedicatedThread(on) routes CPU jobs through a dedicated thread as CUDA jobs are (workers.h);
// _setAdamImpl('foreach' | 'per-tensor') picks Adam's update (train.h). Each returns the previous setting.
Napi::Value SetCpuDedicatedThread(const Napi::CallbackInfo& info) {
  const bool on = info.Length() > 0 && info[0].ToBoolean().Value();
  return Napi::Boolean::New(info.Env(), setCpuDedicatedThread(on));
}

Napi::Value SetAdamImpl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string previous = adamForeach() ? "foreach" : "per-tensor";
  if (info.Length() > 0 && info[0].IsString()) {
    const std::string m = info[0].As<Napi::String>().Utf8Value();
    if (m != "foreach" && m != "per-tensor") {
      throw Napi::Error::New(env, "[ERR_HVAE_OPTION] Adam implementation must be 'foreach' or 'per-tensor'");
    }
    setAdamForeach(m == "foreach");
  }
  return Napi::String::New(env, previous);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // Debian's LibTorch starts with one intra-op thread; default to all cores unless the user asked otherwise.
  if (gNumThreads.load() == 0) {
    int n = defaultThreads();
    if (const char* e = std::getenv("HVAE_NUM_THREADS")) {
      try {
        n = std::max(1, std::stoi(e));
      } catch (...) {
      }
    } else if (const char* e2 = std::getenv("OMP_NUM_THREADS")) {
      try {
        n = std::max(1, std::stoi(e2));
      } catch (...) {
      }
    }
    gNumThreads = n;
  }
  // LibTorch's CPU tensors come from a caching allocator (allocator.h): worker-thread malloc arenas would otherwise
  // return each step's working set to the kernel and fault it back in.
  installCpuCachingAllocator();
  // HVAE_ADAM=per-tensor: torch.optim's single-tensor Adam loop instead of the multi-tensor update (diagnosis).
  if (const char* a = std::getenv("HVAE_ADAM")) {
    if (std::string(a) == "per-tensor") setAdamForeach(false);
  }
  // Per-environment state (the main thread and every worker_threads worker get their own): the class
  // constructor, released by N-API when the environment is torn down.
  Napi::Function ctor = ModelWrap::Define(env);
  auto* data = new AddonData{Napi::Persistent(ctor)};
  env.SetInstanceData<AddonData>(data);
  exports.Set("NativeModel", ctor);
  exports.Set("versions", Napi::Function::New(env, Versions));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads));
  exports.Set("setConvTranspose", Napi::Function::New(env, SetConvTranspose));
  exports.Set("setCudnn", Napi::Function::New(env, SetCudnn));
  exports.Set("setCpuFastPaths", Napi::Function::New(env, SetCpuFastPaths));
  exports.Set("setCpuCache", Napi::Function::New(env, SetCpuCache));
  exports.Set("cpuCache", Napi::Function::New(env, CpuCache));
  exports.Set("_throw", Napi::Function::New(env, Throw));
  exports.Set("_spin", Napi::Function::New(env, Spin));
  exports.Set("_setCpuDedicatedThread", Napi::Function::New(env, SetCpuDedicatedThread));
  exports.Set("_setAdamImpl", Napi::Function::New(env, SetAdamImpl));
  return exports;
}

}  // namespace hvae

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return hvae::Init(env, exports); }

NODE_API_MODULE(hvae_native, InitAddon)
