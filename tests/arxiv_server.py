"""A local stand-in for the arXiv API: serves recorded Atom responses, with
scripted faults, so that tests drive the real `arxiv.Client` over HTTP."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

FIXTURES = Path(__file__).resolve().parent / "fixtures"
RECORDED = (FIXTURES / "arxiv-lora-qlora.xml").read_text()
EMPTY_FEED = RECORDED.split("  <entry>")[0].replace(
    "<opensearch:totalResults>2<", "<opensearch:totalResults>0<") + "</feed>\n"


def feed_for(ids: list[str]) -> str:
    """The recorded feed reduced to the requested ids (as arXiv drops unknown ones)."""
    head, *entries = RECORDED.split("  <entry>")
    kept = [e for e in entries if any(f"/abs/{i}v" in e for i in ids)]
    body = "".join("  <entry>" + e for e in kept)
    if not body.rstrip().endswith("</feed>"):
        body += "</feed>\n"
    head = head.replace("<opensearch:totalResults>2<", f"<opensearch:totalResults>{len(kept)}<")
    return head + body


class ArxivStub:
    """Answers each request with the next scripted step, then with the recorded feed.

    A step is ("ok",), ("status", code[, headers]), ("sleep", seconds), ("reset",),
    ("body", text)."""

    def __init__(self):
        self.script: list[tuple] = []
        self.requests: list[dict[str, list[str]]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                query = parse_qs(urlparse(self.path).query)
                stub.requests.append(query)
                ids = [i for i in query.get("id_list", [""])[0].split(",") if i]
                step = stub.script.pop(0) if stub.script else ("ok",)
                if step[0] == "reset":
                    self.connection.shutdown(2)
                    return
                if step[0] == "sleep":
                    time.sleep(step[1])
                if step[0] == "status":
                    self.send_response(step[1])
                    for name, value in (step[2] if len(step) > 2 else {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    return
                body = step[1] if step[0] == "body" else feed_for(ids)
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/atom+xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/query"

    def __enter__(self) -> ArxivStub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
