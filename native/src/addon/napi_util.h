// @module native/addon/napi_util: what both N-API surfaces share (addon/ for production, native/bench/ for the
// bench tools): errors carried to JavaScript with their errno code, option parsing, and the control-datagram
// hand-off (one ThreadSafeFunction call per burst, docs/style.md §6).
#pragma once

#include <arpa/inet.h>
#include <napi.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../engine/control_queue.h"
#include "../engine/packet.h"
#include "../io/system.h"

namespace tspdp {

/** Rethrows whatever the core threw as a JavaScript Error with `code` (errno name or ERR_INVALID_ARG_VALUE),
 *  `errno` and `syscall`, so src/dataplane can map it to a BrokerError without parsing messages. */
template <typename F>
inline auto translate_errors(Napi::Env env, F&& body) -> decltype(body()) {
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

inline std::string string_option(const Napi::Object& o, const char* key, const std::string& fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsString()) throw std::invalid_argument(std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

inline int64_t int_option(const Napi::Object& o, const char* key, int64_t fallback, int64_t min, int64_t max) {
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

inline Ip6 parse_ip6(const std::string& text, const char* what) {
  uint8_t bytes[16];
  if (inet_pton(AF_INET6, text.c_str(), bytes) != 1) {
    throw std::invalid_argument(std::string(what) + ": not an IPv6 address: " + text);
  }
  return load_ip6(bytes);
}

/** Builds one onControl batch: ControlDatagram objects with fresh Buffers (the receiver owns them). */
inline Napi::Array control_batch(Napi::Env env, std::vector<ControlItem>& items) {
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

inline void call_control_handler(Napi::Env env, Napi::Function handler, ControlContext* context, void*) {
  if (env == nullptr || handler.IsEmpty()) return;
  std::vector<ControlItem> items;
  context->queue->drain(&items);
  if (items.empty()) return;
  handler.Call({control_batch(env, items)});
}

using ControlTsfn = Napi::TypedThreadSafeFunction<ControlContext, void, call_control_handler>;

inline ControlTsfn make_control_tsfn(Napi::Env env, Napi::Function handler, ControlQueue* queue, std::shared_ptr<void> owner,
                              const char* name) {
  auto* context = new ControlContext{queue, std::move(owner)};
  ControlTsfn tsfn = ControlTsfn::New(env, handler, name, 0, 1, context,
                                      [](Napi::Env, void*, ControlContext* c) { delete c; });
  queue->set_notify([tsfn]() mutable { tsfn.NonBlockingCall(); });
  return tsfn;
}

/** The classes the production addon exports (addon.cc, client_handle.cc, icmp6_handle.cc). */
Napi::Function DefineDataPlaneHandle(Napi::Env env);
Napi::Function DefineClientTunnelHandle(Napi::Env env);
Napi::Function DefineIcmp6Handle(Napi::Env env);

}  // namespace tspdp
