//! `ANY /echo` and `ANY /echo/*`: answers with the request.
//!
//! The response body is the request body, byte for byte, with the request's
//! `content-type` (`application/octet-stream` when it has none). The rest
//! of the request comes back in headers: `x-echo-method`, `x-echo-path`,
//! `x-echo-query`, `x-echo-route`, `x-echo-params` (form-encoded
//! `name=value` pairs) and one `x-echo-header-<name>` per request header.

const std = @import("std");
const platform = @import("platform");

const Allocator = std.mem.Allocator;
const Writer = std.Io.Writer;
const allocator = platform.allocator;
const response = platform.response;

pub const panic = platform.panic;

comptime {
    platform.exportHandler(handle);
}

/// Writes `text` with every byte other than `A-Z a-z 0-9 - . _ ~ *` as
/// `%XX` (upper-case hex).
fn writeFormEncoded(writer: *Writer, text: []const u8) Writer.Error!void {
    for (text) |byte| switch (byte) {
        'A'...'Z', 'a'...'z', '0'...'9', '-', '.', '_', '~', '*' => try writer.writeByte(byte),
        else => try writer.print("%{X:0>2}", .{byte}),
    };
}

/// Form-encodes `pairs` as `name=value` joined by `&`, so that any value
/// fits in a header. The caller owns the result.
fn formEncode(gpa: Allocator, pairs: platform.Pairs) Allocator.Error![]u8 {
    var out: Writer.Allocating = .init(gpa);
    defer out.deinit();
    var it = pairs.iterator();
    var first = true;
    while (it.next()) |pair| : (first = false) {
        encodePair(&out.writer, pair, first) catch return error.OutOfMemory;
    }
    return out.toOwnedSlice();
}

fn encodePair(writer: *Writer, pair: platform.Pair, first: bool) Writer.Error!void {
    if (!first) try writer.writeByte('&');
    try writeFormEncoded(writer, pair.name);
    try writer.writeByte('=');
    try writeFormEncoded(writer, pair.value);
}

/// Echoes one request value, which the handler owns, into header `name`.
fn echo(name: []const u8, value: []u8) response.Error!void {
    defer allocator.free(value);
    try response.appendHeader(name, value);
}

fn handle() !void {
    try echo("x-echo-method", platform.request.method());
    try echo("x-echo-path", platform.request.path());
    try echo("x-echo-query", platform.request.query());
    try echo("x-echo-route", platform.request.route());

    var params = platform.request.params();
    defer params.deinit();
    try echo("x-echo-params", try formEncode(allocator, params));

    var headers = platform.request.headers();
    defer headers.deinit();
    var it = headers.iterator();
    while (it.next()) |header| {
        const name = try std.fmt.allocPrint(allocator, "x-echo-header-{s}", .{header.name});
        defer allocator.free(name);
        try response.appendHeader(name, header.value);
    }

    const content_type = platform.request.header("content-type");
    defer if (content_type) |value| allocator.free(value);
    try response.appendHeader("content-type", content_type orelse "application/octet-stream");

    const body = platform.request.body();
    defer allocator.free(body);
    try response.setBody(body);
}
