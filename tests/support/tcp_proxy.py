"""A TCP proxy for tests that can freeze: stop forwarding on its open connections without
closing them, as a peer behind a dead NAT entry or a paused VM does (a half-open connection:
no FIN, no RST, just silence). Connections opened after a freeze are forwarded normally."""

from __future__ import annotations

import asyncio
import contextlib


class FreezableProxy:
    """`await start()` in the test's event loop; `url` then points at `target` through it."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._connections: list[_Connection] = []
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in self._connections:
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()

    def freeze(self) -> int:
        """Silence every connection open now, both ways, keeping it open; how many."""
        live = [c for c in self._connections if not c.closed]
        for connection in live:
            connection.frozen.set()
        return len(live)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        connection = _Connection(writer, upstream_writer)
        self._connections.append(connection)
        await asyncio.gather(
            connection.pump(reader, upstream_writer), connection.pump(upstream_reader, writer)
        )


class _Connection:
    def __init__(self, *writers: asyncio.StreamWriter) -> None:
        self._writers = writers
        self.frozen = asyncio.Event()
        self.closed = False
        self._released = asyncio.Event()

    async def pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                if self.frozen.is_set():
                    # Swallowed, like packets into a black hole: the peer never learns.
                    await self._released.wait()
                    return
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        if not self.frozen.is_set():
            self.close()

    def close(self) -> None:
        self.closed = True
        self._released.set()
        for writer in self._writers:
            with contextlib.suppress(RuntimeError):
                writer.close()
