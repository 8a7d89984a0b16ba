// @module native/addon/icmp6_handle: Icmp6Handle, the N-API face of native/src/io/icmp6.h (tspc's router
// advertisements on its LAN). The TypeScript side is src/client/ra-socket.ts.
//
// Receiving needs no thread: libuv polls the descriptor on Node's own loop (uv_poll), and each wake reads what
// is waiting, at most kMaxPerWake messages, calling `onMessage` for each. A solicitation flood therefore costs a
// bounded amount of work per loop turn; the rate of answers is limited on the TypeScript side.
#include <napi.h>
#include <uv.h>

#include <string>
#include <vector>

#include "../io/icmp6.h"
#include "napi_util.h"

namespace tspdp {

namespace {

constexpr int kMaxPerWake = 32;

/** new Icmp6Handle({ interface, acceptTypes, joinGroup }, onMessage(source, hopLimit, data)). */
class Icmp6Handle : public Napi::ObjectWrap<Icmp6Handle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Icmp6Handle",
                       {
                           InstanceMethod<&Icmp6Handle::Send>("send"),
                           InstanceMethod<&Icmp6Handle::Close>("close"),
                       });
  }

  explicit Icmp6Handle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Icmp6Handle>(info), env_(info.Env()) {
    translate_errors(env_, [&] {
      if (!info[0].IsObject() || !info[1].IsFunction())
        throw std::invalid_argument("Icmp6Handle(options, onMessage)");
      Napi::Object o = info[0].As<Napi::Object>();
      const std::string ifname = string_option(o, "interface", "");
      std::vector<int> types;
      Napi::Value accept = o.Get("acceptTypes");
      if (accept.IsArray()) {
        Napi::Array list = accept.As<Napi::Array>();
        for (uint32_t i = 0; i < list.Length(); i++) types.push_back(list.Get(i).As<Napi::Number>().Int32Value());
      }
      fd_ = open_icmp6(ifname, types, string_option(o, "joinGroup", ""), &ifindex_);
      callback_ = Napi::Persistent(info[1].As<Napi::Function>());
      napi_value name = Napi::String::New(env_, "tspc-icmp6");
      if (napi_async_init(env_, nullptr, name, &async_) != napi_ok) throw std::runtime_error("napi_async_init failed");
      uv_loop_t* loop = nullptr;
      if (napi_get_uv_event_loop(env_, &loop) != napi_ok) throw std::runtime_error("no event loop");
      poll_ = new uv_poll_t;
      poll_->data = this;
      if (uv_poll_init(loop, poll_, fd_.get()) != 0) {
        delete poll_;
        poll_ = nullptr;
        throw std::runtime_error("uv_poll_init failed");
      }
      uv_poll_start(poll_, UV_READABLE, &Icmp6Handle::on_readable);
    });
  }

  ~Icmp6Handle() override { stop(); }

 private:
  /** send(destination, source, data): source '' lets the kernel pick. Throws with the errno's code. */
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    translate_errors(env, [&] {
      if (!fd_valid()) throw std::invalid_argument("ICMPv6 socket is closed");
      if (!info[0].IsString() || !info[1].IsString() || !info[2].IsTypedArray())
        throw std::invalid_argument("send(destination, source, data)");
      Napi::Uint8Array data = info[2].As<Napi::Uint8Array>();
      send_icmp6(fd_.get(), ifindex_, info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value(),
                 data.Data(), data.ByteLength());
    });
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    stop();
    return info.Env().Undefined();
  }

  bool fd_valid() const { return fd_.get() >= 0; }

  /** Stops polling (the handle is freed by libuv once closed), then closes the socket. Idempotent. */
  void stop() {
    if (poll_ != nullptr) {
      uv_poll_stop(poll_);
      poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    fd_.reset();
    if (!callback_.IsEmpty()) callback_.Reset();
    if (async_ != nullptr) napi_async_destroy(env_, async_);
    async_ = nullptr;
  }

  static void on_readable(uv_poll_t* handle, int status, int /*events*/) {
    auto* self = static_cast<Icmp6Handle*>(handle->data);
    if (self == nullptr || status < 0) return;
    Napi::Env env = self->env_;
    Napi::HandleScope scope(env);
    for (int i = 0; i < kMaxPerWake && self->fd_valid(); i++) {
      Icmp6Message m;
      try {
        if (!receive_icmp6(self->fd_.get(), &m)) return;
      } catch (const SysError&) {
        // a socket that keeps failing would wake the loop for ever: stop receiving (solicitations go
        // unanswered; the periodic RAs go on, and their sends report what is wrong)
        uv_poll_stop(handle);
        return;
      }
      Napi::Buffer<uint8_t> data = Napi::Buffer<uint8_t>::Copy(env, m.data.data(), m.data.size());
      napi_value result;
      napi_value args[] = {Napi::String::New(env, m.source), Napi::Number::New(env, m.hop_limit), data};
      napi_status s = napi_make_callback(env, self->async_, env.Global(), self->callback_.Value(), 3, args, &result);
      if (s == napi_pending_exception) {
        napi_value error;
        napi_get_and_clear_last_exception(env, &error);
        napi_fatal_exception(env, error);
        return;
      }
      if (self->poll_ == nullptr) return;  // the callback closed us
    }
  }

  Napi::Env env_;
  Fd fd_;
  unsigned ifindex_ = 0;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference callback_;
  napi_async_context async_ = nullptr;
};

}  // namespace

Napi::Function DefineIcmp6Handle(Napi::Env env) { return Icmp6Handle::Define(env); }

}  // namespace tspdp
