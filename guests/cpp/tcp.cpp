// tcp.cpp: `POST /tcp-echo`, sends the request body to the TCP echo backend
// named by the `ECHO_ADDRESS` environment variable and answers with what
// comes back (guests/SAMPLES.md). The operator must allow the backend with
// `--allow-tcp`.
//
// When the backend cannot be reached the answer is `502` with the reason,
// for example `cannot use the echo backend at 10.0.0.1:7000: not-allowed: ...`.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <expected>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "platform.hpp"

using namespace platform;

namespace {

// The largest read asked of the host at once.
constexpr std::size_t kReadChunk = 64 * 1024;

// Sends `body` to `address` and reads back as many bytes as were sent. The
// connection is closed (the resource dropped) when this returns.
std::expected<std::vector<uint8_t>, outbound_tcp::Error> round_trip(
    std::string_view address, std::span<const uint8_t> body) {
  auto connection = outbound_tcp::Connect(address);
  if (!connection) {
    return std::unexpected(std::move(connection.error()));
  }
  if (auto written = connection->Write(body); !written) {
    return std::unexpected(std::move(written.error()));
  }
  std::vector<uint8_t> reply;
  reply.reserve(body.size());
  while (reply.size() < body.size()) {
    const auto wanted = std::min(body.size() - reply.size(), kReadChunk);
    auto chunk = connection->Read(static_cast<uint32_t>(wanted));
    if (!chunk) {
      return std::unexpected(std::move(chunk.error()));
    }
    if (chunk->empty()) {
      // The peer closed its side before echoing everything.
      return std::unexpected(outbound_tcp::Error{outbound_tcp::Error::Closed{}});
    }
    const auto received = bytes(*chunk);
    reply.insert(reply.end(), received.begin(), received.end());
  }
  return reply;
}

}  // namespace

void exports::handler::Handle() {
  const char* const address = std::getenv("ECHO_ADDRESS");
  if (address == nullptr) {
    text(500, "ECHO_ADDRESS is not set in the app's env\n");
    return;
  }
  const auto reply = round_trip(address, bytes(request::Body()));
  if (!reply) {
    const std::string reason = to_string(reply.error());
    warn("echo backend " + std::string(address) + ": " + reason);
    text(502, "cannot use the echo backend at " + std::string(address) + ": " + reason + "\n");
    return;
  }
  set_body(*reply);
}
