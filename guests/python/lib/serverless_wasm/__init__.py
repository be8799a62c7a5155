"""Write serverless-wasm HTTP handlers in Python.

A thin, idiomatic layer over the bindings that componentize-py generates for
the `handler` world (wit/handler.wit). A handler is one decorated function:

    from serverless_wasm import handler, log, request, response

    @handler
    def handle() -> None:
        name = request.param("name", "world")
        log.info(f"greeting {name}")
        response.text(200, f"Hello, {name}!\\n")

The host creates a fresh instance for every request and calls `handle` once.
componentize-py runs the app module's imports at build time and snapshots
the result, so import everything at the top of the module and keep the work
done per request inside the handler.

Modules:
    request   the incoming request (method, path, query, headers, body,
              route parameters)
    response  building the answer (status, headers, body); `text()` for the
              common case
    log       lines in the host log: `log.info(...)`, `log.warn(...)`, ...
    tcp       outbound TCP connections: `with tcp.connect(address) as c:`

An exception that escapes the handler traps the instance, and the host
answers `500 Internal Server Error` and logs the traceback. The app's `env`
table is in `os.environ`, and `print()` goes to the host log.
"""

import sys
from collections.abc import Callable

import wit_world

from . import log, request, response, tcp

__all__ = ["handler", "log", "request", "response", "tcp"]

Handle = Callable[[], None]


def handler(function: Handle) -> Handle:
    """Exports `function` as the component's `handle` function.

    componentize-py looks for a class named `WitWorld` that implements the
    world's exports in the app module. This decorator defines that class in
    the module where `function` is defined, so an app needs nothing else.
    Use it once per app.
    """
    module = sys.modules[function.__module__]
    if hasattr(module, "WitWorld"):
        raise RuntimeError(f"{function.__module__} already exports a handler (WitWorld)")

    class WitWorld(wit_world.WitWorld):
        def handle(self) -> None:
            function()

    WitWorld.__module__ = module.__name__
    WitWorld.__doc__ = function.__doc__
    module.WitWorld = WitWorld  # type: ignore[attr-defined]
    return function
