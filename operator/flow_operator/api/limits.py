"""The HTTP API's request limits (docs/security.md, "Request limits").

`bounded`, the first middleware, refuses a request past one before any handler (or
authentication) runs, with the limit in a plain message: a query string past
MAX_QUERY_BYTES is 414, headers past MAX_HEADER_BYTES or MAX_HEADERS are 431, a body whose
Content-Length is past MAX_BODY_BYTES is 413. A body sent without Content-Length is cut at
MAX_BODY_BYTES by aiohttp (the app's client_max_size) and answered the same (`too_large`,
from server.py's error middleware). Beyond the parser's own caps (PARSER_LIMITS: a request
line, or one header line, longer than those) aiohttp answers 400 itself, before any of this.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

MAX_BODY_BYTES = 64 * 1024  # 413: the largest body an endpoint takes (a Run's parameters)
MAX_QUERY_BYTES = 4 * 1024  # 414: the query string as sent (percent-encoded)
MAX_HEADER_BYTES = 16 * 1024  # 431: all names and values together (a long OIDC token fits)
MAX_HEADERS = 64  # 431: header fields
# aiohttp's parser, given to the runner: the request line at aiohttp's default; one header
# line may be past ours, so that 431 answers it rather than the parser's bare 400.
PARSER_LIMITS: dict[str, int] = {
    "max_line_size": 8190,
    "max_field_size": 2 * MAX_HEADER_BYTES,
    "max_headers": 2 * MAX_HEADERS,
}


def refusal(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


def too_large(size: int | None = None) -> web.Response:
    sent = f"is {size} bytes" if size is not None else "is larger than that"
    return refusal(
        413,
        "RequestEntityTooLarge",
        f"the request body {sent}: at most {MAX_BODY_BYTES} bytes are accepted",
    )


@web.middleware
async def bounded(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The request limits, checked first: query length (414), headers (431), body (413)."""
    query = len(request.raw_path.partition("?")[2].encode())
    if query > MAX_QUERY_BYTES:
        return refusal(
            414,
            "URITooLong",
            f"the query string is {query} bytes: at most {MAX_QUERY_BYTES} are accepted",
        )
    fields = request.raw_headers
    header_bytes = sum(len(k) + len(v) for k, v in fields)
    if header_bytes > MAX_HEADER_BYTES or len(fields) > MAX_HEADERS:
        return refusal(
            431,
            "RequestHeaderFieldsTooLarge",
            f"the request's headers are {header_bytes} bytes in {len(fields)} fields: at "
            f"most {MAX_HEADER_BYTES} bytes in {MAX_HEADERS} fields are accepted",
        )
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return too_large(request.content_length)
    return await handler(request)
