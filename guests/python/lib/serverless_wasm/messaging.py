"""wasi:messaging: send messages, make requests, handle subscriptions.

Sending needs a `publish` rule for the topic in the app's entry; without
one the host refuses with `permission-denied` and logs the rule to add.

    from serverless_wasm import messaging

    messaging.send("telemetry", b'{"celsius": 21.5}', content_type="application/json")
    answers = messaging.request("prices", b"AAPL", timeout_ms=500)

A `[[subscriptions]]` handler is built for the `subscriber` world
(wit/messaging.wit) and is one decorated function:

    @messaging.subscriber
    def handle(message: messaging.Message) -> None:
        log.info(f"{len(message.data())} bytes on {message.topic()}")

Raising `MessagingError` fails the delivery with that WIT error; any other
exception traps the instance. Either way the subscription's retry policy
decides what happens to the message.
"""

import sys
from collections.abc import Callable
from typing import Any

from componentize_py_types import Err
from wit_world.imports import producer as _producer
from wit_world.imports import request_reply as _request_reply
from wit_world.imports import types as _types

from ._wit import case_name, payload

__all__ = ["Message", "MessagingError", "reply", "request", "send", "subscriber"]

Message = _types.Message

# The name the helpers' client connects with, for the host's log.
_CLIENT_NAME = "serverless-wasm-python"


class MessagingError(Exception):
    """A messaging call failed, or a handler fails its message.

    `case` is the WIT case of `types.error` (`timeout`, `connection`,
    `permission-denied` or `other`) and `detail` its text, if any.
    """

    def __init__(self, case: str, detail: str | None = None) -> None:
        super().__init__(case if detail is None else f"{case}: {detail}")
        self.case = case
        self.detail = detail

    def to_wit(self) -> Any:
        """The WIT value of this error."""
        detail = self.detail or ""
        match self.case:
            case "timeout":
                return _types.Error_Timeout()
            case "connection":
                return _types.Error_Connection(detail)
            case "permission-denied":
                return _types.Error_PermissionDenied(detail)
            case _:
                return _types.Error_Other(detail or self.case)


def _call[T](function: Callable[..., T], *args: Any) -> T:
    try:
        return function(*args)
    except Err as error:
        raise MessagingError(case_name(error.value), payload(error.value)) from None


def _client() -> _types.Client:
    return _call(_types.Client.connect, _CLIENT_NAME)


def _message(
    data: bytes, content_type: str | None, metadata: dict[str, str] | None
) -> _types.Message:
    message = _types.Message(data)
    if content_type is not None:
        _call(message.set_content_type, content_type)
    for key, value in (metadata or {}).items():
        _call(message.add_metadata, key, value)
    return message


def send(
    topic: str,
    data: bytes,
    content_type: str | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Sends `data` on `topic`."""
    message = _message(data, content_type, metadata)
    _call(_producer.send, _client(), topic, message)


def request(topic: str, data: bytes, timeout_ms: int | None = None) -> list[_types.Message]:
    """Sends `data` on `topic` as a request and returns the reply (one
    unless the host says otherwise), waiting at most `timeout_ms`."""
    options = _request_reply.RequestOptions()
    if timeout_ms is not None:
        options.set_timeout_ms(timeout_ms)
    return _call(_request_reply.request, _client(), topic, _types.Message(data), options)


def reply(to: _types.Message, data: bytes) -> None:
    """Answers `to`, a message that came with a request, with `data`."""
    _call(_request_reply.reply, to, _types.Message(data))


Subscribe = Callable[[_types.Message], None]


def subscriber(function: Subscribe) -> Subscribe:
    """Exports `function` as the component's
    `wasi:messaging/incoming-handler.handle`.

    componentize-py looks for a class named `IncomingHandler` in the app
    module; this decorator defines it there. Use it once per app.
    """
    import wit_world.exports

    module = sys.modules[function.__module__]
    if hasattr(module, "IncomingHandler"):
        raise RuntimeError(f"{function.__module__} already exports a subscriber")

    class IncomingHandler(wit_world.exports.IncomingHandler):
        def handle(self, message: _types.Message) -> None:
            try:
                function(message)
            except MessagingError as error:
                raise Err(error.to_wit()) from None

    IncomingHandler.__module__ = module.__name__
    IncomingHandler.__doc__ = function.__doc__
    module.IncomingHandler = IncomingHandler  # type: ignore[attr-defined]
    return function
