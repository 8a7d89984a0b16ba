// @module native/bench/bench_addon: tsp_bench.node, the tools the benchmark and the root tests need and the
// broker must not ship: the packet generator (bench/dataplane.ts) and enterNetns (test/unit/dataplane/native).
// Built by native/binding.gyp as a second target when native/bench/ is present (it is not in the npm package);
// loaded through test/helpers/native-bench.ts.
#include <napi.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <thread>
#include <vector>

#include "../src/addon/napi_util.h"
#include "generator.h"

namespace tspdp {

namespace {

// ---------------------------------------------------------------------------------------------------------------

/** runGenerator({ netns?, family: 4|6, packets: Buffer[], seconds, cpu? }): Promise<{ sent, errors, seconds }> */
class GeneratorWorker : public Napi::AsyncWorker {
 public:
  GeneratorWorker(Napi::Env env, int fd, bool ipv6, std::vector<std::vector<uint8_t>> packets, double seconds, int cpu)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        fd_(fd),
        ipv6_(ipv6),
        packets_(std::move(packets)),
        seconds_(seconds),
        cpu_(cpu) {}
  ~GeneratorWorker() override {
    if (fd_ >= 0) close(fd_);
  }
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    // A thread of our own: pinning must not stick to a libuv pool thread.
    std::thread runner([this] { result_ = run_generator(fd_, ipv6_, packets_, seconds_, cpu_); });
    runner.join();
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object r = Napi::Object::New(env);
    r.Set("sent", Napi::Number::New(env, static_cast<double>(result_.sent)));
    r.Set("errors", Napi::Number::New(env, static_cast<double>(result_.errors)));
    r.Set("seconds", Napi::Number::New(env, result_.seconds));
    deferred_.Resolve(r);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  int fd_;
  bool ipv6_;
  std::vector<std::vector<uint8_t>> packets_;
  double seconds_;
  int cpu_;
  GeneratorResult result_;
};

Napi::Value RunGenerator(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return translate_errors(env, [&]() -> Napi::Value {
    if (!info[0].IsObject()) throw std::invalid_argument("runGenerator(options)");
    Napi::Object o = info[0].As<Napi::Object>();
    const bool ipv6 = int_option(o, "family", 4, 4, 6) == 6;
    Napi::Array list = o.Get("packets").As<Napi::Array>();
    std::vector<std::vector<uint8_t>> packets;
    for (uint32_t i = 0; i < list.Length(); i++) {
      Napi::Uint8Array p = list.Get(i).As<Napi::Uint8Array>();
      packets.emplace_back(p.Data(), p.Data() + p.ByteLength());
    }
    const double seconds = o.Get("seconds").As<Napi::Number>().DoubleValue();
    const int cpu = static_cast<int>(int_option(o, "cpu", -1, -1, 4095));
    int fd;
    {
      NetnsGuard in_namespace(string_option(o, "netns", ""));
      fd = open_generator_socket(ipv6);
    }
    auto* worker = new GeneratorWorker(env, fd, ipv6, std::move(packets), seconds, cpu);
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  });
}

/** Moves the calling thread into the named namespace for good. */
void enter_netns(const std::string& name) {
  Fd target(open_netns(name));
  if (setns(target.get(), CLONE_NEWNET) != 0) throw SysError("setns", errno, "network namespace " + name);
}

/** enterNetns(name): moves the calling (main) thread into a namespace for good; for tests that run inside one. */
Napi::Value EnterNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  translate_errors(env, [&] { enter_netns(info[0].As<Napi::String>().Utf8Value()); });
  return env.Undefined();
}


}  // namespace

}  // namespace tspdp

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("runGenerator", Napi::Function::New<tspdp::RunGenerator>(env, "runGenerator"));
  exports.Set("enterNetns", Napi::Function::New<tspdp::EnterNetns>(env, "enterNetns"));
  return exports;
}

NODE_API_MODULE(tsp_bench, InitModule)
