// @module native/ebpf/ebpf_addon: the N-API surface of the fast path (tsp_ebpf.node), a separate addon from
// tspdp.node so that the production addon never needs libbpf to load: this one is built only where libbpf's
// headers are (binding.gyp), and src/dataplane/ebpf-addon.ts loads it only for `dataplane.driver` ebpf/auto.
// Counters cross once per read as one Float64Array of records laid out like the production addon's
// (id, rxPackets, rxBytes, txPackets, txBytes, lastRxMs).
#include <arpa/inet.h>
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "../addon/napi_util.h"
#include "loader.h"

namespace tspdp {

namespace {

constexpr size_t kRecordFields = 6;

void copy_ipv6(const Napi::Object& o, const char* key, uint8_t* out) {
  const std::string text = string_option(o, key, "");
  if (inet_pton(AF_INET6, text.c_str(), out) != 1) throw std::invalid_argument(std::string(key) + ": not IPv6");
}

uint32_t ipv4_of(const Napi::Object& o, const char* key) {
  const std::string text = string_option(o, key, "");
  return text.empty() ? 0 : parse_ipv4(text, key);
}

Napi::Float64Array records(Napi::Env env, const std::vector<FastPathRecord>& rs) {
  Napi::Float64Array out = Napi::Float64Array::New(env, rs.size() * kRecordFields);
  for (size_t i = 0; i < rs.size(); i++) {
    const FastPathRecord& r = rs[i];
    const double fields[kRecordFields] = {static_cast<double>(r.id), r.rx_packets, r.rx_bytes,
                                          r.tx_packets, r.tx_bytes, r.last_rx_ms};
    for (size_t f = 0; f < kRecordFields; f++) out[i * kRecordFields + f] = fields[f];
  }
  return out;
}

std::vector<std::string> strings_option(const Napi::Object& o, const char* key) {
  std::vector<std::string> out;
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) throw std::invalid_argument(std::string(key) + " must be an array of strings");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    if (!a.Get(i).IsString()) throw std::invalid_argument(std::string(key) + " must be an array of strings");
    out.push_back(a.Get(i).As<Napi::String>().Utf8Value());
  }
  return out;
}

/** new FastPathHandle(options): loads and attaches; close() detaches. */
class FastPathHandle : public Napi::ObjectWrap<FastPathHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FastPathHandle",
                       {
                           InstanceMethod<&FastPathHandle::AddTunnel>("addTunnel"),
                           InstanceMethod<&FastPathHandle::RemoveTunnel>("removeTunnel"),
                           InstanceMethod<&FastPathHandle::TunnelCount>("tunnelCount"),
                           InstanceMethod<&FastPathHandle::ReadCounters>("readCounters"),
                           InstanceMethod<&FastPathHandle::ReadCountersOf>("readCountersOf"),
                           InstanceMethod<&FastPathHandle::ReadChanged>("readChanged"),
                           InstanceMethod<&FastPathHandle::ReadStats>("readStats"),
                           InstanceMethod<&FastPathHandle::Close>("close"),
                       });
  }

  explicit FastPathHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FastPathHandle>(info) {
    translate_errors(info.Env(), [&] {
      if (!info[0].IsObject()) throw std::invalid_argument("FastPathHandle(options)");
      Napi::Object o = info[0].As<Napi::Object>();
      FastPathOptions options;
      options.object_path = string_option(o, "objectPath", "");
      options.netns = string_option(o, "netns", "");
      options.tun_name = string_option(o, "tunName", "");
      options.uplinks = strings_option(o, "uplinks");
      for (const std::string& a : strings_option(o, "localIpv4")) options.local_ipv4.push_back(parse_ipv4(a, "localIpv4"));
      options.tsp_port = static_cast<uint16_t>(int_option(o, "port", 3653, 1, 65535));
      options.max_inner_bytes = static_cast<uint16_t>(int_option(o, "maxInnerBytes", 1280, 1280, 65535));
      options.proto41_source_ipv4 = ipv4_of(o, "proto41SourceIpv4");
      path_ = std::make_shared<FastPath>(options);
      napi_add_env_cleanup_hook(info.Env(), &FastPathHandle::close_at_exit, path_.get());
    });
  }

 private:
  static void close_at_exit(void* path) { static_cast<FastPath*>(path)->close(); }

  FastPath* live(Napi::Env env) {
    if (!path_) throw Napi::Error::New(env, "fast path closed");
    return path_.get();
  }

  Napi::Value AddTunnel(const Napi::CallbackInfo& info) {
    FastPath* path = live(info.Env());
    translate_errors(info.Env(), [&] {
      if (!info[0].IsObject()) throw std::invalid_argument("addTunnel(spec)");
      Napi::Object o = info[0].As<Napi::Object>();
      FastPathTunnel t;
      t.id = static_cast<uint32_t>(int_option(o, "id", 0, 0, 0xffffffffLL));
      const std::string type = string_option(o, "type", "");
      if (type != "v6udpv4" && type != "v6v4") throw std::invalid_argument("type: not carried by the fast path");
      t.type = type == "v6udpv4" ? TSP_FP_V6UDPV4 : TSP_FP_V6V4;
      t.client_ipv4 = parse_ipv4(string_option(o, "clientAddress", ""), "clientAddress");
      t.client_port = static_cast<uint16_t>(int_option(o, "clientPort", 0, 0, 65535));
      copy_ipv6(o, "clientIpv6", t.client_ipv6);
      copy_ipv6(o, "serverIpv6", t.server_ipv6);
      if (!o.Get("delegatedAddress").IsUndefined()) {
        copy_ipv6(o, "delegatedAddress", t.delegated);
        t.delegated_length = static_cast<uint8_t>(int_option(o, "delegatedLength", 0, 1, 128));
      }
      path->add_tunnel(t);
    });
    return info.Env().Undefined();
  }

  Napi::Value RemoveTunnel(const Napi::CallbackInfo& info) {
    FastPath* path = live(info.Env());
    translate_errors(info.Env(), [&] {
      if (!info[0].IsNumber()) throw std::invalid_argument("removeTunnel(id)");
      path->remove_tunnel(info[0].As<Napi::Number>().Uint32Value());
    });
    return info.Env().Undefined();
  }

  Napi::Value TunnelCount(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env())->tunnel_count()));
  }
  Napi::Value ReadCounters(const Napi::CallbackInfo& info) {
    return records(info.Env(), live(info.Env())->read_counters());
  }
  Napi::Value ReadChanged(const Napi::CallbackInfo& info) {
    return records(info.Env(), live(info.Env())->read_changed());
  }
  Napi::Value ReadCountersOf(const Napi::CallbackInfo& info) {
    FastPath* path = live(info.Env());
    if (!info[0].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "readCountersOf(Float64Array)");
    Napi::Float64Array ids = info[0].As<Napi::Float64Array>();
    std::vector<uint32_t> wanted;
    for (size_t i = 0; i < ids.ElementLength(); i++) wanted.push_back(static_cast<uint32_t>(ids[i]));
    return records(info.Env(), path->read_counters_of(wanted));
  }
  Napi::Value ReadStats(const Napi::CallbackInfo& info) {
    const std::vector<uint64_t> stats = live(info.Env())->read_stats();
    Napi::Float64Array out = Napi::Float64Array::New(info.Env(), stats.size());
    for (size_t i = 0; i < stats.size(); i++) out[i] = static_cast<double>(stats[i]);
    return out;
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (path_) {
      napi_remove_env_cleanup_hook(info.Env(), &FastPathHandle::close_at_exit, path_.get());
      path_->close();
      path_.reset();
    }
    return info.Env().Undefined();
  }

  std::shared_ptr<FastPath> path_;
};

}  // namespace

}  // namespace tspdp

static Napi::Object InitFastPath(Napi::Env env, Napi::Object exports) {
  using namespace tspdp;
  exports.Set("FastPathHandle", FastPathHandle::Define(env));
  Napi::Array names = Napi::Array::New(env);
  const char* stat_names[TSP_FP_STAT_COUNT] = {"decap_packets", "encap_packets",   "spoofed_source",
                                               "link_local_source", "slow_decap", "slow_encap",
                                               "encap_failed"};
  for (uint32_t i = 0; i < TSP_FP_STAT_COUNT; i++) names.Set(i, stat_names[i]);
  exports.Set("STAT_NAMES", names);
  return exports;
}

NODE_API_MODULE(tsp_ebpf, InitFastPath)
