"""The incoming HTTP request that this instance was created for.

Every function returns the same answer each time it is called during one
request. Header values are strings in which each byte of the HTTP value is
the code point of the same number (ISO-8859-1), so no byte is lost.
"""

from typing import overload

from wit_world.imports import request as _wit
from wit_world.imports.request import (
    body,
    headers,
    method,
    params,
    path,
    query,
    query_params,
    route,
)

__all__ = [
    "body",
    "header",
    "headers",
    "method",
    "param",
    "params",
    "path",
    "query",
    "query_param",
    "query_params",
    "route",
    "text",
]


@overload
def header(name: str) -> str | None: ...
@overload
def header(name: str, default: str) -> str: ...
def header(name: str, default: str | None = None) -> str | None:
    """The first value of header `name` (case-insensitive), or `default`."""
    value = _wit.header(name)
    return default if value is None else value


@overload
def param(name: str) -> str | None: ...
@overload
def param(name: str, default: str) -> str: ...
def param(name: str, default: str | None = None) -> str | None:
    """The percent-decoded value of route parameter `name`, or `default`.

    A trailing `*` wildcard in the route is the parameter `*`.
    """
    value = _wit.param(name)
    return default if value is None else value


@overload
def query_param(name: str) -> str | None: ...
@overload
def query_param(name: str, default: str) -> str: ...
def query_param(name: str, default: str | None = None) -> str | None:
    """The first decoded value of query parameter `name`, or `default`."""
    for key, value in query_params():
        if key == name:
            return value
    return default


def text(encoding: str = "utf-8") -> str:
    """The request body decoded as text; raises UnicodeDecodeError if invalid."""
    return body().decode(encoding)
