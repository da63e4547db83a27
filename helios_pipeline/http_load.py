"""A lean HTTP/1.1 keep-alive client for load generation.

General-purpose async clients spend more CPU per request than the gateway does to answer
it, which would make the load tool the bottleneck on a 2-core machine; this one only
writes a POST and reads a Content-Length response.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, ctype: bytes = b"application/json"
                   ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: " + self.host.encode()
                + b"\r\nContent-Type: " + ctype + b"\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n")
        try:
            self.writer.write(head + body)
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionError("connection closed by server")
            status = int(status_line.split(b" ", 2)[1])
            length = 0
            while True:
                line = await self.reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value.strip())
                elif name == b"transfer-encoding":
                    raise ValueError("chunked responses are not supported by this client")
            payload = await self.reader.readexactly(length) if length else b""
            return status, payload
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Pool:
    """Connections reused across requests; at most ``size`` in flight."""

    def __init__(self, url: str, size: int) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.free: asyncio.Queue[Connection] = asyncio.Queue()
        for _ in range(size):
            self.free.put_nowait(Connection(self.host, self.port))

    def available(self) -> int:
        return self.free.qsize()

    async def post(self, path: str, body: bytes, ctype: bytes = b"application/json"
                   ) -> tuple[int, bytes]:
        conn = await self.free.get()
        try:
            return await conn.post(path, body, ctype)
        finally:
            self.free.put_nowait(conn)

    def close(self) -> None:
        while not self.free.empty():
            self.free.get_nowait().close()
