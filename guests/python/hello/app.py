"""`GET /hello` and `GET /hello/:name`: a greeting.

Logs `greeting <name>` at level info and answers `Hello, <name>!` as text.
"""

from serverless_wasm import handler, log, request, response


@handler
def handle() -> None:
    name = request.param("name", "world")
    log.info(f"greeting {name}")
    response.text(200, f"Hello, {name}!\n")
