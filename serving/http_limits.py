"""A cap on request bodies, applied before the web framework reads one.

Gradio parses every JSON request (an event's inputs, a data: URL inside them) into memory before any
handler runs, so a 150 MB data: URL cost 150 MB several times over even though the handler then refused
it. Only the upload route streams to disk (and applies its own `max_file_size`); every other body is
refused with 413 once it exceeds `max_bytes`, whether or not it declares its length.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _TooLarge(Exception):
    pass


class RequestBodyLimit:
    """ASGI middleware: 413 for a body over `max_bytes` on any path except `streamed_paths`."""

    def __init__(self, app: ASGIApp, max_bytes: int, streamed_paths: tuple[str, ...] = ("/gradio_api/upload",)) -> None:
        self.app, self.max_bytes, self.streamed_paths = app, max_bytes, streamed_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").rstrip("/").endswith(self.streamed_paths):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        received, started = 0, False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        limit_mb = self.max_bytes / 2**20
        body = json.dumps({"error": f"The request is larger than {limit_mb:.0f} MB. Upload large pictures as files."})
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body.encode()})
