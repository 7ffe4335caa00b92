"""How `serve` runs uvicorn: its bounds on a connection (`server_config`), and more processes
answering on the command's socket (`serve --workers N`).

One process answers at most about one search at a time on the Python side (the GIL), however
many cores the machine has. `serve --workers N` starts N - 1 more processes on the socket the
command bound, each with its own `Resident` (model, indexes) and uvicorn server: the kernel
hands each new connection to one of them. The command's own process answers from the first
moment, so the first page is as quick as with one worker; the others join when they have
loaded (about a second).

The others are spawned (a fresh interpreter: nothing of a parent's threads is copied) and
watch a pipe whose only writing end the parent holds: when the parent ends, however it ends
(Ctrl-C, SIGTERM, SIGKILL), the pipe closes and each worker finishes its requests and exits,
so no server outlives the command.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

# Bounds on what one connection may hold (uvicorn's and h11's limits, and one of our own that
# uvicorn lacks): a request's head (and body) must arrive within REQUEST_SECONDS of the
# connection opening or of the previous answer, or the connection is closed (uvicorn alone keeps
# a connection that never finishes its headers, and one that sends a byte a minute, for ever);
# the head is at most MAX_HEAD_BYTES; an idle keep-alive connection closes after
# KEEP_ALIVE_SECONDS; beyond MAX_CONNECTIONS connections (or running requests) the answer is 503.
REQUEST_SECONDS = 10.0
MAX_HEAD_BYTES = 16 * 1024
KEEP_ALIVE_SECONDS = 5
MAX_CONNECTIONS = 256


def server_config(app, *, request_seconds: float = REQUEST_SECONDS):
    """The uvicorn configuration of `serve`, with its bounds (above)."""
    import uvicorn

    return uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                          http=bounded_protocol(request_seconds), timeout_keep_alive=KEEP_ALIVE_SECONDS,
                          h11_max_incomplete_event_size=MAX_HEAD_BYTES, limit_concurrency=MAX_CONNECTIONS)


def bounded_protocol(request_seconds: float):
    """uvicorn's h11 protocol, closing a connection whose request has not fully arrived within
    `request_seconds` (a slow or stalled client: "slowloris")."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class BoundedH11Protocol(H11Protocol):
        _request_timer = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._watch()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch()

        def connection_lost(self, exc) -> None:
            self._stop_watching()
            super().connection_lost(exc)

        def _watch(self) -> None:
            """A timer from the start of each request until it has wholly arrived."""
            if self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
                if self._request_timer is None and not self.transport.is_closing():
                    self._request_timer = self.loop.call_later(request_seconds, self._too_slow)
            else:  # arrived (the answer's time is ours), or the connection is ending
                self._stop_watching()

        def _stop_watching(self) -> None:
            if self._request_timer is not None:
                self._request_timer.cancel()
                self._request_timer = None

        def _too_slow(self) -> None:
            self._request_timer = None
            if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
                self.transport.close()

    return BoundedH11Protocol


STOP_SECONDS = 10.0  # a worker's grace to finish its requests before it is killed


@dataclass
class Worker:
    process: BaseProcess
    lifeline: Connection  # the parent's end of the worker's pipe: closing it stops the worker


def searches_at_once(workers: int) -> int:
    """Searches each of `workers` processes runs at a time (see serve.resident): together, as
    many as the machine has cores."""
    return max(1, (os.cpu_count() or 1) // workers)


def start_workers(count: int, library: str | Path | None, hosts: list[str] | None,
                  sock: socket.socket) -> list[Worker]:
    """`count` more processes serving `library` on the bound, listening `sock` (the command's
    own process being one more)."""
    context = multiprocessing.get_context("spawn")
    workers = []
    for _ in range(count):
        reader, writer = context.Pipe(duplex=False)
        process = context.Process(target=_serve, args=(library, hosts, sock, reader,
                                                        searches_at_once(count + 1)),
                                  name="paperscope-serve", daemon=True)
        process.start()
        reader.close()  # the worker holds the only reading end, the parent the only writing one
        workers.append(Worker(process, writer))
    return workers


def stop_workers(workers: Sequence[Worker]) -> None:
    """Ask every worker to finish (close its pipe), then kill those still running after
    STOP_SECONDS."""
    for worker in workers:
        worker.lifeline.close()
    for worker in workers:
        worker.process.join(STOP_SECONDS)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()


def _serve(library: str | Path | None, hosts: list[str] | None, sock: socket.socket,
           lifeline: Connection, at_once: int) -> None:
    """A worker: the same app and bounds as the command's own process, until the pipe closes."""
    import uvicorn

    from ..errors import PaperscopeError
    from .resident import Resident
    from .web import create_app

    try:
        resident = Resident(library, searches_at_once=at_once)
    except PaperscopeError as err:
        print(f"paperscope: a serve worker could not open the library: {err.message}",
              file=sys.stderr)
        sys.exit(1)
    server = uvicorn.Server(server_config(create_app(resident, allowed_hosts=hosts)))

    def watch() -> None:
        with contextlib.suppress(EOFError, OSError):
            lifeline.recv()  # returns only when the parent's end closes (it never writes)
        server.should_exit = True

    threading.Thread(target=watch, name="lifeline", daemon=True).start()
    server.run(sockets=[sock])
