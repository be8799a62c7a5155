"""The response that the host sends once the handler returns.

A handler that calls nothing here produces `200 OK` with no headers of its
own and an empty body. Every function raises `ResponseError` when the host
refuses the change; the response is then left as it was.
"""

from collections.abc import Callable
from typing import Any

from componentize_py_types import Err
from wit_world.imports import response as _wit

from ._wit import case_name, payload

__all__ = [
    "ResponseError",
    "append_body",
    "append_header",
    "set_body",
    "set_header",
    "set_status",
    "text",
]


class ResponseError(ValueError):
    """The host refused a response change.

    `case` is the WIT case of `response-error` (`invalid-status`,
    `invalid-header-name`, `invalid-header-value`, `reserved-header`,
    `too-large` or `headers-too-large`) and `detail` its payload.
    """

    def __init__(self, case: str, detail: Any) -> None:
        super().__init__(f"{case}: {detail}")
        self.case = case
        self.detail = detail


def _call(function: Callable[..., None], *args: Any) -> None:
    try:
        function(*args)
    except Err as error:
        raise ResponseError(case_name(error.value), payload(error.value)) from None


def set_status(status: int, reason: str | None = None) -> None:
    """Sets the status code, with `reason` as the phrase if given."""
    if reason is None:
        _call(_wit.set_status, status)
    else:
        _call(_wit.set_status_line, status, reason)


def set_header(name: str, value: str) -> None:
    """Replaces every value of header `name` with `value`.

    Values are ISO-8859-1: code points up to U+00FF, each sent as one byte.
    """
    _call(_wit.set_header, name, value)


def append_header(name: str, value: str) -> None:
    """Adds one more value for header `name`, keeping the ones already set."""
    _call(_wit.append_header, name, value)


def set_body(body: bytes) -> None:
    """Replaces the response body."""
    _call(_wit.set_body, bytes(body))


def append_body(chunk: bytes) -> None:
    """Appends bytes to the response body."""
    _call(_wit.append_body, bytes(chunk))


def text(status: int, body: str) -> None:
    """Answers with `status` and a UTF-8 text body, setting
    `content-type: text/plain; charset=utf-8`."""
    set_status(status)
    set_header("content-type", "text/plain; charset=utf-8")
    set_body(body.encode("utf-8"))
