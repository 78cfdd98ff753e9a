"""A TCP proxy on 127.0.0.1 that a test can cut, to put a network fault between a real
process (a Celery worker, the web server) and Redis or PostgreSQL.

`cut()` resets every open connection, as a broken network or a restarting server does,
and refuses new ones (nothing listens on the port) until `restore()` listens again on
the same port, so the clients' configured address stays valid across the fault.
`freeze()` keeps every connection open and relays nothing either way until `thaw()`:
a server that went silent without closing (a failover). `stall()` does the same to the
connections open now only, and relays new ones: a NAT or firewall that dropped the
state of its connections while the server itself still answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_CHUNK = 64 * 1024


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host, self.target_port = target_host, target_port
        self.port = 0  # chosen by the system on the first listen, then kept
        self.accepted = 0  # connections accepted so far, across cuts
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._flows: set[asyncio.Event] = set()  # one a connection: set while it relays
        self._frozen = False  # whether a new connection starts held
        self._upstreams: dict[asyncio.StreamWriter, str] = {}  # -> its address at the target
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tcp-proxy", daemon=True
        )
        self._thread.start()
        self._call(self._listen())

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def upstream_addresses(self) -> set[str]:
        """The relayed connections' own addresses (host:port) as the target sees them: in
        Redis's CLIENT LIST, say."""
        return set(self._call(self._upstream_addresses()))

    @property
    def cut_off(self) -> bool:
        return self._server is None

    def cut(self) -> None:
        """Reset every connection and stop listening: new connections are refused."""
        self._call(self._cut())

    def restore(self) -> None:
        """Listen again on the same port and relay new connections."""
        self._call(self._listen())

    def freeze(self) -> None:
        """Relay nothing, either way, on every connection (open or new) until thaw()."""
        self._call(self._hold(new_too=True))

    def stall(self) -> None:
        """Relay nothing, either way, on the connections open now until thaw(); new
        connections are relayed."""
        self._call(self._hold(new_too=False))

    def thaw(self) -> None:
        self._call(self._release())

    def close(self) -> None:
        if self._thread.is_alive():
            self._call(self._cut())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _hold(self, *, new_too: bool) -> None:
        self._frozen = new_too
        for flow in self._flows:
            flow.clear()

    async def _upstream_addresses(self) -> list[str]:
        return list(self._upstreams.values())

    async def _release(self) -> None:
        self._frozen = False
        for flow in self._flows:
            flow.set()

    async def _listen(self) -> None:
        if self._server is not None:
            return
        # reuse_address: the port's earlier connections may linger in TIME_WAIT.
        self._server = await asyncio.start_server(
            self._relay, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _cut(self) -> None:
        await self._release()  # held relays end with their connections
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()
        if server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), timeout=5)

    async def _relay(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        self.accepted += 1
        try:
            upstream_in, upstream_out = await asyncio.open_connection(
                self.target_host, self.target_port
            )
        except OSError:
            _reset(client_out)
            return
        if self._server is None:  # cut while this connection was being set up
            _reset(client_out)
            _reset(upstream_out)
            return
        pair = {client_out, upstream_out}
        self._writers |= pair
        host, port = upstream_out.get_extra_info("sockname")[:2]
        self._upstreams[upstream_out] = f"{host}:{port}"
        flowing = asyncio.Event()
        if not self._frozen:
            flowing.set()
        self._flows.add(flowing)
        pumps = {
            asyncio.ensure_future(_pump(client_in, upstream_out, flowing)),
            asyncio.ensure_future(_pump(upstream_in, client_out, flowing)),
        }
        try:
            # Either side closing ends the connection for both.
            _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for pump in pending:
                pump.cancel()
        finally:
            self._flows.discard(flowing)
            self._upstreams.pop(upstream_out, None)
            for writer in pair:
                self._writers.discard(writer)
                writer.close()


async def _pump(
    source: asyncio.StreamReader, sink: asyncio.StreamWriter, flowing: asyncio.Event
) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while chunk := await source.read(_CHUNK):
            await flowing.wait()  # held until thawed
            sink.write(chunk)
            await sink.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), not a polite FIN: the peer's next read fails."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
