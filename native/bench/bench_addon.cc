// @module native/bench/bench_addon: tsp_bench.node, the tools the benchmark and the root tests need and the
// broker must not ship: the packet generator (bench/dataplane.ts), enterNetns (test/unit/dataplane/native) and a
// raw IPv6 next-header-4 socket that stands in for a v4v6 tunnel client in the contract tests (ipip*).
// Built by native/binding.gyp as a second target when native/bench/ is present (it is not in the npm package);
// loaded through test/helpers/native-bench.ts.
#include <arpa/inet.h>
#include <napi.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
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

sockaddr_in6 ipv6_sockaddr(const std::string& text) {
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  if (inet_pton(AF_INET6, text.c_str(), &sa.sin6_addr) != 1) throw std::invalid_argument("not IPv6: " + text);
  return sa;
}

/** ipipOpen(bind, peer?): a raw IPv6 socket for next header 4 bound to `bind`, connected to `peer` if given (then
 *  only its packets arrive). Returns the descriptor; the caller closes it with ipipClose. */
Napi::Value IpipOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return translate_errors(env, [&] {
    Fd fd(socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_IPIP));
    if (fd.get() < 0) throw SysError("socket", errno, "raw IPv6 next-header-4 socket");
    sockaddr_in6 local = ipv6_sockaddr(info[0].As<Napi::String>().Utf8Value());
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) throw SysError("bind", errno, "ipip");
    if (info[1].IsString()) {
      sockaddr_in6 peer = ipv6_sockaddr(info[1].As<Napi::String>().Utf8Value());
      if (connect(fd.get(), reinterpret_cast<sockaddr*>(&peer), sizeof peer) != 0) {
        throw SysError("connect", errno, "ipip");
      }
    }
    return Napi::Number::New(env, fd.release());
  });
}

/** ipipSend(fd, to, data): one datagram (the kernel adds the IPv6 header); throws on failure. */
Napi::Value IpipSend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  translate_errors(env, [&] {
    const int fd = info[0].As<Napi::Number>().Int32Value();
    sockaddr_in6 to = ipv6_sockaddr(info[1].As<Napi::String>().Utf8Value());
    Napi::Uint8Array data = info[2].As<Napi::Uint8Array>();
    if (sendto(fd, data.Data(), data.ByteLength(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
      throw SysError("sendto", errno, "ipip");
    }
  });
  return env.Undefined();
}

/** ipipReceive(fd): the next waiting datagram's payload (the inner packet) as a Buffer, or null; never blocks. */
Napi::Value IpipReceive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = info[0].As<Napi::Number>().Int32Value();
  uint8_t buffer[9216];
  const ssize_t n = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
  if (n < 0) return env.Null();
  return Napi::Buffer<uint8_t>::Copy(env, buffer, static_cast<size_t>(n));
}

Napi::Value IpipClose(const Napi::CallbackInfo& info) {
  close(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

}  // namespace

}  // namespace tspdp

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("runGenerator", Napi::Function::New<tspdp::RunGenerator>(env, "runGenerator"));
  exports.Set("enterNetns", Napi::Function::New<tspdp::EnterNetns>(env, "enterNetns"));
  exports.Set("ipipOpen", Napi::Function::New<tspdp::IpipOpen>(env, "ipipOpen"));
  exports.Set("ipipSend", Napi::Function::New<tspdp::IpipSend>(env, "ipipSend"));
  exports.Set("ipipReceive", Napi::Function::New<tspdp::IpipReceive>(env, "ipipReceive"));
  exports.Set("ipipClose", Napi::Function::New<tspdp::IpipClose>(env, "ipipClose"));
  return exports;
}

NODE_API_MODULE(tsp_bench, InitModule)
