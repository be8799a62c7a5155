// echo.cpp: `ANY /echo` and `ANY /echo/*`, answers with the request
// (guests/SAMPLES.md).
//
// The response body is the request body, byte for byte, with the request's
// `content-type`. The rest of the request comes back in headers:
// `x-echo-method`, `x-echo-path`, `x-echo-query`, `x-echo-route`,
// `x-echo-params` (form-encoded `name=value` pairs) and one
// `x-echo-header-NAME` per request header.

#include <span>
#include <string>
#include <string_view>
#include <tuple>

#include "platform.hpp"

using namespace platform;

namespace {

// Appends `text` with every byte other than `A-Z a-z 0-9 - . _ ~ *` written
// as `%XX`, so that any parameter value fits in a header.
void form_encode(std::string_view text, std::string& out) {
  constexpr std::string_view hex = "0123456789ABCDEF";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    const bool plain = (byte >= 'A' && byte <= 'Z') || (byte >= 'a' && byte <= 'z') ||
                       (byte >= '0' && byte <= '9') || byte == '-' || byte == '.' ||
                       byte == '_' || byte == '~' || byte == '*';
    if (plain) {
      out += c;
    } else {
      out += '%';
      out += hex[byte >> 4];
      out += hex[byte & 0xF];
    }
  }
}

// `name=value` pairs joined by `&`, both sides form-encoded.
std::string form_encode(std::span<const std::tuple<wit::string, wit::string>> pairs) {
  std::string out;
  for (const auto& [name, value] : pairs) {
    if (!out.empty()) {
      out += '&';
    }
    form_encode(view(name), out);
    out += '=';
    form_encode(view(value), out);
  }
  return out;
}

}  // namespace

void exports::handler::Handle() {
  append_header("x-echo-method", view(request::Method()));
  append_header("x-echo-path", view(request::Path()));
  append_header("x-echo-query", view(request::Query()));
  append_header("x-echo-route", view(request::Route()));
  append_header("x-echo-params", form_encode(request::Params().get_const_view()));
  const auto headers = request::Headers();
  for (const auto& [name, value] : headers.get_const_view()) {
    append_header("x-echo-header-" + std::string(view(name)), view(value));
  }
  const auto content_type = request::Header("content-type");
  append_header("content-type",
                content_type ? view(*content_type) : "application/octet-stream");
  set_body(bytes(request::Body()));
}
