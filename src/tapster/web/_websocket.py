"""ASGI WebSockets over an HTTP/1.1 upgrade, framed by ``websockets``' sans-IO layer.

A ``WebSocketSession`` takes over the connection once the upgrade request is
parsed: every byte goes to a ``websockets.server.ServerProtocol``, whose frames
become ``websocket.*`` messages for the application. Bounds: a message larger than
``--ws-max-size`` closes the socket with 1009; received messages the application
has not taken yet stop the connection reading past ``_QUEUE_BYTES`` (a flood fills
the client's socket, not our memory); ``send`` waits while the client does not
read. Pings are answered at once. No extension (permessage-deflate) is offered: a
compressed frame could inflate past every bound before it could be counted.

Why this library: it frames a small message for about a third of what ``wsproto``
costs (unmasking in C; 4.8 against 16.4 microseconds to take one 32-byte frame in
and send one out, measured here), and it is maintained. The protocol object starts
in the OPEN state: httptools has parsed the request already, and the handshake's
checks and answer come from its ``accept``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import cast

from websockets.datastructures import Headers
from websockets.exceptions import InvalidState
from websockets.frames import Opcode
from websockets.http11 import Request as WsRequest
from websockets.http11 import Response as WsResponse
from websockets.protocol import State
from websockets.server import ServerProtocol

from ._accesslog import printable
from ._asgi import AsgiHandler, ClientDisconnectedError, Message, offered_subprotocols
from ._http import Request, Response, error_response

TYPE_CHECKING = False
if TYPE_CHECKING:
    from websockets.frames import Frame

log = logging.getLogger("tapster.web")
#: What ``websockets`` itself logs about a session ("connection closed" at INFO, for
#: each one): warnings and errors only.
_library_log = logging.getLogger("tapster.web.websocket")
_library_log.setLevel(logging.WARNING)

#: Unread message bytes above which the connection stops reading from the client.
_QUEUE_BYTES = 1024 * 1024
_GOING_AWAY = 1001
_INVALID_DATA = 1007
_INTERNAL_ERROR = 1011
_ABNORMAL = 1006
_NO_STATUS = 1005
_TEXT, _BINARY, _CONT, _CLOSE = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.CLOSE


class WebSocketSession:
    """One WebSocket: the application's receive/send on one side, the protocol on the other."""

    def __init__(self, handler: AsgiHandler, req: Request) -> None:
        conn = req.channel
        assert conn is not None
        self._handler = handler
        self._req = req
        self._conn = conn
        self._ws = ServerProtocol(
            state=State.OPEN, max_size=handler.ws_max_size, logger=_library_log
        )
        #: Bytes the client sent before the application accepted (RFC 6455 says it must
        #: wait, some do not): framed once the 101 has gone out, so no pong precedes it.
        self._held: bytearray | None = bytearray()
        self._inbox: deque[Message] = deque()
        self._inbox_bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        #: The message being received in fragments: its kind and the parts so far.
        self._text = False
        self._parts: list[bytes] = []
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
            if self._answer().status_code != 101:
                self._refuse(400, "This is not a valid WebSocket request.")
                return
            if leftover:  # frames the client sent right behind its request
                self.data_received(leftover)  # held until the application accepts
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

    def _answer(self) -> WsResponse:
        """The handshake's answer: 101 when the request is a valid WebSocket opening
        (without a subprotocol: the application picks it)."""
        req = self._req
        headers = Headers(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in req.headers
        )
        return self._ws.accept(WsRequest(req.target.decode("latin-1"), headers))

    # -- the connection's side -------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Bytes from the client: frames become queued messages; replies go out."""
        held = self._held
        if held is not None:
            held += data
            if len(held) > _QUEUE_BYTES and not self._paused:
                self._paused = True
                self._conn.pause_body()
            return
        ws = self._ws
        ws.receive_data(data)
        for frame in cast("list[Frame]", ws.events_received()):  # OPEN: frames only
            opcode = frame.opcode
            if opcode is _TEXT or opcode is _BINARY or opcode is _CONT:
                self._message_part(frame)
            elif opcode is _CLOSE:
                # The protocol answered the close; the connection ends with it.
                received = ws.close_rcvd
                self._closed = True
                self._send_out()
                self._deliver(
                    {
                        "type": "websocket.disconnect",
                        "code": received.code if received is not None else _NO_STATUS,
                    }
                )
                self._conn.close()
                return
        if ws.parser_exc is not None and not self._closed:
            # A protocol error or a message over --ws-max-size: the protocol sent the close.
            sent = ws.close_sent
            log.debug("Closing a WebSocket from %s: %s", self._conn.peer, ws.parser_exc)
            self._closed = True
            self._send_out()
            self._deliver(
                {"type": "websocket.disconnect", "code": sent.code if sent else _ABNORMAL}
            )
            self._conn.close()
            return
        self._send_out()  # pongs

    def _send_out(self) -> None:
        """Write what the protocol has for the client (an end-of-stream mark is ours to act on)."""
        for data in self._ws.data_to_send():
            if data:
                self._conn.write(data)

    def _message_part(self, frame: Frame) -> None:
        if self._closed:
            return
        data = frame.data
        if frame.opcode is not _CONT:
            self._text = frame.opcode is _TEXT
            if frame.fin:
                self._message(data if type(data) is bytes else bytes(data))
                return
        self._parts.append(bytes(data))
        if frame.fin:
            whole = b"".join(self._parts)
            self._parts = []
            self._message(whole)

    def _message(self, data: bytes) -> None:
        message: Message
        if self._text:
            try:
                text = data.decode()
            except UnicodeDecodeError:
                self._closed = True
                self._ws.fail(_INVALID_DATA, "invalid UTF-8 in a text message")
                self._send_out()
                self._deliver({"type": "websocket.disconnect", "code": _INVALID_DATA})
                self._conn.close()
                return
            message = {"type": "websocket.receive", "text": text}
        else:
            message = {"type": "websocket.receive", "bytes": data}
        self._deliver(message, len(data))

    def _deliver(self, message: Message, size: int = 0) -> None:
        self._inbox.append(message)
        self._inbox_bytes += size
        if self._inbox_bytes > _QUEUE_BYTES and not self._paused:
            self._paused = True
            self._conn.pause_body()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

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
                self._ws.send_text(text.encode())
            else:
                self._ws.send_binary(message.get("bytes") or b"")
            self._send_out()
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
        offered = offered_subprotocols(self._req)
        if subprotocol is not None and subprotocol not in offered:
            raise RuntimeError(f"websocket.accept: the client did not offer {subprotocol!r}")
        headers = [(bytes(n), bytes(v)) for n, v in message.get("headers", ())]
        for name, value in headers:
            if b"\n" in value or b"\r" in value or b"\n" in name or b"\r" in name:
                raise ValueError("websocket.accept: a header contains a line break")
        answer = self._answer()
        if subprotocol is not None:
            answer.headers["Sec-WebSocket-Protocol"] = subprotocol
        for name, value in headers:
            answer.headers[name.decode("latin-1")] = value.decode("latin-1")
        self._accepted = True
        self._conn.write(answer.serialize())
        self._conn.response_done(self._req, Response(101, b""), close=False)
        held, self._held = self._held, None
        if held:
            self.data_received(bytes(held))
        if self._paused and self._inbox_bytes <= _QUEUE_BYTES // 2 and not self._closed:
            self._paused = False
            self._conn.resume_body()

    def _close_frame(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(InvalidState):  # the protocol's state says it closed
            self._ws.send_close(code, reason)
            self._send_out()
        self._conn.close()

    def _refuse(self, status: int, message: str) -> None:
        """Answer the upgrade request with an HTTP error instead, then close."""
        self._closed = True
        conn = self._conn
        resp = error_response(status, message, close=True)
        head, _ = conn.response_head(self._req, resp)
        conn.write(head + resp.body)  # type: ignore[operator]
        conn.response_done(self._req, resp, close=True)
