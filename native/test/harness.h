// @module native/test/harness: a few lines of test harness, so the engine tests need nothing beyond the compiler.
// TEST(name) { ... CHECK(condition); CHECK_EQ(a, b); } registers a test; main() runs them all and exits 1 if
// any check failed, printing each failure with its file and line.
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace harness {

struct Case {
  const char* name;
  std::function<void()> body;
};

inline std::vector<Case>& cases() {
  static std::vector<Case> all;
  return all;
}
inline int& failures() {
  static int n = 0;
  return n;
}
inline int& checks() {
  static int n = 0;
  return n;
}

struct Register {
  Register(const char* name, std::function<void()> body) { cases().push_back({name, std::move(body)}); }
};

inline void fail(const char* file, int line, const std::string& what) {
  failures()++;
  std::fprintf(stderr, "  FAIL %s:%d: %s\n", file, line, what.c_str());
}

inline int run_all() {
  int failed_cases = 0;
  for (const Case& c : cases()) {
    const int before = failures();
    c.body();
    const bool ok = failures() == before;
    if (!ok) failed_cases++;
    std::printf("%s %s\n", ok ? "ok    " : "FAILED", c.name);
  }
  std::printf("%zu tests, %d checks, %d failed\n", cases().size(), checks(), failed_cases);
  return failed_cases == 0 ? 0 : 1;
}

}  // namespace harness

#define HARNESS_CAT2(a, b) a##b
#define HARNESS_CAT(a, b) HARNESS_CAT2(a, b)
#define TEST(name)                                                                          \
  static void HARNESS_CAT(test_, __LINE__)();                                               \
  static harness::Register HARNESS_CAT(register_, __LINE__)(name, HARNESS_CAT(test_, __LINE__)); \
  static void HARNESS_CAT(test_, __LINE__)()
#define CHECK(condition)                                                   \
  do {                                                                     \
    harness::checks()++;                                                   \
    if (!(condition)) harness::fail(__FILE__, __LINE__, #condition);       \
  } while (0)
#define CHECK_EQ(actual, expected)                                                                         \
  do {                                                                                                     \
    harness::checks()++;                                                                                   \
    const auto a_ = (actual);                                                                              \
    const auto e_ = (expected);                                                                            \
    if (!(a_ == e_)) {                                                                                     \
      harness::fail(__FILE__, __LINE__,                                                                    \
                    std::string(#actual " == " #expected ": got ") + std::to_string(static_cast<long long>(a_)) + \
                        ", want " + std::to_string(static_cast<long long>(e_)));                           \
    }                                                                                                      \
  } while (0)
