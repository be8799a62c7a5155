"""`POST /tcp-echo`: a round trip through a TCP echo backend.

Sends the request body to the backend named by the `ECHO_ADDRESS`
environment variable and answers with what comes back. The operator must
allow the backend with `host serve --allow-tcp`; when it cannot be used the
answer is `502` with the reason, for example `not-allowed`.
"""

import os

from serverless_wasm import handler, log, request, response, tcp


def echo(address: str, body: bytes) -> bytes:
    """Sends `body` to the echo backend and reads as many bytes back."""
    with tcp.connect(address) as connection:
        connection.sendall(body)
        return connection.read_exact(len(body))


@handler
def handle() -> None:
    address = os.environ.get("ECHO_ADDRESS")
    if address is None:
        response.text(500, "ECHO_ADDRESS is not set in the app's env\n")
        return
    try:
        reply = echo(address, request.body())
    except tcp.TcpError as error:
        log.warn(f"echo backend {address}: {error}")
        response.text(502, f"cannot use the echo backend at {address}: {error}\n")
        return
    response.set_body(reply)
