/*
 * echo: `ANY /echo` and `ANY /echo/<rest>` (the wildcard route) answer with
 * the request.
 *
 * The response body is the request body, byte for byte, with the request's
 * `content-type` (`application/octet-stream` when it has none). The rest
 * of the request comes back in headers: `x-echo-method`, `x-echo-path`,
 * `x-echo-query`, `x-echo-route`, `x-echo-params` (the route parameters
 * form-encoded as `name=value` pairs joined by `&`) and one
 * `x-echo-header-<name>` per request header, repeated headers repeated.
 */
#include "platform.h"

/* Appends `text` with every byte other than A-Z a-z 0-9 - . _ ~ * written
 * as %XX, so that any parameter fits in a header value. */
static void percent_encode(buf_t *out, handler_string_t text) {
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < text.len; i++) {
        uint8_t byte = text.ptr[i];
        bool plain = (byte >= 'A' && byte <= 'Z') || (byte >= 'a' && byte <= 'z') ||
                     (byte >= '0' && byte <= '9') || byte == '-' || byte == '.' ||
                     byte == '_' || byte == '~' || byte == '*';
        if (plain) {
            buf_push(out, byte);
        } else {
            buf_push(out, '%');
            buf_push(out, (uint8_t)hex[byte >> 4]);
            buf_push(out, (uint8_t)hex[byte & 0x0F]);
        }
    }
}

/* Appends `pairs` form-encoded: `name=value` pairs joined by `&`. */
static void form_encode(buf_t *out, const handler_list_tuple2_string_string_t *pairs) {
    for (size_t i = 0; i < pairs->len; i++) {
        if (i > 0) {
            buf_push(out, '&');
        }
        percent_encode(out, pairs->ptr[i].f0);
        buf_push(out, '=');
        percent_encode(out, pairs->ptr[i].f1);
    }
}

/* Echoes one string-valued request accessor as the header `name`. */
static void echo_string(const char *name, void (*accessor)(handler_string_t *)) {
    handler_string_t value;
    accessor(&value);
    header_append(str(name), value);
    handler_string_free(&value);
}

void exports_handler_handle(void) {
    echo_string("x-echo-method", serverless_wasm_platform_request_method);
    echo_string("x-echo-path", serverless_wasm_platform_request_path);
    echo_string("x-echo-query", serverless_wasm_platform_request_query);
    echo_string("x-echo-route", serverless_wasm_platform_request_route);

    handler_list_tuple2_string_string_t params;
    serverless_wasm_platform_request_params(&params);
    buf_t encoded = {0};
    form_encode(&encoded, &params);
    header_append(str("x-echo-params"), buf_str(&encoded));
    buf_free(&encoded);
    handler_list_tuple2_string_string_free(&params);

    handler_list_tuple2_string_string_t headers;
    serverless_wasm_platform_request_headers(&headers);
    buf_t name = {0};
    for (size_t i = 0; i < headers.len; i++) {
        name.len = 0;
        buf_append_cstr(&name, "x-echo-header-");
        buf_append_str(&name, headers.ptr[i].f0);
        header_append(buf_str(&name), headers.ptr[i].f1);
    }
    buf_free(&name);
    handler_list_tuple2_string_string_free(&headers);

    handler_string_t header_name = str("content-type");
    handler_string_t content_type;
    if (serverless_wasm_platform_request_header(&header_name, &content_type)) {
        header_append(header_name, content_type);
        handler_string_free(&content_type);
    } else {
        header_append(header_name, str("application/octet-stream"));
    }

    handler_list_u8_t body;
    serverless_wasm_platform_request_body(&body);
    body_set(body);
    handler_list_u8_free(&body);
}
