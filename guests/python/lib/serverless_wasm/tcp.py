"""Outbound TCP connections to backends the operator allows.

Connections are denied unless the operator allows the destination with
`host serve --allow-tcp`. A connection is a context manager that closes it:

    with tcp.connect("127.0.0.1:7000") as connection:
        connection.sendall(b"PING\\r\\n")
        reply = connection.recv()

Every failure raises `TcpError`, whose `case` is the WIT case of
`outbound-tcp.error`, for example `not-allowed` or `connection-refused`.
"""

from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from componentize_py_types import Err
from wit_world.imports import outbound_tcp as _wit

from ._wit import case_name, payload

__all__ = ["Connection", "TcpError", "connect"]

# The largest read asked of the host at once.
READ_CHUNK = 64 * 1024


class TcpError(OSError):
    """A connection could not be made or used.

    `case` is the WIT case of `outbound-tcp.error` (`not-allowed`,
    `invalid-address`, `dns-failure`, `connection-refused`, `timed-out`,
    `limit-reached`, `closed` or `other`) and `detail` its payload, if any.
    `str(error)` is `case` or `case: detail`.
    """

    def __init__(self, case: str, detail: str | None = None) -> None:
        super().__init__(case if detail is None else f"{case}: {detail}")
        self.case = case
        self.detail = detail


def _call[T](function: Callable[..., T], *args: Any) -> T:
    try:
        return function(*args)
    except Err as error:
        raise TcpError(case_name(error.value), payload(error.value)) from None


class Connection:
    """An open TCP connection, closed by `close()` or on leaving a `with`."""

    def __init__(self, resource: _wit.Connection, address: str) -> None:
        self._resource: _wit.Connection | None = resource
        self.address = address

    def _open(self) -> _wit.Connection:
        if self._resource is None:
            raise TcpError("closed", "the connection was closed by this handler")
        return self._resource

    @property
    def closed(self) -> bool:
        """Whether `close()` has been called."""
        return self._resource is None

    def sendall(self, data: bytes) -> None:
        """Writes all of `data`."""
        _call(self._open().write, bytes(data))

    def recv(self, max_bytes: int = READ_CHUNK) -> bytes:
        """Reads up to `max_bytes`, waiting for at least one byte.

        Returns `b""` when the peer has closed its side.
        """
        if max_bytes <= 0:
            return b""
        return _call(self._open().read, min(max_bytes, READ_CHUNK))

    def read_exact(self, size: int) -> bytes:
        """Reads exactly `size` bytes.

        Raises `TcpError` with the case `closed` when the peer closes the
        connection first.
        """
        data = bytearray()
        while len(data) < size:
            chunk = self.recv(size - len(data))
            if not chunk:
                raise TcpError(
                    "closed", f"the peer closed the connection after {len(data)} of {size} bytes"
                )
            data += chunk
        return bytes(data)

    def close(self) -> None:
        """Closes the connection (drops the host resource). Safe to repeat."""
        resource, self._resource = self._resource, None
        if resource is not None:
            resource.__exit__(None, None, None)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<tcp.Connection {self.address} {state}>"


def connect(address: str) -> Connection:
    """Opens a connection to `address`: `host:port`, `ipv4:port` or `[ipv6]:port`."""
    return Connection(_call(_wit.connect, address), address)
