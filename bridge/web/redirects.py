"""Redirects to this same host name it by path alone.

Starlette's trailing-slash redirect (`/healthz/` -> `/healthz`) builds an absolute
Location from the request's Host header, which the client chose: a forged Host would
send the client, or a cache in front that keeps the answer, to another site. A plain
ASGI middleware gives such a Location as the path (and query) it carries, which every
client resolves against the URL it asked for.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOCATION = b"location"


class RedirectsByPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        host = _host(scope) if scope["type"] == "http" else None
        if host is None:
            await self.app(scope, receive, send)
            return

        async def send_by_path(message: Message) -> None:
            if message["type"] == "http.response.start" and 300 <= message["status"] < 400:
                headers = [
                    (name, by_path(value, host) if name.lower() == LOCATION else value)
                    for name, value in message.get("headers", [])
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_by_path)


def _host(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"host":
            return bytes(value)
    return None


def by_path(location: bytes, host: bytes) -> bytes:
    """`location` without its scheme and host when that host is `host`."""
    for scheme in (b"http://", b"https://"):
        origin = scheme + host
        rest = location[len(origin) :]
        if location.startswith(origin) and rest[:1] in (b"/", b"?", b""):
            return rest if rest.startswith(b"/") else b"/" + rest
    return location
