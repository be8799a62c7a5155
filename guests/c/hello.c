/*
 * hello: `GET /hello` and `GET /hello/:name` answer a greeting.
 *
 * The name is the route parameter `name` (already percent-decoded by the
 * host), or "world" when the route has none. The handler logs
 * `greeting <name>` at level info and answers `200` with the text
 * `Hello, <name>!`.
 */
#include "platform.h"

void exports_handler_handle(void) {
    handler_string_t param_name = str("name");
    handler_string_t name;
    bool named = serverless_wasm_platform_request_param(&param_name, &name);
    if (!named) {
        name = str("world");
    }

    buf_t line = {0};
    buf_append_cstr(&line, "greeting ");
    buf_append_str(&line, name);
    log_line(LOG_INFO, buf_str(&line));
    buf_free(&line);

    buf_t greeting = {0};
    buf_append_cstr(&greeting, "Hello, ");
    buf_append_str(&greeting, name);
    buf_append_cstr(&greeting, "!\n");
    respond_text(200, buf_str(&greeting));
    buf_free(&greeting);

    if (named) {
        handler_string_free(&name);
    }
}
