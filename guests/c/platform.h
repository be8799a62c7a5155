/*
 * platform.h: small helpers over the C bindings that `wit-bindgen c`
 * generates for the world `handler` (wit/handler.wit), shared by the C
 * samples.
 *
 * The generated API spells out every WIT name in full
 * (`serverless_wasm_platform_response_append_header`, ...) and reports
 * failures through out-parameters. These helpers give the common cases
 * short names:
 *
 *   - `str` / `str_n` view C data as a WIT string without copying it;
 *   - `buf_t` is a growable byte buffer for building strings and bodies;
 *   - `log_line` writes one line to the host log;
 *   - `respond_*`, `header_*` and `body_set` change the response and trap
 *     (after logging why) when the host refuses the change, which the host
 *     answers with `500`, like a panic in the Rust samples.
 *
 * Everything is `static inline`, so a handler pays only for what it uses.
 * Strings are UTF-8 and carry their length: none of these helpers stops at
 * a NUL byte inside a WIT string.
 */
#ifndef SERVERLESS_WASM_PLATFORM_H
#define SERVERLESS_WASM_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "handler.h"

/* ---- strings ----------------------------------------------------------- */

/* A WIT string viewing `len` bytes at `data`. Nothing is copied: the view
 * must not be freed, and lives only as long as `data`. */
static inline handler_string_t str_n(const void *data, size_t len) {
    return (handler_string_t){.ptr = (uint8_t *)data, .len = len};
}

/* A WIT string viewing the NUL-terminated C string `text` (no copy). */
static inline handler_string_t str(const char *text) {
    return str_n(text, strlen(text));
}

/* The bytes of a WIT string as a WIT `list<u8>` (no copy). */
static inline handler_list_u8_t str_bytes(handler_string_t text) {
    return (handler_list_u8_t){.ptr = text.ptr, .len = text.len};
}

/* ---- growable buffer --------------------------------------------------- */

/* A growable run of bytes. Start from `(buf_t){0}`; free with `buf_free`. */
typedef struct {
    uint8_t *ptr;
    size_t len;
    size_t cap;
} buf_t;

/* Appends `len` bytes. Running out of memory traps: a handler has no
 * better answer than the host's `500`. */
static inline void buf_append(buf_t *buf, const void *data, size_t len) {
    if (len == 0) {
        return;
    }
    if (buf->cap - buf->len < len) {
        size_t cap = buf->cap ? buf->cap : 64;
        while (cap - buf->len < len) {
            cap *= 2;
        }
        uint8_t *grown = realloc(buf->ptr, cap);
        if (grown == NULL) {
            abort();
        }
        buf->ptr = grown;
        buf->cap = cap;
    }
    memcpy(buf->ptr + buf->len, data, len);
    buf->len += len;
}

/* Appends a NUL-terminated C string (without its NUL). */
static inline void buf_append_cstr(buf_t *buf, const char *text) {
    buf_append(buf, text, strlen(text));
}

/* Appends a WIT string. */
static inline void buf_append_str(buf_t *buf, handler_string_t text) {
    buf_append(buf, text.ptr, text.len);
}

/* Appends one byte. */
static inline void buf_push(buf_t *buf, uint8_t byte) {
    buf_append(buf, &byte, 1);
}

/* The contents as a WIT string or byte list (no copy). */
static inline handler_string_t buf_str(const buf_t *buf) {
    return str_n(buf->ptr, buf->len);
}

static inline handler_list_u8_t buf_bytes(const buf_t *buf) {
    return (handler_list_u8_t){.ptr = buf->ptr, .len = buf->len};
}

static inline void buf_free(buf_t *buf) {
    free(buf->ptr);
    *buf = (buf_t){0};
}

/* ---- log --------------------------------------------------------------- */

typedef serverless_wasm_platform_log_level_t log_level_t;

#define LOG_TRACE SERVERLESS_WASM_PLATFORM_LOG_LEVEL_TRACE
#define LOG_DEBUG SERVERLESS_WASM_PLATFORM_LOG_LEVEL_DEBUG
#define LOG_INFO SERVERLESS_WASM_PLATFORM_LOG_LEVEL_INFO
#define LOG_WARN SERVERLESS_WASM_PLATFORM_LOG_LEVEL_WARN
#define LOG_ERROR SERVERLESS_WASM_PLATFORM_LOG_LEVEL_ERROR

/* Writes one line to the host log, tagged by the host with the app name
 * and the request id. */
static inline void log_line(log_level_t level, handler_string_t message) {
    serverless_wasm_platform_log_log(level, &message);
}

/* ---- response ---------------------------------------------------------- */

typedef serverless_wasm_platform_response_response_error_t response_error_t;

/* The WIT name of a `response-error` case. */
static inline const char *response_error_name(const response_error_t *error) {
    switch (error->tag) {
    case SERVERLESS_WASM_PLATFORM_RESPONSE_RESPONSE_ERROR_INVALID_STATUS:
        return "invalid-status";
    case SERVERLESS_WASM_PLATFORM_RESPONSE_RESPONSE_ERROR_INVALID_HEADER_NAME:
        return "invalid-header-name";
    case SERVERLESS_WASM_PLATFORM_RESPONSE_RESPONSE_ERROR_INVALID_HEADER_VALUE:
        return "invalid-header-value";
    case SERVERLESS_WASM_PLATFORM_RESPONSE_RESPONSE_ERROR_RESERVED_HEADER:
        return "reserved-header";
    case SERVERLESS_WASM_PLATFORM_RESPONSE_RESPONSE_ERROR_TOO_LARGE:
        return "too-large";
    case SERVERLESS_WASM_PLATFORM_RESPONSE_RESPONSE_ERROR_HEADERS_TOO_LARGE:
        return "headers-too-large";
    default:
        return "unknown response error";
    }
}

/* The end of every response change: when the host refused it (`ok` is
 * false), logs "cannot <what> [<subject>]: <case>" at level `error` and
 * traps, so that the client gets `500` rather than a half-built answer. */
static inline void response_check(bool ok, response_error_t *error,
                                  const char *what, handler_string_t subject) {
    if (ok) {
        return;
    }
    buf_t message = {0};
    buf_append_cstr(&message, "cannot ");
    buf_append_cstr(&message, what);
    if (subject.len > 0) {
        buf_push(&message, ' ');
        buf_append_str(&message, subject);
    }
    buf_append_cstr(&message, ": ");
    buf_append_cstr(&message, response_error_name(error));
    log_line(LOG_ERROR, buf_str(&message));
    abort();
}

/* Sets the status code with its standard reason phrase. */
static inline void status_set(uint16_t status) {
    response_error_t error;
    bool ok = serverless_wasm_platform_response_set_status(status, &error);
    response_check(ok, &error, "set the status", str(""));
}

/* Replaces every value of header `name` with `value`. */
static inline void header_set(handler_string_t name, handler_string_t value) {
    response_error_t error;
    bool ok = serverless_wasm_platform_response_set_header(&name, &value, &error);
    response_check(ok, &error, "set header", name);
}

/* Adds one more value for header `name`. */
static inline void header_append(handler_string_t name, handler_string_t value) {
    response_error_t error;
    bool ok = serverless_wasm_platform_response_append_header(&name, &value, &error);
    response_check(ok, &error, "append header", name);
}

/* Replaces the response body. */
static inline void body_set(handler_list_u8_t body) {
    response_error_t error;
    bool ok = serverless_wasm_platform_response_set_body(&body, &error);
    response_check(ok, &error, "set the body", str(""));
}

/* Answers `status` with the UTF-8 text `text` as a `text/plain` body. */
static inline void respond_text(uint16_t status, handler_string_t text) {
    status_set(status);
    header_set(str("content-type"), str("text/plain; charset=utf-8"));
    body_set(str_bytes(text));
}

#endif /* SERVERLESS_WASM_PLATFORM_H */
