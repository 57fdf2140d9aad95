"""FAKE HTTP server that answers every request with a scripted byte sequence (for fuzzing clients).

A script is a list of steps: bytes to send, a pause, an endless generator, a reset (RST) or a close.
It speaks no protocol by itself: the fuzz corpus writes status lines, headers, chunked framing and
bodies, right or wrong. Runs in a thread with its own event loop; used only where a client is under test.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Pause:
    seconds: float


@dataclass
class Endless:
    """Send `piece` again and again (until the client goes away or `seconds` pass)."""

    piece: bytes
    every_s: float = 0.0
    seconds: float = 60.0


@dataclass
class Reset:
    """Abort the connection with a TCP RST."""


@dataclass
class Close:
    """Close the connection (FIN)."""


Step = bytes | Pause | Endless | Reset | Close


@dataclass
class Script:
    steps: list[Step] = field(default_factory=list)


class RawFakeServer:
    """Every request (any method, any path) gets `script_for(method, path)`; `script` by default."""

    def __init__(self) -> None:
        self.script = Script([Close()])
        self.script_for: Callable[[str, str], Script] | None = None
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> RawFakeServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                headers = {
                    k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)
                }
                length = int(headers.get("content-length", "0"))
                if length:
                    await reader.readexactly(length)
                self.requests.append((method, path, headers))
                script = self.script_for(method, path) if self.script_for else self.script
                if not await self._play(script, writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            if not writer.is_closing():
                writer.close()

    async def _play(self, script: Script, writer: asyncio.StreamWriter) -> bool:
        """Send the script; False when the connection is gone afterwards."""
        loop = asyncio.get_running_loop()
        for step in script.steps:
            if isinstance(step, bytes):
                writer.write(step)
                await writer.drain()
            elif isinstance(step, Pause):
                await asyncio.sleep(step.seconds)
            elif isinstance(step, Endless):
                end = loop.time() + step.seconds
                while loop.time() < end and not writer.is_closing():
                    writer.write(step.piece)
                    await writer.drain()
                    await asyncio.sleep(step.every_s)
                return False
            elif isinstance(step, Reset):
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return False
            elif isinstance(step, Close):
                writer.close()
                return False
        return True
