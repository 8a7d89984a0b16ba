// @module native/addon/client_handle: ClientTunnelHandle, the N-API face of native/src/client.h (tspc's end of
// a tunnel). The TypeScript side is src/dataplane/client-tunnel.ts.
#include <napi.h>

#include <algorithm>
#include <memory>
#include <string>

#include "../client.h"
#include "napi_util.h"

namespace tspdp {

namespace {

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
      if (type != "v6udpv4" && type != "v6v4" && type != "v4v6") {
        throw std::invalid_argument("type must be v6v4, v6udpv4 or v4v6");
      }
      options.udp = type == "v6udpv4";
      options.v4v6 = type == "v4v6";
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

}  // namespace

Napi::Function DefineClientTunnelHandle(Napi::Env env) { return ClientTunnelHandle::Define(env); }

}  // namespace tspdp
