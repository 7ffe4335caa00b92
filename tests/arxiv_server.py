"""A local stand-in for the arXiv API: serves recorded Atom responses, with
scripted faults, so that tests drive the real client over HTTP on 127.0.0.1."""

from __future__ import annotations

import contextlib
import functools
import socket
import time
import zlib
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from .stub_server import LocalServer, QuietHandler

FIXTURES = Path(__file__).resolve().parent / "fixtures"
RECORDED = (FIXTURES / "arxiv-lora-qlora.xml").read_text()
EMPTY_FEED = RECORDED.split("  <entry>")[0].replace(
    "<opensearch:totalResults>2<", "<opensearch:totalResults>0<") + "</feed>\n"


def feed_for(ids: list[str], total: int | None = None, summary: str | None = None) -> str:
    """The recorded feed reduced to the requested ids (as arXiv drops unknown ones);
    `total` overrides the number of results it claims, `summary` every abstract."""
    head, *entries = RECORDED.split("  <entry>")
    kept = [e for e in entries if any(f"/abs/{i}v" in e for i in ids)]
    if summary is not None:
        kept = [e.split("<summary>")[0] + f"<summary>{summary}</summary>" + e.split("</summary>")[1]
                for e in kept]
    body = "".join("  <entry>" + e for e in kept)
    if not body.rstrip().endswith("</feed>"):
        body += "</feed>\n"
    claimed = len(kept) if total is None else total
    head = head.replace("<opensearch:totalResults>2<", f"<opensearch:totalResults>{claimed}<")
    return head + body


@functools.lru_cache(maxsize=4)
def gzip_zeros(size: int) -> bytes:
    """A gzip stream of `size` zero bytes, made a megabyte at a time (once: a test makes it
    before its clock starts, so a busy machine's slow compression is not timed)."""
    packer, block = zlib.compressobj(9, zlib.DEFLATED, 31), bytes(1 << 20)
    return b"".join(packer.compress(block) for _ in range(size >> 20)) + packer.flush()


def closed_port_url() -> str:
    """An API address on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/query"


class ArxivStub(LocalServer):
    """Answers each request with the next scripted step, then with `default` (the recorded feed).

    Steps: ("ok",), ("status", code[, headers]), ("sleep", seconds), ("reset",), ("body", text[, wait]),
    ("summary", text): every abstract replaced by text (raw XML, entities included),
    ("drip", seconds[, "headers"]): the body (or the headers) one byte every `seconds`,
    ("gzip_bomb", size): a gzip body of `size` zero bytes once inflated,
    ("endless",): a chunked body that never ends, ("redirect",): a redirect to the same URL,
    ("ignore_start",): only the first asked id's record, whatever `start` and `max_results`
    say, while claiming all of them, ("raw", status, headers, body): exactly those."""

    def __init__(self):
        self.script: list[tuple] = []
        self.default: tuple = ("ok",)
        self.requests: list[dict[str, list[str]]] = []
        stub = self

        class Handler(QuietHandler):
            def do_GET(self):
                query = parse_qs(urlparse(self.path).query)
                stub.requests.append(query)
                ids = [i for i in query.get("id_list", [""])[0].split(",") if i]
                step = stub.script.pop(0) if stub.script else stub.default
                # the client gave up, as it should
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.answer(step, ids)

            def answer(self, step: tuple, ids: list[str]) -> None:
                kind = step[0]
                if kind == "reset":
                    self.connection.shutdown(2)
                    return
                if kind == "sleep":
                    time.sleep(step[1])
                if kind == "body" and len(step) > 2:  # ("body", text, seconds): after a wait
                    time.sleep(step[2])
                if kind == "status":
                    self.send_response(step[1])
                    for name, value in (step[2] if len(step) > 2 else {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    return
                if kind == "raw":  # ("raw", status, headers, body bytes): exactly that
                    self.send_response(step[1])
                    for name, value in {**step[2], "Content-Length": str(len(step[3]))}.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(step[3])
                    return
                if kind == "redirect":
                    self.send_response(302)
                    self.send_header("Location", self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if kind == "drip" and step[2:] == ("headers",):
                    self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                    for byte in b"X-Slow: " + b"a" * 100:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(step[1])
                    return
                if kind == "endless":
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    chunk = b"<feed>" * 10_000
                    for _ in range(100_000):  # bounded, for a client that never stops reading
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    return
                if kind == "gzip_bomb":
                    data, headers = gzip_zeros(step[1]), {"Content-Encoding": "gzip"}
                else:
                    headers = {}
                    body = (step[1] if kind == "body" else
                            feed_for(ids, summary=step[1]) if kind == "summary" else
                            feed_for(ids[:1], total=len(ids)) if kind == "ignore_start" else
                            feed_for(ids))
                    data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/atom+xml")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if kind != "drip":
                    self.wfile.write(data)
                    return
                for byte in data:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(step[1])

        self.serve(Handler)

    @property
    def url(self) -> str:
        return f"{self.origin}/api/query"

