"""Write serverless-wasm handlers in Python.

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

Modules (each imported when first used, so that a component of another
world, such as a subscription handler, imports only what it has):
    request    the incoming request (method, path, query, headers, body,
               route parameters)
    response   building the answer (status, headers, body); `text()` for
               the common case
    log        lines in the host log: `log.info(...)`, `log.warn(...)`, ...
    tcp        outbound TCP connections: `with tcp.connect(address) as c:`
    messaging  wasi:messaging: `messaging.send(topic, data)`, requests and
               replies, and `@messaging.subscriber` for a [[subscriptions]]
               handler (built for the `subscriber` world)

An exception that escapes the handler traps the instance, and the host
answers `500 Internal Server Error` and logs the traceback. The app's `env`
table is in `os.environ`, and `print()` goes to the host log.
"""

import importlib
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["handler", "log", "messaging", "request", "response", "tcp"]

_MODULES = ("log", "messaging", "request", "response", "tcp")

Handle = Callable[[], None]


def __getattr__(name: str) -> Any:
    """Imports a submodule on first use (`serverless_wasm.request`)."""
    if name in _MODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def handler(function: Handle) -> Handle:
    """Exports `function` as the component's `handle` function.

    componentize-py looks for a class named `WitWorld` that implements the
    world's exports in the app module. This decorator defines that class in
    the module where `function` is defined, so an app needs nothing else.
    Use it once per app.
    """
    import wit_world

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
