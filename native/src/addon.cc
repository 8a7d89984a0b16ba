// @module native/addon: the N-API surface (node-addon-api). The only file that knows about JavaScript; it
// converts options and errors and moves batches. Nothing here runs per packet (docs/style.md §6): control
// datagrams cross once per batch through a ThreadSafeFunction, counters cross once per read into a
// caller-owned Float64Array. The TypeScript side is src/dataplane/native.ts; its types document the API.
#include <arpa/inet.h>
#include <napi.h>
#include <unistd.h>

#include <algorithm>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "client.h"
#include "common.h"
#include "dataplane.h"
#include "generator.h"

namespace tspdp {

namespace {

/** Rethrows whatever the core threw as a JavaScript Error with `code` (errno name or ERR_INVALID_ARG_VALUE),
 *  `errno` and `syscall`, so src/dataplane can map it to a BrokerError without parsing messages. */
template <typename F>
auto translate_errors(Napi::Env env, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const SysError& e) {
    Napi::Error error = Napi::Error::New(env, e.what());
    const char* name = strerrorname_np(e.err());
    error.Set("code", Napi::String::New(env, name != nullptr ? name : "EUNKNOWN"));
    error.Set("errno", Napi::Number::New(env, e.err()));
    error.Set("syscall", Napi::String::New(env, e.syscall()));
    throw error;
  } catch (const std::invalid_argument& e) {
    Napi::Error error = Napi::TypeError::New(env, e.what());
    error.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_VALUE"));
    throw error;
  }
}

std::string string_option(const Napi::Object& o, const char* key, const std::string& fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsString()) throw std::invalid_argument(std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

int64_t int_option(const Napi::Object& o, const char* key, int64_t fallback, int64_t min, int64_t max) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsNumber()) throw std::invalid_argument(std::string(key) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int64_t>(d)) || d < static_cast<double>(min) ||
      d > static_cast<double>(max)) {
    throw std::invalid_argument(std::string(key) + " out of range");
  }
  return static_cast<int64_t>(d);
}

Ip6 parse_ip6(const std::string& text, const char* what) {
  uint8_t bytes[16];
  if (inet_pton(AF_INET6, text.c_str(), bytes) != 1) {
    throw std::invalid_argument(std::string(what) + ": not an IPv6 address: " + text);
  }
  return load_ip6(bytes);
}

/** Builds one onControl batch: ControlDatagram objects with fresh Buffers (the receiver owns them). */
Napi::Array control_batch(Napi::Env env, std::vector<ControlItem>& items) {
  Napi::Array batch = Napi::Array::New(env, items.size());
  for (size_t i = 0; i < items.size(); i++) {
    ControlItem& item = items[i];
    Napi::Object from = Napi::Object::New(env);
    from.Set("address", format_ipv4(item.from_address));
    from.Set("port", Napi::Number::New(env, item.from_port));
    Napi::Object datagram = Napi::Object::New(env);
    datagram.Set("from", from);
    if (item.local_address != 0) datagram.Set("localAddress", format_ipv4(item.local_address));
    datagram.Set("data", Napi::Buffer<uint8_t>::Copy(env, item.data.data(), item.data.size()));
    batch.Set(static_cast<uint32_t>(i), datagram);
  }
  return batch;
}

/** What the ThreadSafeFunction needs on the JavaScript thread. Shared with the wrapper object so that a
 *  drain already queued when close() runs still finds the queue alive. */
struct ControlContext {
  ControlQueue* queue;
  std::shared_ptr<void> owner;  // keeps the DataPlane or ClientTunnel (and its queue) alive
};

void call_control_handler(Napi::Env env, Napi::Function handler, ControlContext* context, void*) {
  if (env == nullptr || handler.IsEmpty()) return;
  std::vector<ControlItem> items;
  context->queue->drain(&items);
  if (items.empty()) return;
  handler.Call({control_batch(env, items)});
}

using ControlTsfn = Napi::TypedThreadSafeFunction<ControlContext, void, call_control_handler>;

ControlTsfn make_control_tsfn(Napi::Env env, Napi::Function handler, ControlQueue* queue, std::shared_ptr<void> owner,
                              const char* name) {
  auto* context = new ControlContext{queue, std::move(owner)};
  ControlTsfn tsfn = ControlTsfn::New(env, handler, name, 0, 1, context,
                                      [](Napi::Env, void*, ControlContext* c) { delete c; });
  queue->set_notify([tsfn]() mutable { tsfn.NonBlockingCall(); });
  return tsfn;
}

// ---------------------------------------------------------------------------------------------------------------

/** new DataPlaneHandle(options, onControl): opens the TUN and sockets; start() starts forwarding. */
class DataPlaneHandle : public Napi::ObjectWrap<DataPlaneHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "DataPlaneHandle",
                       {
                           InstanceMethod<&DataPlaneHandle::Start>("start"),
                           InstanceMethod<&DataPlaneHandle::UdpPort>("udpPort"),
                           InstanceMethod<&DataPlaneHandle::TunName>("tunName"),
                           InstanceMethod<&DataPlaneHandle::AddTunnel>("addTunnel"),
                           InstanceMethod<&DataPlaneHandle::RemoveTunnel>("removeTunnel"),
                           InstanceMethod<&DataPlaneHandle::TunnelCount>("tunnelCount"),
                           InstanceMethod<&DataPlaneHandle::ReadCounters>("readCounters"),
                           InstanceMethod<&DataPlaneHandle::ReadNativeCounters>("readNativeCounters"),
                           InstanceMethod<&DataPlaneHandle::SendControl>("sendControl"),
                           InstanceMethod<&DataPlaneHandle::Close>("close"),
                       });
  }

  explicit DataPlaneHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DataPlaneHandle>(info) {
    Napi::Env env = info.Env();
    translate_errors(env, [&] {
      if (!info[0].IsObject() || !info[1].IsFunction()) {
        throw std::invalid_argument("DataPlaneHandle(options, onControl)");
      }
      Napi::Object o = info[0].As<Napi::Object>();
      DataPlaneOptions options;
      options.netns = string_option(o, "netns", "");
      options.tun_name = string_option(o, "tunName", options.tun_name);
      options.listen_address = string_option(o, "listenAddress", options.listen_address);
      options.port = static_cast<uint16_t>(int_option(o, "port", options.port, 0, 65535));
      options.server_ipv4 = string_option(o, "serverIpv4", "");
      options.cpu = static_cast<int>(int_option(o, "cpu", -1, -1, 4095));
      options.spin_us = static_cast<int>(int_option(o, "spinMicros", 0, 0, 1000000));
      Napi::Value uring = o.Get("tunUring");
      if (uring.IsBoolean()) options.tun_uring = uring.As<Napi::Boolean>().Value();
      options.control_queue_cap =
          static_cast<size_t>(int_option(o, "controlQueueCap", kDefaultControlQueueCap, 1, 1 << 20));
      plane_ = std::make_shared<DataPlane>(options);
      tsfn_ = make_control_tsfn(env, info[1].As<Napi::Function>(), &plane_->control(), plane_, "tsp-control");
      // If the process exits without close(), stop the threads before Node tears the environment down.
      napi_add_env_cleanup_hook(env, &DataPlaneHandle::stop_at_exit, plane_.get());
    });
  }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    live(info.Env())->start();
    return info.Env().Undefined();
  }
  Napi::Value UdpPort(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), live(info.Env())->udp_port());
  }
  Napi::Value TunName(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), live(info.Env())->tun_name());
  }

  /** addTunnel({ id, type: 'v6v4'|'v6udpv4', clientAddress, clientPort, serverIpv6, clientIpv6,
   *  delegatedAddress?, delegatedLength? }) */
  Napi::Value AddTunnel(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    DataPlane* plane = live(env);
    translate_errors(env, [&] {
      if (!info[0].IsObject()) throw std::invalid_argument("addTunnel(spec)");
      Napi::Object o = info[0].As<Napi::Object>();
      TunnelConfig c;
      c.id = static_cast<uint32_t>(int_option(o, "id", -1, 0, 0xffffffffLL));
      const std::string type = string_option(o, "type", "");
      if (type == "v6udpv4") {
        c.type = TunnelType::kV6udpv4;
        c.client_port = static_cast<uint16_t>(int_option(o, "clientPort", -1, 1, 65535));
      } else if (type == "v6v4") {
        c.type = TunnelType::kV6v4;
      } else {
        throw std::invalid_argument("type must be v6v4 or v6udpv4: " + type);
      }
      c.client_address = parse_ipv4(string_option(o, "clientAddress", ""), "clientAddress");
      c.server_ip6 = parse_ip6(string_option(o, "serverIpv6", ""), "serverIpv6");
      c.client_ip6 = parse_ip6(string_option(o, "clientIpv6", ""), "clientIpv6");
      const std::string delegated = string_option(o, "delegatedAddress", "");
      if (!delegated.empty()) {
        c.has_delegated = true;
        c.delegated_length = static_cast<int>(int_option(o, "delegatedLength", -1, 1, 128));
        c.delegated = parse_ip6(delegated, "delegatedAddress");
        if (mask_ip6(c.delegated, c.delegated_length) != c.delegated) {
          throw std::invalid_argument("delegated prefix has host bits set: " + delegated);
        }
      }
      plane->table().upsert(c);
    });
    return env.Undefined();
  }

  Napi::Value RemoveTunnel(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const double id = info[0].As<Napi::Number>().DoubleValue();
    if (!(id >= 0 && id <= 0xffffffffU)) return Napi::Boolean::New(env, false);
    return Napi::Boolean::New(env, live(env)->table().remove(static_cast<uint32_t>(id)));
  }

  Napi::Value TunnelCount(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env())->table().size()));
  }

  /** readCounters(out: Float64Array): fills kCounterStride values per tunnel while room lasts; returns the
   *  number of tunnels, so a caller whose array was too small grows it and calls again. */
  Napi::Value ReadCounters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Float64Array out = info[0].As<Napi::Float64Array>();
    const size_t n = live(env)->table().read_counters(out.Data(), out.ElementLength() / kCounterStride);
    return Napi::Number::New(env, static_cast<double>(n));
  }

  /** readNativeCounters(out: Float64Array of at least kCounterCount): the Counter enum, in order. */
  Napi::Value ReadNativeCounters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Float64Array out = info[0].As<Napi::Float64Array>();
    Counters& c = live(env)->counters();
    const size_t n = std::min<size_t>(out.ElementLength(), kCounterCount);
    for (size_t i = 0; i < n; i++) out[i] = static_cast<double>(c.value[i].load(std::memory_order_relaxed));
    return Napi::Number::New(env, kCounterCount);
  }

  /** sendControl(address, port, data: Uint8Array): false if the kernel refused it. */
  Napi::Value SendControl(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    DataPlane* plane = live(env);
    return translate_errors(env, [&] {
      const uint32_t address = parse_ipv4(info[0].As<Napi::String>().Utf8Value(), "address");
      const uint16_t port = static_cast<uint16_t>(info[1].As<Napi::Number>().Uint32Value());
      Napi::Uint8Array data = info[2].As<Napi::Uint8Array>();
      return Napi::Boolean::New(env, plane->send_control(address, port, data.Data(), data.ByteLength()));
    });
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (plane_) {
      napi_remove_env_cleanup_hook(info.Env(), &DataPlaneHandle::stop_at_exit, plane_.get());
      plane_->stop();  // no thread can notify after this
      tsfn_.Release();
      plane_.reset();  // the ControlContext keeps it alive until a queued drain has run
    }
    return info.Env().Undefined();
  }

  DataPlane* live(Napi::Env env) {
    if (!plane_) throw Napi::Error::New(env, "data plane is closed");
    return plane_.get();
  }
  static void stop_at_exit(void* plane) { static_cast<DataPlane*>(plane)->stop(); }

  std::shared_ptr<DataPlane> plane_;
  ControlTsfn tsfn_;
};

// ---------------------------------------------------------------------------------------------------------------

/** new ClientTunnelHandle(options, onControl?): the client end of one tunnel (see client.h). */
class ClientTunnelHandle : public Napi::ObjectWrap<ClientTunnelHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ClientTunnelHandle",
                       {
                           InstanceMethod<&ClientTunnelHandle::Start>("start"),
                           InstanceMethod<&ClientTunnelHandle::TunName>("tunName"),
                           InstanceMethod<&ClientTunnelHandle::LocalPort>("localPort"),
                           InstanceMethod<&ClientTunnelHandle::ReadCounters>("readCounters"),
                           InstanceMethod<&ClientTunnelHandle::SendControl>("sendControl"),
                           InstanceMethod<&ClientTunnelHandle::Close>("close"),
                       });
  }

  explicit ClientTunnelHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ClientTunnelHandle>(info) {
    Napi::Env env = info.Env();
    translate_errors(env, [&] {
      if (!info[0].IsObject()) throw std::invalid_argument("ClientTunnelHandle(options, onControl?)");
      Napi::Object o = info[0].As<Napi::Object>();
      ClientOptions options;
      options.netns = string_option(o, "netns", "");
      options.tun_name = string_option(o, "tunName", options.tun_name);
      const std::string type = string_option(o, "type", "v6udpv4");
      if (type != "v6udpv4" && type != "v6v4") throw std::invalid_argument("type must be v6v4 or v6udpv4");
      options.udp = type == "v6udpv4";
      options.server_address = string_option(o, "serverAddress", "");
      options.server_port = static_cast<uint16_t>(int_option(o, "serverPort", 3653, 1, 65535));
      options.local_address = string_option(o, "localAddress", "");
      options.local_port = static_cast<uint16_t>(int_option(o, "localPort", 0, 0, 65535));
      options.cpu = static_cast<int>(int_option(o, "cpu", -1, -1, 4095));
      client_ = std::make_shared<ClientTunnel>(options);
      if (info[1].IsFunction()) {
        tsfn_ = make_control_tsfn(env, info[1].As<Napi::Function>(), &client_->control(), client_, "tspc-control");
        has_tsfn_ = true;
      }
      napi_add_env_cleanup_hook(env, &ClientTunnelHandle::stop_at_exit, client_.get());
    });
  }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    live(info.Env())->start();
    return info.Env().Undefined();
  }
  Napi::Value TunName(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), live(info.Env())->tun_name());
  }
  Napi::Value LocalPort(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), live(info.Env())->local_port());
  }
  /** readCounters(out: Float64Array of at least kClientCounterCount): the ClientCounter enum, in order. */
  Napi::Value ReadCounters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ClientTunnel* client = live(env);
    Napi::Float64Array out = info[0].As<Napi::Float64Array>();
    const size_t n = std::min<size_t>(out.ElementLength(), kClientCounterCount);
    for (size_t i = 0; i < n; i++) out[i] = static_cast<double>(client->counter(static_cast<ClientCounter>(i)));
    return Napi::Number::New(env, kClientCounterCount);
  }
  Napi::Value SendControl(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
    return Napi::Boolean::New(env, live(env)->send_control(data.Data(), data.ByteLength()));
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (client_) {
      napi_remove_env_cleanup_hook(info.Env(), &ClientTunnelHandle::stop_at_exit, client_.get());
      client_->stop();
      if (has_tsfn_) tsfn_.Release();
      client_.reset();
    }
    return info.Env().Undefined();
  }

  ClientTunnel* live(Napi::Env env) {
    if (!client_) throw Napi::Error::New(env, "client tunnel is closed");
    return client_.get();
  }
  static void stop_at_exit(void* client) { static_cast<ClientTunnel*>(client)->stop(); }

  std::shared_ptr<ClientTunnel> client_;
  ControlTsfn tsfn_;
  bool has_tsfn_ = false;
};

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

/** enterNetns(name): moves the calling (main) thread into a namespace for good; for tests that run inside one. */
Napi::Value EnterNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  translate_errors(env, [&] { enter_netns(info[0].As<Napi::String>().Utf8Value()); });
  return env.Undefined();
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("DataPlaneHandle", DataPlaneHandle::Define(env));
  exports.Set("ClientTunnelHandle", ClientTunnelHandle::Define(env));
  exports.Set("runGenerator", Napi::Function::New<RunGenerator>(env, "runGenerator"));
  exports.Set("enterNetns", Napi::Function::New<EnterNetns>(env, "enterNetns"));
  exports.Set("COUNTER_STRIDE", Napi::Number::New(env, kCounterStride));
  exports.Set("NATIVE_COUNTER_COUNT", Napi::Number::New(env, kCounterCount));
  exports.Set("CLIENT_COUNTER_COUNT", Napi::Number::New(env, kClientCounterCount));
  return exports;
}

}  // namespace tspdp

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return tspdp::Init(env, exports); }

NODE_API_MODULE(tspdp, InitModule)
