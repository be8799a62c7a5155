//! Zig face of the serverless-wasm `handler` world (`wit/handler.wit`).
//!
//! The build generates C bindings with `wit-bindgen c` and translates their
//! header into the module `bindings`; this module wraps those in slices,
//! Zig errors and small types, so that a handler reads like ordinary Zig:
//!
//!     const std = @import("std");
//!     const platform = @import("platform");
//!
//!     pub const panic = platform.panic;
//!
//!     comptime {
//!         platform.exportHandler(handle);
//!     }
//!
//!     fn handle() !void {
//!         try platform.response.text(200, "Hello!\n");
//!     }
//!
//! Memory: every slice returned here is owned by the caller and freed with
//! `platform.allocator` (the C heap, which is where the bindings put what
//! the host hands over). The host throws the whole instance away after the
//! request, so a handler may also choose not to free at all.

const std = @import("std");
const c = @import("bindings");

/// The allocator behind every slice this module returns.
pub const allocator = std.heap.c_allocator;

/// Exports `handle` as the world's one export, which the host calls once
/// per request. Call it from a `comptime` block in the root source file:
///
///     comptime {
///         platform.exportHandler(handle);
///     }
///
/// `handle` takes no arguments and returns `!void`. An error it returns is
/// logged and turns into a trap, which the host answers with `500`.
pub fn exportHandler(comptime handle: anytype) void {
    const Export = struct {
        fn handleRequest() callconv(.c) void {
            handle() catch |err| {
                log.print(.err, "handler failed: {s}", .{@errorName(err)});
                @trap();
            };
        }
    };
    @export(&Export.handleRequest, .{ .name = "exports_handler_handle" });
}

/// A panic handler that sends the message to the host log before trapping.
/// Use it from the root source file with `pub const panic = platform.panic;`.
pub const panic = std.debug.FullPanic(logAndTrap);

fn logAndTrap(message: []const u8, _: ?usize) noreturn {
    @branchHint(.cold);
    log.write(.err, message);
    @trap();
}

/// The pointer of `bytes` as the canonical ABI wants it: inside linear
/// memory even when the slice is empty (Zig gives an empty slice an
/// arbitrary pointer, which the host rejects as out of bounds).
fn witPointer(bytes: []const u8) ?[*]u8 {
    return if (bytes.len == 0) null else @constCast(bytes.ptr);
}

/// Borrows `text` as a WIT string for the duration of one call.
fn witString(text: []const u8) c.handler_string_t {
    return .{ .ptr = witPointer(text), .len = text.len };
}

/// Borrows `bytes` as a WIT `list<u8>` for the duration of one call.
fn witBytes(bytes: []const u8) c.handler_list_u8_t {
    return .{ .ptr = witPointer(bytes), .len = bytes.len };
}

/// Takes over a string the bindings allocated.
fn ownedSlice(text: c.handler_string_t) []u8 {
    if (text.len == 0) return &.{};
    return text.ptr[0..text.len];
}

/// Log lines in the host log, tagged with the app and the request.
pub const log = struct {
    pub const Level = enum(u8) {
        trace = c.SERVERLESS_WASM_PLATFORM_LOG_LEVEL_TRACE,
        debug = c.SERVERLESS_WASM_PLATFORM_LOG_LEVEL_DEBUG,
        info = c.SERVERLESS_WASM_PLATFORM_LOG_LEVEL_INFO,
        warn = c.SERVERLESS_WASM_PLATFORM_LOG_LEVEL_WARN,
        err = c.SERVERLESS_WASM_PLATFORM_LOG_LEVEL_ERROR,
    };

    /// Writes `message` as one log line.
    pub fn write(level: Level, message: []const u8) void {
        var text = witString(message);
        c.serverless_wasm_platform_log_log(@backingInt(level), &text);
    }

    /// Formats and writes one log line. Without memory for the line, the
    /// bare format string is logged instead.
    pub fn print(level: Level, comptime format: []const u8, args: anytype) void {
        const line = std.fmt.allocPrint(allocator, format, args) catch {
            write(level, format);
            return;
        };
        defer allocator.free(line);
        write(level, line);
    }

    pub fn debug(comptime format: []const u8, args: anytype) void {
        print(.debug, format, args);
    }

    pub fn info(comptime format: []const u8, args: anytype) void {
        print(.info, format, args);
    }

    pub fn warn(comptime format: []const u8, args: anytype) void {
        print(.warn, format, args);
    }

    pub fn err(comptime format: []const u8, args: anytype) void {
        print(.err, format, args);
    }
};

/// A `(name, value)` pair from the request: a header, a query parameter or
/// a route parameter.
pub const Pair = struct {
    name: []const u8,
    value: []const u8,
};

/// A list of pairs the host returned. Free it with `deinit`.
pub const Pairs = struct {
    list: c.handler_list_tuple2_string_string_t,

    pub fn len(pairs: Pairs) usize {
        return pairs.list.len;
    }

    pub fn get(pairs: Pairs, index: usize) Pair {
        const tuple = pairs.list.ptr[index];
        return .{ .name = ownedSlice(tuple.f0), .value = ownedSlice(tuple.f1) };
    }

    pub fn iterator(pairs: *const Pairs) Iterator {
        return .{ .pairs = pairs };
    }

    pub const Iterator = struct {
        pairs: *const Pairs,
        index: usize = 0,

        pub fn next(it: *Iterator) ?Pair {
            if (it.index == it.pairs.len()) return null;
            defer it.index += 1;
            return it.pairs.get(it.index);
        }
    };

    pub fn deinit(pairs: *Pairs) void {
        c.handler_list_tuple2_string_string_free(&pairs.list);
    }
};

/// The incoming request. Each call returns a fresh copy owned by the caller.
pub const request = struct {
    /// The method in upper case, for example `GET`.
    pub fn method() []u8 {
        var text: c.handler_string_t = undefined;
        c.serverless_wasm_platform_request_method(&text);
        return ownedSlice(text);
    }

    /// The path as the client sent it (percent-encoded), without the query.
    pub fn path() []u8 {
        var text: c.handler_string_t = undefined;
        c.serverless_wasm_platform_request_path(&text);
        return ownedSlice(text);
    }

    /// The raw query string without `?`; empty when there is none.
    pub fn query() []u8 {
        var text: c.handler_string_t = undefined;
        c.serverless_wasm_platform_request_query(&text);
        return ownedSlice(text);
    }

    /// The decoded query parameters, in order.
    pub fn queryParams() Pairs {
        var pairs: Pairs = undefined;
        c.serverless_wasm_platform_request_query_params(&pairs.list);
        return pairs;
    }

    /// Every header, names in lower case, in the order received.
    pub fn headers() Pairs {
        var pairs: Pairs = undefined;
        c.serverless_wasm_platform_request_headers(&pairs.list);
        return pairs;
    }

    /// The first value of header `name` (case-insensitive), if any.
    pub fn header(name: []const u8) ?[]u8 {
        var wit_name = witString(name);
        var value: c.handler_string_t = undefined;
        if (!c.serverless_wasm_platform_request_header(&wit_name, &value)) return null;
        return ownedSlice(value);
    }

    /// The whole request body.
    pub fn body() []u8 {
        var bytes: c.handler_list_u8_t = undefined;
        c.serverless_wasm_platform_request_body(&bytes);
        if (bytes.len == 0) return &.{};
        return bytes.ptr[0..bytes.len];
    }

    /// The configured route pattern that matched, for example `/users/:id`.
    pub fn route() []u8 {
        var text: c.handler_string_t = undefined;
        c.serverless_wasm_platform_request_route(&text);
        return ownedSlice(text);
    }

    /// The route parameters, percent-decoded, in pattern order. A trailing
    /// wildcard appears under the name `*`.
    pub fn params() Pairs {
        var pairs: Pairs = undefined;
        c.serverless_wasm_platform_request_params(&pairs.list);
        return pairs;
    }

    /// The value of route parameter `name`, if the route has it.
    pub fn param(name: []const u8) ?[]u8 {
        var wit_name = witString(name);
        var value: c.handler_string_t = undefined;
        if (!c.serverless_wasm_platform_request_param(&wit_name, &value)) return null;
        return ownedSlice(value);
    }
};

/// The response the host sends once `handle` returns.
pub const response = struct {
    /// Why the host refused a change (`response-error` in the WIT).
    pub const Error = error{
        InvalidStatus,
        InvalidHeaderName,
        InvalidHeaderValue,
        ReservedHeader,
        TooLarge,
        HeadersTooLarge,
    };

    /// Turns the bindings' result into a Zig error, freeing its payload.
    fn check(ok: bool, failure: *c.serverless_wasm_platform_response_response_error_t) Error!void {
        if (ok) return;
        defer c.serverless_wasm_platform_response_response_error_free(failure);
        return switch (failure.tag) {
            c.SERVERLESS_WASM_PLATFORM_RESPONSE_RESPONSE_ERROR_INVALID_STATUS => error.InvalidStatus,
            c.SERVERLESS_WASM_PLATFORM_RESPONSE_RESPONSE_ERROR_INVALID_HEADER_NAME => error.InvalidHeaderName,
            c.SERVERLESS_WASM_PLATFORM_RESPONSE_RESPONSE_ERROR_INVALID_HEADER_VALUE => error.InvalidHeaderValue,
            c.SERVERLESS_WASM_PLATFORM_RESPONSE_RESPONSE_ERROR_RESERVED_HEADER => error.ReservedHeader,
            c.SERVERLESS_WASM_PLATFORM_RESPONSE_RESPONSE_ERROR_TOO_LARGE => error.TooLarge,
            else => error.HeadersTooLarge,
        };
    }

    /// Sets the status code with its standard reason phrase.
    pub fn setStatus(status: u16) Error!void {
        var failure: c.serverless_wasm_platform_response_response_error_t = undefined;
        return check(c.serverless_wasm_platform_response_set_status(status, &failure), &failure);
    }

    /// Sets the status code with a custom reason phrase.
    pub fn setStatusLine(status: u16, reason: []const u8) Error!void {
        var wit_reason = witString(reason);
        var failure: c.serverless_wasm_platform_response_response_error_t = undefined;
        return check(c.serverless_wasm_platform_response_set_status_line(status, &wit_reason, &failure), &failure);
    }

    /// Replaces every value of header `name` with `value`.
    pub fn setHeader(name: []const u8, value: []const u8) Error!void {
        var wit_name = witString(name);
        var wit_value = witString(value);
        var failure: c.serverless_wasm_platform_response_response_error_t = undefined;
        return check(c.serverless_wasm_platform_response_set_header(&wit_name, &wit_value, &failure), &failure);
    }

    /// Adds one more value for header `name`.
    pub fn appendHeader(name: []const u8, value: []const u8) Error!void {
        var wit_name = witString(name);
        var wit_value = witString(value);
        var failure: c.serverless_wasm_platform_response_response_error_t = undefined;
        return check(c.serverless_wasm_platform_response_append_header(&wit_name, &wit_value, &failure), &failure);
    }

    /// Replaces the body.
    pub fn setBody(bytes: []const u8) Error!void {
        var list = witBytes(bytes);
        var failure: c.serverless_wasm_platform_response_response_error_t = undefined;
        return check(c.serverless_wasm_platform_response_set_body(&list, &failure), &failure);
    }

    /// Appends bytes to the body.
    pub fn appendBody(bytes: []const u8) Error!void {
        var list = witBytes(bytes);
        var failure: c.serverless_wasm_platform_response_response_error_t = undefined;
        return check(c.serverless_wasm_platform_response_append_body(&list, &failure), &failure);
    }

    /// Answers `status` with a `text/plain; charset=utf-8` body.
    pub fn text(status: u16, body: []const u8) Error!void {
        try setStatus(status);
        try setHeader("content-type", "text/plain; charset=utf-8");
        try setBody(body);
    }
};

/// Outbound TCP connections to the backends the operator allows.
pub const tcp = struct {
    /// Why a connection could not be made or used (`error` in the WIT; the
    /// host's detail text, where it has one, is dropped).
    pub const Error = error{
        NotAllowed,
        InvalidAddress,
        DnsFailure,
        ConnectionRefused,
        TimedOut,
        LimitReached,
        Closed,
        Other,
    };

    fn toError(failure: *c.serverless_wasm_platform_outbound_tcp_error_t) Error {
        defer c.serverless_wasm_platform_outbound_tcp_error_free(failure);
        return switch (failure.tag) {
            c.SERVERLESS_WASM_PLATFORM_OUTBOUND_TCP_ERROR_NOT_ALLOWED => error.NotAllowed,
            c.SERVERLESS_WASM_PLATFORM_OUTBOUND_TCP_ERROR_INVALID_ADDRESS => error.InvalidAddress,
            c.SERVERLESS_WASM_PLATFORM_OUTBOUND_TCP_ERROR_DNS_FAILURE => error.DnsFailure,
            c.SERVERLESS_WASM_PLATFORM_OUTBOUND_TCP_ERROR_CONNECTION_REFUSED => error.ConnectionRefused,
            c.SERVERLESS_WASM_PLATFORM_OUTBOUND_TCP_ERROR_TIMED_OUT => error.TimedOut,
            c.SERVERLESS_WASM_PLATFORM_OUTBOUND_TCP_ERROR_LIMIT_REACHED => error.LimitReached,
            c.SERVERLESS_WASM_PLATFORM_OUTBOUND_TCP_ERROR_CLOSED => error.Closed,
            else => error.Other,
        };
    }

    /// An open connection. `close` it when done; the host also closes every
    /// connection when the request ends.
    pub const Connection = struct {
        handle: c.serverless_wasm_platform_outbound_tcp_own_connection_t,

        fn borrow(connection: Connection) c.serverless_wasm_platform_outbound_tcp_borrow_connection_t {
            return c.serverless_wasm_platform_outbound_tcp_borrow_connection(connection.handle);
        }

        /// Reads at most `buffer.len` bytes into `buffer`, waiting for at
        /// least one. Returns 0 when the peer has closed its side.
        pub fn read(connection: Connection, buffer: []u8) Error!usize {
            var bytes: c.handler_list_u8_t = undefined;
            var failure: c.serverless_wasm_platform_outbound_tcp_error_t = undefined;
            const max: u32 = @intCast(@min(buffer.len, std.math.maxInt(u32)));
            if (!c.serverless_wasm_platform_outbound_tcp_method_connection_read(connection.borrow(), max, &bytes, &failure)) {
                return toError(&failure);
            }
            defer c.handler_list_u8_free(&bytes);
            @memcpy(buffer[0..bytes.len], bytes.ptr[0..bytes.len]);
            return bytes.len;
        }

        /// Writes all of `data`.
        pub fn writeAll(connection: Connection, data: []const u8) Error!void {
            var list = witBytes(data);
            var failure: c.serverless_wasm_platform_outbound_tcp_error_t = undefined;
            if (!c.serverless_wasm_platform_outbound_tcp_method_connection_write(connection.borrow(), &list, &failure)) {
                return toError(&failure);
            }
        }

        /// Closes the connection (drops the resource).
        pub fn close(connection: Connection) void {
            c.serverless_wasm_platform_outbound_tcp_connection_drop_own(connection.handle);
        }
    };

    /// Connects to `address`, written `host:port`, `ipv4:port` or
    /// `[ipv6]:port`.
    pub fn connect(address: []const u8) Error!Connection {
        var wit_address = witString(address);
        var handle: c.serverless_wasm_platform_outbound_tcp_own_connection_t = undefined;
        var failure: c.serverless_wasm_platform_outbound_tcp_error_t = undefined;
        if (!c.serverless_wasm_platform_outbound_tcp_connect(&wit_address, &handle, &failure)) {
            return toError(&failure);
        }
        return .{ .handle = handle };
    }
};

/// The value of environment variable `name` from the app's `env` (read
/// through WASI by the C library), or null when it is not set.
pub fn env(name: [:0]const u8) ?[]const u8 {
    const value = std.c.getenv(name.ptr) orelse return null;
    return std.mem.span(value);
}
