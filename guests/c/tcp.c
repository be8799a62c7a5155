/*
 * tcp: `POST /tcp-echo` sends the request body to the TCP echo backend
 * named by the environment variable `ECHO_ADDRESS` and answers with what
 * comes back. The operator must allow the backend with `--allow-tcp`.
 *
 * When the backend cannot be used the handler logs the reason at level
 * warn and answers `502` with it, for example
 * `cannot use the echo backend at 127.0.0.1:7000: not-allowed: ...`.
 */
#include <stdlib.h>

#include "platform.h"

typedef serverless_wasm_platform_outbound_tcp_error_t tcp_error_t;
typedef serverless_wasm_platform_outbound_tcp_own_connection_t tcp_connection_t;

/* The largest read asked of the host at once. */
#define READ_CHUNK (64 * 1024)

/* Appends the WIT name of `error`'s case and its payload, if any. */
static void describe_tcp_error(buf_t *out, const tcp_error_t *error) {
    const handler_string_t *payload = NULL;
    switch (error->tag) {
    case SERVERLESS_WASM_PLATFORM_OUTBOUND_TCP_ERROR_NOT_ALLOWED:
        buf_append_cstr(out, "not-allowed");
        payload = &error->val.not_allowed;
        break;
    case SERVERLESS_WASM_PLATFORM_OUTBOUND_TCP_ERROR_INVALID_ADDRESS:
        buf_append_cstr(out, "invalid-address");
        payload = &error->val.invalid_address;
        break;
    case SERVERLESS_WASM_PLATFORM_OUTBOUND_TCP_ERROR_DNS_FAILURE:
        buf_append_cstr(out, "dns-failure");
        payload = &error->val.dns_failure;
        break;
    case SERVERLESS_WASM_PLATFORM_OUTBOUND_TCP_ERROR_CONNECTION_REFUSED:
        buf_append_cstr(out, "connection-refused");
        break;
    case SERVERLESS_WASM_PLATFORM_OUTBOUND_TCP_ERROR_TIMED_OUT:
        buf_append_cstr(out, "timed-out");
        break;
    case SERVERLESS_WASM_PLATFORM_OUTBOUND_TCP_ERROR_LIMIT_REACHED:
        buf_append_cstr(out, "limit-reached");
        break;
    case SERVERLESS_WASM_PLATFORM_OUTBOUND_TCP_ERROR_CLOSED:
        buf_append_cstr(out, "closed");
        break;
    case SERVERLESS_WASM_PLATFORM_OUTBOUND_TCP_ERROR_OTHER:
        buf_append_cstr(out, "other");
        payload = &error->val.other;
        break;
    default:
        buf_append_cstr(out, "unknown error");
        break;
    }
    if (payload != NULL) {
        buf_append_cstr(out, ": ");
        buf_append_str(out, *payload);
    }
}

/* Sends `body` to the backend at `address` and reads back as many bytes
 * into `reply`. On failure, returns false with the reason in `reason`. */
static bool echo(handler_string_t address, handler_list_u8_t body, buf_t *reply,
                 buf_t *reason) {
    tcp_connection_t connection;
    tcp_error_t error;
    if (!serverless_wasm_platform_outbound_tcp_connect(&address, &connection, &error)) {
        describe_tcp_error(reason, &error);
        serverless_wasm_platform_outbound_tcp_error_free(&error);
        return false;
    }
    serverless_wasm_platform_outbound_tcp_borrow_connection_t borrowed =
        serverless_wasm_platform_outbound_tcp_borrow_connection(connection);

    bool ok = true;
    if (body.len > 0 &&
        !serverless_wasm_platform_outbound_tcp_method_connection_write(borrowed, &body, &error)) {
        describe_tcp_error(reason, &error);
        serverless_wasm_platform_outbound_tcp_error_free(&error);
        ok = false;
    }
    while (ok && reply->len < body.len) {
        size_t wanted = body.len - reply->len;
        uint32_t max = wanted < READ_CHUNK ? (uint32_t)wanted : READ_CHUNK;
        handler_list_u8_t chunk;
        if (!serverless_wasm_platform_outbound_tcp_method_connection_read(borrowed, max, &chunk,
                                                                          &error)) {
            describe_tcp_error(reason, &error);
            serverless_wasm_platform_outbound_tcp_error_free(&error);
            ok = false;
        } else if (chunk.len == 0) {
            /* An empty read: the backend closed before echoing everything. */
            buf_append_cstr(reason, "closed");
            ok = false;
        } else {
            buf_append(reply, chunk.ptr, chunk.len);
            handler_list_u8_free(&chunk);
        }
    }

    /* Dropping the resource closes the socket. */
    serverless_wasm_platform_outbound_tcp_connection_drop_own(connection);
    return ok;
}

void exports_handler_handle(void) {
    const char *address = getenv("ECHO_ADDRESS");
    if (address == NULL) {
        respond_text(500, str("ECHO_ADDRESS is not set in the app's env\n"));
        return;
    }

    handler_list_u8_t body;
    serverless_wasm_platform_request_body(&body);
    buf_t reply = {0};
    buf_t reason = {0};
    if (echo(str(address), body, &reply, &reason)) {
        body_set(buf_bytes(&reply));
    } else {
        buf_t line = {0};
        buf_append_cstr(&line, "echo backend ");
        buf_append_cstr(&line, address);
        buf_append_cstr(&line, ": ");
        buf_append_str(&line, buf_str(&reason));
        log_line(LOG_WARN, buf_str(&line));
        buf_free(&line);

        buf_t text = {0};
        buf_append_cstr(&text, "cannot use the echo backend at ");
        buf_append_cstr(&text, address);
        buf_append_cstr(&text, ": ");
        buf_append_str(&text, buf_str(&reason));
        buf_push(&text, '\n');
        respond_text(502, buf_str(&text));
        buf_free(&text);
    }
    buf_free(&reason);
    buf_free(&reply);
    handler_list_u8_free(&body);
}
