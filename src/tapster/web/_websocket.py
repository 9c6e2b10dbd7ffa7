"""ASGI WebSockets over an HTTP/1.1 upgrade, framed by ``wsproto`` (sans-IO).

A ``WebSocketSession`` takes over the connection once the upgrade request is
parsed: every byte goes to wsproto, whose events become ``websocket.*`` messages
for the application. Bounds: a message larger than ``--ws-max-size`` closes the
socket with 1009; received messages the application has not taken yet stop the
connection reading past ``_QUEUE_BYTES`` (a flood fills the client's socket, not
our memory); ``send`` waits while the client does not read. Pings are answered
at once. No extension (permessage-deflate) is offered: a compressed frame could
inflate past every bound before it could be counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    TextMessage,
)
from wsproto.events import (
    Request as WsRequest,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from ._accesslog import printable
from ._asgi import AsgiHandler, ClientDisconnectedError, Message
from ._http import Request, Response, error_response

log = logging.getLogger("tapster.web")

#: Unread message bytes above which the connection stops reading from the client.
_QUEUE_BYTES = 1024 * 1024
_GOING_AWAY = 1001
_TOO_BIG = 1009
_INTERNAL_ERROR = 1011
_ABNORMAL = 1006


class WebSocketSession:
    """One WebSocket: the application's receive/send on one side, wsproto on the other."""

    def __init__(self, handler: AsgiHandler, req: Request) -> None:
        conn = req.channel
        assert conn is not None
        self._handler = handler
        self._req = req
        self._conn = conn
        self._ws = WSConnection(ConnectionType.SERVER)
        self._inbox: deque[Message] = deque()
        self._inbox_bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self._parts: list[Any] = []
        self._part_size = 0
        self._handshake: WsRequest | None = None
        self._connected = False  # websocket.connect given to the application
        self._accepted = False
        self._closed = False  # a close frame went out, or the socket is gone
        self._lost = False
        self._paused = False

    async def run(self) -> None:
        """Run the application for this WebSocket; close the connection when it returns."""
        handler = self._handler
        req = self._req
        conn = self._conn
        handler.active += 1
        try:
            leftover = conn.take_over(self)
            head = [b"GET ", req.target, b" HTTP/1.1\r\n"]
            for name, value in req.headers:
                head += (name, b": ", value, b"\r\n")
            head.append(b"\r\n")
            self.data_received(b"".join(head) + leftover)
            if self._handshake is None:
                self._refuse(400, "This is not a valid WebSocket request.")
                return
            try:
                await handler.app(handler.scope(req, "websocket"), self.receive, self.send)
            except ClientDisconnectedError:
                pass
            except Exception:
                log.exception("The ASGI application failed on WebSocket %s", printable(req.target))
                if not self._accepted and not self._closed:
                    self._refuse(500, "The application failed to handle this request.")
                else:
                    self._close_frame(_INTERNAL_ERROR, "")
                return
            if not self._accepted and not self._closed:
                self._refuse(403, "The application refused this WebSocket.")
            elif not self._closed:
                self._close_frame(1000, "")
        finally:
            handler.active -= 1
            conn.close()

    # -- the connection's side -------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Bytes from the client: wsproto's events become queued messages."""
        ws = self._ws
        try:
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, TextMessage | BytesMessage):
                    self._message_part(event)
                elif isinstance(event, Ping):
                    self._conn.write(ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    if not self._closed:
                        self._closed = True
                        self._conn.write(ws.send(event.response()))
                    self._deliver({"type": "websocket.disconnect", "code": event.code})
                    self._conn.close()
                    return
                elif isinstance(event, WsRequest):
                    self._handshake = event
        except (RemoteProtocolError, LocalProtocolError) as exc:
            if self._handshake is None:
                return  # ``run`` refuses the upgrade with a 400
            log.debug("Closing a WebSocket from %s: %s", self._conn.peer, exc)
            self._lost_now(1002)

    def _message_part(self, event: TextMessage | BytesMessage) -> None:
        if self._closed:
            return
        self._parts.append(event.data)
        self._part_size += len(event.data)
        if self._part_size > self._handler.ws_max_size:
            self._parts.clear()
            self._close_frame(_TOO_BIG, "message too big")
            self._deliver({"type": "websocket.disconnect", "code": _TOO_BIG})
            return
        if not event.message_finished:
            return
        parts, self._parts = self._parts, []
        size, self._part_size = self._part_size, 0
        message: Message
        if isinstance(event, TextMessage):
            message = {"type": "websocket.receive", "text": "".join(parts)}
        else:
            message = {"type": "websocket.receive", "bytes": b"".join(parts)}
        self._deliver(message, size)

    def _deliver(self, message: Message, size: int = 0) -> None:
        self._inbox.append(message)
        self._inbox_bytes += size
        if self._inbox_bytes > _QUEUE_BYTES and not self._paused:
            self._paused = True
            self._conn.pause_body()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _lost_now(self, code: int) -> None:
        if not self._lost:
            self._lost = True
            self._closed = True
            self._deliver({"type": "websocket.disconnect", "code": code})
            self._conn.cut()

    def connection_lost(self) -> None:
        """The socket is gone."""
        if not self._lost:
            self._lost = True
            self._closed = True
            self._deliver({"type": "websocket.disconnect", "code": _ABNORMAL})

    def going_away(self) -> None:
        """The server is stopping: say so to the client (1001)."""
        if self._accepted and not self._closed:
            self._close_frame(_GOING_AWAY, "server stopping")

    # -- the application's side -----------------------------------------------------

    async def receive(self) -> Message:
        if not self._connected:
            self._connected = True
            return {"type": "websocket.connect"}
        inbox = self._inbox
        while not inbox:
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None
        message = inbox.popleft()
        if message["type"] == "websocket.receive":
            data = message.get("text") or message.get("bytes") or b""
            self._inbox_bytes -= len(data)
            if self._paused and self._inbox_bytes <= _QUEUE_BYTES // 2:
                self._paused = False
                self._conn.resume_body()
        else:
            inbox.appendleft(message)  # every later receive gets the disconnect too
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self._lost or (self._closed and kind != "websocket.close"):
            raise ClientDisconnectedError("the WebSocket is closed")
        if kind == "websocket.send":
            if not self._accepted:
                raise RuntimeError("websocket.send before websocket.accept")
            text = message.get("text")
            if text is not None:
                data = self._ws.send(TextMessage(data=text))
            else:
                data = self._ws.send(BytesMessage(data=message.get("bytes") or b""))
            self._conn.write(data)
            try:
                await self._conn.drain()
            except ConnectionResetError:
                raise ClientDisconnectedError("the WebSocket is closed") from None
        elif kind == "websocket.accept":
            if self._accepted:
                raise RuntimeError("websocket.accept sent twice")
            self._accept(message)
        elif kind == "websocket.close":
            if not self._accepted:
                if not self._closed:
                    self._refuse(403, "The application refused this WebSocket.")
                return
            if not self._closed:
                self._close_frame(int(message.get("code", 1000)), message.get("reason") or "")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on a WebSocket")

    def _accept(self, message: Message) -> None:
        subprotocol = message.get("subprotocol")
        handshake = self._handshake
        assert handshake is not None
        if subprotocol is not None and subprotocol not in handshake.subprotocols:
            raise RuntimeError(f"websocket.accept: the client did not offer {subprotocol!r}")
        headers = [(bytes(n), bytes(v)) for n, v in message.get("headers", ())]
        for name, value in headers:
            if b"\n" in value or b"\r" in value or b"\n" in name or b"\r" in name:
                raise ValueError("websocket.accept: a header contains a line break")
        data = self._ws.send(AcceptConnection(subprotocol=subprotocol, extra_headers=headers))
        self._accepted = True
        self._conn.write(data)
        self._conn.response_done(self._req, Response(101, b""), close=False)

    def _close_frame(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(LocalProtocolError):  # wsproto's state says it closed
            self._conn.write(self._ws.send(CloseConnection(code=code, reason=reason or None)))
        self._conn.close()

    def _refuse(self, status: int, message: str) -> None:
        """Answer the upgrade request with an HTTP error instead, then close."""
        self._closed = True
        conn = self._conn
        resp = error_response(status, message, close=True)
        head, _ = conn.response_head(self._req, resp)
        conn.write(head + resp.body)  # type: ignore[operator]
        conn.response_done(self._req, resp, close=True)
