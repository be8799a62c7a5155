// platform.hpp: small helpers over the C++ bindings that `wit-bindgen cpp`
// generates for the world `handler` (wit/handler.wit), shared by the C++
// samples.
//
// The generated API lives in `serverless_wasm::platform::*`, hands back
// `wit::string` / `wit::vector` (which own memory the host allocated) and
// reports refusals as `std::expected<void, Error>`. These helpers give the
// common cases short names:
//
//   - `request`, `response`, `outbound_tcp`: aliases of the generated
//     namespaces;
//   - `view` / `bytes`: look at WIT strings and byte lists as
//     `std::string_view` / `std::span<const uint8_t>` without copying;
//   - `info`, `warn`, `error`: one line in the host log;
//   - `to_string`: the WIT name of an error case, with its payload
//     (`not-allowed: 10.0.0.1:80`);
//   - `set_status`, `set_header`, `append_header`, `set_body`, `text`:
//     change the response and trap (after logging why) when the host refuses
//     the change. The host answers a trap with `500`, like a panic in the
//     Rust samples; with `-fno-exceptions` there is no better way out.
//
// Everything is inline, so a handler pays only for what it uses.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <expected>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "handler_cpp.h"

namespace platform {

namespace request = serverless_wasm::platform::request;
namespace response = serverless_wasm::platform::response;
namespace outbound_tcp = serverless_wasm::platform::outbound_tcp;

// ---- views ------------------------------------------------------------------

// A WIT string (owned by the bindings) as a view; lives as long as `text`.
inline std::string_view view(const wit::string& text) { return text.get_view(); }

// The bytes of a text, for the `list<u8>` parameters.
inline std::span<const uint8_t> bytes(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

// A WIT byte list (owned by the bindings) as a view; lives as long as `data`.
inline std::span<const uint8_t> bytes(const wit::vector<uint8_t>& data) {
  return data.get_const_view();
}

// ---- logging ----------------------------------------------------------------

// One line in the host log, tagged by the host with the app and request id.
inline void log(serverless_wasm::platform::log::Level level, std::string_view message) {
  serverless_wasm::platform::log::Log(level, message);
}
inline void info(std::string_view message) {
  log(serverless_wasm::platform::log::Level::kInfo, message);
}
inline void warn(std::string_view message) {
  log(serverless_wasm::platform::log::Level::kWarn, message);
}
inline void error(std::string_view message) {
  log(serverless_wasm::platform::log::Level::kError, message);
}

// Logs `message` at level error and traps: the host answers `500`.
[[noreturn]] inline void fail(std::string_view message) {
  error(message);
  std::abort();
}

// ---- error names ------------------------------------------------------------

namespace detail {

// The WIT name of each case of `response-error` and `outbound-tcp.error`.
using RE = response::ResponseError;
using TE = outbound_tcp::Error;
constexpr std::string_view name(const RE::InvalidStatus&) { return "invalid-status"; }
constexpr std::string_view name(const RE::InvalidHeaderName&) { return "invalid-header-name"; }
constexpr std::string_view name(const RE::InvalidHeaderValue&) { return "invalid-header-value"; }
constexpr std::string_view name(const RE::ReservedHeader&) { return "reserved-header"; }
constexpr std::string_view name(const RE::TooLarge&) { return "too-large"; }
constexpr std::string_view name(const RE::HeadersTooLarge&) { return "headers-too-large"; }
constexpr std::string_view name(const TE::NotAllowed&) { return "not-allowed"; }
constexpr std::string_view name(const TE::InvalidAddress&) { return "invalid-address"; }
constexpr std::string_view name(const TE::DnsFailure&) { return "dns-failure"; }
constexpr std::string_view name(const TE::ConnectionRefused&) { return "connection-refused"; }
constexpr std::string_view name(const TE::TimedOut&) { return "timed-out"; }
constexpr std::string_view name(const TE::LimitReached&) { return "limit-reached"; }
constexpr std::string_view name(const TE::Closed&) { return "closed"; }
constexpr std::string_view name(const TE::Other&) { return "other"; }

inline std::string payload(const wit::string& text) { return std::string(text.get_view()); }
inline std::string payload(uint64_t number) { return std::to_string(number); }

// `name` or `name: payload` for one case of a generated variant.
template <class Case>
std::string describe(const Case& error_case) {
  std::string out(name(error_case));
  if constexpr (requires { error_case.value; }) {
    out += ": ";
    out += payload(error_case.value);
  }
  return out;
}

}  // namespace detail

// `not-allowed: 10.0.0.1:80`, `closed`, `reserved-header: content-length`, ...
inline std::string to_string(const outbound_tcp::Error& error) {
  return std::visit([](const auto& error_case) { return detail::describe(error_case); },
                    error.variants);
}
inline std::string to_string(const response::ResponseError& error) {
  return std::visit([](const auto& error_case) { return detail::describe(error_case); },
                    error.variants);
}

// ---- response ---------------------------------------------------------------

// Traps with `what` and the host's reason when the host refused a change.
inline void check(const std::expected<void, response::ResponseError>& result,
                  std::string_view what) {
  if (!result) {
    fail(std::string(what) + ": " + to_string(result.error()));
  }
}

inline void set_status(uint16_t status) {
  check(response::SetStatus(status), "cannot set the status");
}

// Replaces every value of the response header `name`.
inline void set_header(std::string_view name, std::string_view value) {
  check(response::SetHeader(name, value), "cannot set header " + std::string(name));
}

// Adds one more value for the response header `name`.
inline void append_header(std::string_view name, std::string_view value) {
  check(response::AppendHeader(name, value), "cannot append header " + std::string(name));
}

inline void set_body(std::span<const uint8_t> body) {
  check(response::SetBody(body), "cannot set the body");
}

// A complete plain-text answer: `status`, a UTF-8 `content-type` and `body`.
inline void text(uint16_t status, std::string_view body) {
  set_status(status);
  set_header("content-type", "text/plain; charset=utf-8");
  set_body(bytes(body));
}

}  // namespace platform
