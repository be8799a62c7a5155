"""`ANY /echo` and `ANY /echo/*`: answers with the request.

The response body is the request body, byte for byte, with the request's
`content-type` (`application/octet-stream` when it has none). The rest of
the request comes back in headers: `x-echo-method`, `x-echo-path`,
`x-echo-query`, `x-echo-route`, `x-echo-params` (form-encoded `name=value`
pairs) and one `x-echo-header-NAME` per request header.
"""

from urllib.parse import quote

from serverless_wasm import handler, request, response


def form_encode(pairs: list[tuple[str, str]]) -> str:
    """Form-encodes `(name, value)` pairs so that any value fits in a header.

    Every byte of the UTF-8 text other than `A-Z a-z 0-9 - . _ ~ *` is
    written `%XX`.
    """
    return "&".join(f"{quote(name, safe='*')}={quote(value, safe='*')}" for name, value in pairs)


@handler
def handle() -> None:
    response.append_header("x-echo-method", request.method())
    response.append_header("x-echo-path", request.path())
    response.append_header("x-echo-query", request.query())
    response.append_header("x-echo-route", request.route())
    response.append_header("x-echo-params", form_encode(request.params()))
    for name, value in request.headers():
        response.append_header(f"x-echo-header-{name}", value)
    response.append_header(
        "content-type", request.header("content-type", "application/octet-stream")
    )
    response.set_body(request.body())
