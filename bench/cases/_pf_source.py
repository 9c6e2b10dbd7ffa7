"""A byte source and sink for the portforward case: the far end of the proxy.

``python _pf_source.py PORT`` listens on 127.0.0.1:PORT. Each connection sends one
9-byte header: ``D`` or ``U`` and a big-endian 8-byte size. ``D``: the server sends
that many bytes and closes. ``U``: the server reads that many bytes, then answers one
byte. Threads and large buffers keep it far faster than any Python proxy in between.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import sys

CHUNK = memoryview(bytes(range(256)) * (4 * 1024 * 1024 // 256))


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        conn: socket.socket = self.request
        header = b""
        while len(header) < 9:
            more = conn.recv(9 - len(header))
            if not more:
                return
            header += more
        mode, size = header[:1], struct.unpack(">Q", header[1:])[0]
        if mode == b"D":
            left = size
            while left > 0:
                n = min(left, len(CHUNK))
                conn.sendall(CHUNK[:n])
                left -= n
            conn.shutdown(socket.SHUT_WR)
        else:
            buf = bytearray(4 * 1024 * 1024)
            left = size
            while left > 0:
                n = conn.recv_into(buf)
                if not n:
                    return
                left -= n
            conn.sendall(b"k")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


if __name__ == "__main__":
    with _Server(("127.0.0.1", int(sys.argv[1])), _Handler) as server:
        server.serve_forever()
