// hello.cpp: `GET /hello` and `GET /hello/:name`, a greeting
// (guests/SAMPLES.md).

#include <string>

#include "platform.hpp"

using namespace platform;

void exports::handler::Handle() {
  const auto param = request::Param("name");
  const std::string name = param ? std::string(view(*param)) : "world";
  info("greeting " + name);
  text(200, "Hello, " + name + "!\n");
}
