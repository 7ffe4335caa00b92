"""The `serve` and `mcp` commands, registered at the end of paperscope.cli. Only typer is
imported here; the servers load when a command runs."""

from __future__ import annotations

import contextlib
import errno
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
    workers: int = typer.Option(1, "--workers", "-w", min=1, max=64, metavar="N",
                                help="Processes answering requests, each holding its own model "
                                "and indexes: more answer more searches at once (a group's "
                                "server: one per core)."),
) -> None:
    """Serve the web page and the JSON API over the catalogue and the corpora (read-only).

    The page is a search box with results as you type (a picker searches a corpus instead),
    a page per entry, the list by section, and /new: a corpus's papers new near the list. The
    JSON API is under /api/v1/ (documented at /docs); search, related and discover take
    corpus=NAME. A rebuilt index or corpus is picked up without a restart.

    Examples:

      paperscope serve

      paperscope serve --port 8080

      paperscope serve --workers 2
    """
    import uvicorn

    from .resident import Resident
    from .server import searches_at_once, server_config, start_workers, stop_workers
    from .web import create_app

    started = time.perf_counter()
    # the library folder of --library (see paperscope.cli)
    resident = Resident(ctx.obj, searches_at_once=searches_at_once(workers))
    loopback = is_loopback(host)
    hosts = ["127.0.0.1", "localhost", "[::1]", "::1"] if loopback else None
    app = create_app(resident, allowed_hosts=hosts)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)  # connections queue from now on: the address printed below works at once
    except OSError as err:
        in_use = err.errno == errno.EADDRINUSE
        raise UsageError(f"Cannot listen on {host}:{port}: {err.strerror or err}.",
                         "Choose another port with --port." if in_use else
                         "Check --host: an address of this machine (or 127.0.0.1, the default).") from None
    if not loopback:
        typer.echo(f"warning: serving on {host}, not a loopback address: anyone who can reach "
                   "this machine can read the library. Use the default --host 127.0.0.1 to keep "
                   "it local.", err=True)
    bound = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    generation = resident.current()
    corpora = resident.corpus_names()
    also = f" and the {'corpus' if len(corpora) == 1 else 'corpora'} {', '.join(corpora)}" if corpora else ""
    more = f" ({workers} processes, {workers - 1} of them still loading)" if workers > 1 else ""
    typer.echo(f"paperscope: serving {len(generation.catalogue.entries)} entries from "
               f"{resident.root}{also} at http://{shown}:{bound}/ (API: /api/v1/, docs: /docs); "
               f"ready in {time.perf_counter() - started:.2f} s{more}. Ctrl-C stops it.", err=True)
    for notice in generation.notices:
        typer.echo(f"note: {notice}", err=True)
    if generation.problem is not None:
        typer.echo(f"warning: {generation.problem.message} Searches answer 503 until it is built "
                   "(paperscope build).", err=True)
    sys.stderr.flush()
    others = start_workers(workers - 1, ctx.obj, hosts, sock)
    server = uvicorn.Server(server_config(app))
    try:
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
    finally:
        stop_workers(others)


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
