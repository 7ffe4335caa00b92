"""The `serve` and `mcp` commands, registered at the end of paperscope.cli. Only typer is
imported here; the servers load when a command runs."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
import time

import typer

from ..errors import UsageError

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", metavar="HOST",
                             help="Address to listen on. Anything but a loopback address shares "
                             "the library with the network (a warning says so)."),
    port: int = typer.Option(8000, "--port", "-p", min=0, max=65535, metavar="PORT",
                             help="Port to listen on (0: any free one)."),
) -> None:
    """Serve the web page and the JSON API over the catalogue and the corpora (read-only).

    The page is a search box with results as you type (a picker searches a corpus instead),
    a page per entry, the list by section, and /new: a corpus's papers new near the list. The
    JSON API is under /api/v1/ (documented at /docs); search, related and discover take
    corpus=NAME. A rebuilt index or corpus is picked up without a restart.

    Examples:

      paperscope serve

      paperscope serve --port 8080
    """
    import uvicorn

    from .resident import Resident
    from .web import create_app

    started = time.perf_counter()
    resident = Resident(ctx.obj)  # the library folder of --library (see paperscope.cli)
    loopback = is_loopback(host)
    if not loopback:
        typer.echo(f"warning: serving on {host}, not a loopback address: anyone who can reach "
                   "this machine can read the library. Use the default --host 127.0.0.1 to keep "
                   "it local.", err=True)
    hosts = ["127.0.0.1", "localhost", "[::1]", "::1"] if loopback else None
    app = create_app(resident, allowed_hosts=hosts)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)  # connections queue from now on: the address printed below works at once
    except OSError as err:
        raise UsageError(f"Cannot listen on {host}:{port}: {err.strerror}.",
                         "Choose another port with --port.") from None
    bound = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    generation = resident.current()
    corpora = resident.corpus_names()
    also = f" and the corpora {', '.join(corpora)}" if corpora else ""
    typer.echo(f"paperscope: serving {len(generation.catalogue.entries)} entries from "
               f"{resident.root}{also} at http://{shown}:{bound}/ (API: /api/v1/, docs: /docs); "
               f"ready in {time.perf_counter() - started:.2f} s. Ctrl-C stops it.", err=True)
    for notice in generation.notices:
        typer.echo(f"note: {notice}", err=True)
    if generation.problem is not None:
        typer.echo(f"warning: {generation.problem.message} Searches answer 503 until it is built.",
                   err=True)
    sys.stderr.flush()
    server = uvicorn.Server(server_config(app))
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])


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


def mcp_command(ctx: typer.Context) -> None:
    """Answer an AI assistant over the Model Context Protocol (stdio), from one resident index.

    Tools: search, related, show, cite and discover (search and related take a
    corpus); the catalogue is the resource
    paperscope://catalogue. Configure it in an MCP client as the command
    `paperscope --library DIR mcp`.
    """
    from .mcp import build_server
    from .resident import Resident

    resident = Resident(ctx.obj)
    build_server(resident).run("stdio")
