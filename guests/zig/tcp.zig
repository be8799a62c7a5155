//! `POST /tcp-echo`: sends the request body to the TCP echo backend named
//! by the `ECHO_ADDRESS` environment variable and answers with what comes
//! back. The operator must allow the backend with `--allow-tcp`.
//!
//! When the backend cannot be reached the answer is `502` with the reason,
//! for example `NotAllowed`.

const std = @import("std");
const platform = @import("platform");

const allocator = platform.allocator;
const tcp = platform.tcp;

pub const panic = platform.panic;

comptime {
    platform.exportHandler(handle);
}

/// Sends `body` to the echo backend at `address` and returns as many bytes
/// as it sent, read back from the backend. The caller owns the result.
fn echo(address: []const u8, body: []const u8) (tcp.Error || std.mem.Allocator.Error)![]u8 {
    const connection = try tcp.connect(address);
    defer connection.close();

    try connection.writeAll(body);

    const reply = try allocator.alloc(u8, body.len);
    errdefer allocator.free(reply);
    var received: usize = 0;
    while (received < reply.len) {
        const count = try connection.read(reply[received..]);
        // An empty read means the backend closed before echoing everything.
        if (count == 0) return error.Closed;
        received += count;
    }
    return reply;
}

fn handle() !void {
    const address = platform.env("ECHO_ADDRESS") orelse {
        try platform.response.text(500, "ECHO_ADDRESS is not set in the app's env\n");
        return;
    };

    const body = platform.request.body();
    defer allocator.free(body);

    const reply = echo(address, body) catch |err| {
        platform.log.warn("echo backend {s}: {s}", .{ address, @errorName(err) });
        const message = try std.fmt.allocPrint(
            allocator,
            "cannot use the echo backend at {s}: {s}\n",
            .{ address, @errorName(err) },
        );
        defer allocator.free(message);
        try platform.response.text(502, message);
        return;
    };
    defer allocator.free(reply);
    try platform.response.setBody(reply);
}
