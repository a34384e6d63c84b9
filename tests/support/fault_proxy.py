"""A loopback TCP proxy that can make a real dependency hang, refuse or crawl.

Why: a stopped Redis or PostgreSQL is easy to fake (connect to a dead port),
but the failure that hurts in production is the one that *hangs* - a server
that is SIGSTOPped, swapping or behind a black-holing network keeps the TCP
connection established and simply never answers. Only timeouts save a client
then, so the tests need to produce exactly that. Stopping the shared servers
is not an option; a proxy in front of them is.

Modes, switchable from any thread and applied to existing connections at once:

* ``pass_()`` - forward everything (the default);
* ``hang()`` - keep accepting connections and keep every socket open, but move
  no byte in either direction (new connections are not even connected
  upstream yet, like connections waiting in a stopped server's backlog);
  ``pass_()`` afterwards delivers what was held, like SIGCONT;
* ``refuse()`` - stop listening (new connects get ECONNREFUSED) and reset the
  existing connections, like a server that has exited; any other mode listens
  again on the same port;
* ``delay(seconds)`` - forward, but hold every chunk for ``seconds`` first.

``pass`` is a keyword, hence ``pass_()``.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any

CHUNK = 65536


class FaultProxy:
    """TCP proxy from ``127.0.0.1:<port>`` to ``target_host:target_port``, run in a daemon thread."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self.mode = "pass"
        self.latency = 0.0
        self.accepted = 0  # connections accepted from clients
        self.bytes_up = 0  # client -> server bytes forwarded
        self.bytes_down = 0  # server -> client bytes forwarded
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None  # set while bytes may move
        self._conns: dict[asyncio.Task[None], list[asyncio.StreamWriter]] = {}

    # -- lifecycle -------------------------------------------------------

    def start(self) -> FaultProxy:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name=f"fault-proxy-{self.target_port}", daemon=True)
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- modes (any thread; return once the mode is in effect) ------------

    def pass_(self) -> None:
        self._call(self._set_mode("pass"))

    def hang(self) -> None:
        self._call(self._set_mode("hang"))

    def refuse(self) -> None:
        self._call(self._set_mode("refuse"))

    def delay(self, seconds: float) -> None:
        self._call(self._set_mode("delay", seconds))

    # -- helpers -----------------------------------------------------------

    def url_for(self, scheme: str, path: str = "", userinfo: str = "") -> str:
        return f"{scheme}://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}/{path}"

    def redis_url(self, db: int = 0) -> str:
        return self.url_for("redis", str(db))

    def postgres_url(self, dbname: str, user: str = "postgres") -> str:
        return self.url_for("postgresql", dbname, user)

    @property
    def active(self) -> int:
        """Client connections currently open through the proxy."""
        return len(self._conns)

    # -- inside the loop ---------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None, "FaultProxy is not started"
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(5)

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._listen()

    async def _listen(self) -> None:
        if self._server is None:
            # reuse_address (asyncio's default on POSIX) lets refuse -> pass rebind the same port.
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
            self.port = self._server.sockets[0].getsockname()[1]

    async def _set_mode(self, mode: str, latency: float = 0.0) -> None:
        assert self._flowing is not None
        self.mode, self.latency = mode, latency
        if mode == "refuse":
            if self._server is not None:
                self._server.close()  # closes the listening socket now: later connects are refused
                self._server = None
            await self._reset_all()
        else:
            await self._listen()
        if mode == "hang":
            self._flowing.clear()
        else:
            self._flowing.set()

    async def _reset_all(self) -> None:
        """Abort every connection; the client gets an RST, as from the kernel of an exited server."""
        for task, (client_w, *server_w) in self._conns.items():
            client_w.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            for writer in (client_w, *server_w):
                writer.transport.abort()
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        await self._reset_all()
        await asyncio.sleep(0)  # let the aborted transports run their connection_lost callbacks

    async def _gate(self) -> None:
        """Wait until a chunk may move: blocks while hanging, sleeps the latency while delaying."""
        assert self._flowing is not None
        await self._flowing.wait()
        if self.mode == "delay":
            await asyncio.sleep(self.latency)
            await self._flowing.wait()  # a hang() during the sleep still holds the chunk

    def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        """start_server callback. The work runs in a task of our own so it can be cancelled:
        Python 3.11's streams log a cancelled callback task as an error."""
        self.accepted += 1
        writers = [client_w]
        self._conns[asyncio.get_running_loop().create_task(self._serve(client_r, writers))] = writers

    async def _serve(self, client_r: asyncio.StreamReader, writers: list[asyncio.StreamWriter]) -> None:
        assert self._flowing is not None
        try:
            await self._flowing.wait()  # hang: a connection nobody accepts yet, as in a stopped server's backlog
            try:
                server_r, server_w = await asyncio.open_connection(self.target_host, self.target_port)
            except OSError:
                return  # target down: the client sees the connection close
            writers.append(server_w)
            pumps = [
                asyncio.create_task(self._pump(client_r, server_w, "bytes_up")),
                asyncio.create_task(self._pump(server_r, writers[0], "bytes_down")),
            ]
            try:
                # Either side closing ends the connection, as a real server's exit would.
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._conns.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
            for writer in writers:
                writer.close()  # flushes what was already forwarded (a no-op after an abort)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counter: str) -> None:
        try:
            while data := await reader.read(CHUNK):
                await self._gate()
                writer.write(data)
                await writer.drain()
                setattr(self, counter, getattr(self, counter) + len(data))
        except OSError:
            pass  # the peer went away; _serve closes the other side
