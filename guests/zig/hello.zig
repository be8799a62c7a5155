//! `GET /hello` and `GET /hello/:name`: a greeting.
//!
//! Answers `Hello, <name>!` where `<name>` is the route parameter `name`,
//! or `world` on the route without one, and logs the greeting.

const std = @import("std");
const platform = @import("platform");

pub const panic = platform.panic;

comptime {
    platform.exportHandler(handle);
}

fn handle() !void {
    const param = platform.request.param("name");
    defer if (param) |name| platform.allocator.free(name);
    const name = param orelse "world";

    platform.log.info("greeting {s}", .{name});

    const greeting = try std.fmt.allocPrint(platform.allocator, "Hello, {s}!\n", .{name});
    defer platform.allocator.free(greeting);
    try platform.response.text(200, greeting);
}
