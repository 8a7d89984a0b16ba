// @module native/addon: the N-API surface (node-addon-api). The only code that knows about JavaScript; it
// converts options and errors and moves batches. Nothing here runs per packet (docs/style.md §6): control
// datagrams cross once per batch through a ThreadSafeFunction, counters cross once per read into a
// caller-owned Float64Array. The TypeScript side is src/dataplane/native-addon.ts (used by native.ts and
// client-tunnel.ts); its types document the API, and it checks the counter layout exported here at load. The
// bench and test tools (packet generator, enterNetns) are a separate addon, native/bench/.
#include <napi.h>

#include <algorithm>
#include <memory>
#include <string>

#include "../dataplane.h"
#include "napi_util.h"

namespace tspdp {

namespace {

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
                           InstanceMethod<&DataPlaneHandle::ReadCountersOf>("readCountersOf"),
                           InstanceMethod<&DataPlaneHandle::ReadChanged>("readChanged"),
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
      Napi::Value v4v6 = o.Get("v4v6");
      options.v4v6 = v4v6.IsBoolean() && v4v6.As<Napi::Boolean>().Value();
      options.server_ipv6 = string_option(o, "serverIpv6", "");
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
   *  delegatedAddress?, delegatedLength? }) or addTunnel({ id, type: 'v4v6', clientAddress (IPv6), serverIpv4,
   *  clientIpv4 }), the latter only on a data plane opened with v4v6. */
  Napi::Value AddTunnel(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    DataPlane* plane = live(env);
    translate_errors(env, [&] {
      if (!info[0].IsObject()) throw std::invalid_argument("addTunnel(spec)");
      Napi::Object o = info[0].As<Napi::Object>();
      TunnelConfig c;
      c.id = static_cast<uint32_t>(int_option(o, "id", -1, 0, 0xffffffffLL));
      const std::string type = string_option(o, "type", "");
      if (type == "v4v6") {
        plane->table().upsert(v4v6_config(c.id, o, plane->carries_v4v6()));
        return;
      }
      if (type == "v6udpv4") {
        c.type = TunnelType::kV6udpv4;
        c.client_port = static_cast<uint16_t>(int_option(o, "clientPort", -1, 1, 65535));
      } else if (type == "v6v4") {
        c.type = TunnelType::kV6v4;
      } else {
        throw std::invalid_argument("type must be v6v4, v6udpv4 or v4v6: " + type);
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

  static TunnelConfig v4v6_config(uint32_t id, const Napi::Object& o, bool carried) {
    if (!carried) throw std::invalid_argument("v4v6 tunnels need a data plane opened with the v4v6 option");
    TunnelConfig c;
    c.id = id;
    c.type = TunnelType::kV4v6;
    c.client_endpoint6 = parse_ip6(string_option(o, "clientAddress", ""), "clientAddress");
    c.server_ip4 = parse_ipv4(string_option(o, "serverIpv4", ""), "serverIpv4");
    c.client_ip4 = parse_ipv4(string_option(o, "clientIpv4", ""), "clientIpv4");
    return c;
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

  /** readCountersOf(ids: Float64Array, out: Float64Array): the records of these ids (unknown ones left out);
   *  returns how many it wrote. `out` has room for one record per id, or the call throws. */
  Napi::Value ReadCountersOf(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    DataPlane* plane = live(env);
    return translate_errors(env, [&] {
      Napi::Float64Array ids = info[0].As<Napi::Float64Array>();
      Napi::Float64Array out = info[1].As<Napi::Float64Array>();
      if (out.ElementLength() < ids.ElementLength() * kCounterStride) {
        throw std::invalid_argument("readCountersOf: out has no room for a record per id");
      }
      const size_t n = plane->table().read_counters_of(ids.Data(), ids.ElementLength(), out.Data());
      return Napi::Number::New(env, static_cast<double>(n));
    });
  }

  /** readChanged(out: Float64Array): the records of the tunnels that counted since the last call, while room
   *  lasts; returns how many it wrote. When that fills `out`, more may be waiting: call again. */
  Napi::Value ReadChanged(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Float64Array out = info[0].As<Napi::Float64Array>();
    const size_t n = live(env)->table().read_changed(out.Data(), out.ElementLength() / kCounterStride);
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

template <size_t N>
Napi::Array names(Napi::Env env, const char* const (&list)[N]) {
  Napi::Array out = Napi::Array::New(env, N);
  for (size_t i = 0; i < N; i++) out.Set(static_cast<uint32_t>(i), Napi::String::New(env, list[i]));
  return out;
}

}  // namespace

Napi::Function DefineDataPlaneHandle(Napi::Env env) { return DataPlaneHandle::Define(env); }

/** The counter layout (engine/counters.h): src/dataplane/native-addon.ts compares it with its own at load. */
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("DataPlaneHandle", DefineDataPlaneHandle(env));
  exports.Set("ClientTunnelHandle", DefineClientTunnelHandle(env));
  exports.Set("Icmp6Handle", DefineIcmp6Handle(env));
  exports.Set("COUNTER_NAMES", names(env, kCounterNames));
  exports.Set("TUNNEL_RECORD_FIELDS", names(env, kTunnelRecordFields));
  exports.Set("CLIENT_COUNTER_NAMES", names(env, kClientCounterNames));
  exports.Set("COUNTER_STRIDE", Napi::Number::New(env, kCounterStride));
  exports.Set("NATIVE_COUNTER_COUNT", Napi::Number::New(env, kCounterCount));
  exports.Set("CLIENT_COUNTER_COUNT", Napi::Number::New(env, kClientCounterCount));
  return exports;
}

}  // namespace tspdp

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return tspdp::Init(env, exports); }

NODE_API_MODULE(tspdp, InitModule)
