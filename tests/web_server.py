"""A local stand-in for blogs and the GitHub API: serves recorded pages and READMEs
(tests/fixtures/web/) on 127.0.0.1, with hostile answers, so that tests drive the real web
client over HTTP.

Pages: /<site>/<path> answers the page recorded for it in `pages` (a fixture file name), as
text/html; the GitHub API answers under /github (`/github/repos/OWNER/REPO/readme`) with
`readme-OWNER--REPO.md`. Hostile addresses: /loop redirects to itself, /to-file redirects to a
file: address, /huge is 50 MB (made as it is sent, never held), /huge-declared declares its
50 MB in Content-Length, /drip sends a byte every 0.05 s, /paper.pdf is a PDF,
/latin1-header is ISO-8859-1 declared in the header only. Anything else is a 404."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from .stub_server import LocalServer, QuietHandler

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "web"
HUGE = 50 * 1024 * 1024
_CHUNK = b"<p>" + b"filler words " * 5000 + b"</p>\n"

PAGES = {
    "/blog/attention": "lilianweng-attention.html",
    "/lilianweng.github.io/posts/2018-06-24-attention/": "lilianweng-attention.html",
    "/huggingface.co/blog/rlhf": "huggingface-rlhf.html",
    "/latin1-meta": "latin1.html",
}


class WebStub(LocalServer):
    """Serves the recorded pages; `requests` lists the paths asked, in order."""

    def __init__(self):
        self.requests: list[str] = []
        self.pages = dict(PAGES)
        self.sent_bytes = 0
        stub = self

        class Handler(QuietHandler):
            def do_GET(self):
                stub.requests.append(self.path)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.answer(self.path.split("?")[0])

            def answer(self, path: str) -> None:
                if path == "/loop":
                    self.send(302, b"", {"Location": "/loop"})
                elif path == "/to-file":
                    self.send(302, b"", {"Location": "file:///etc/passwd"})
                elif path == "/paper.pdf":
                    self.send(200, b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n", {"Content-Type": "application/pdf"})
                elif path == "/latin1-header":
                    body = (FIXTURES / "latin1.html").read_bytes().replace(b"charset=ISO-8859-1", b"")
                    self.send(200, body, {"Content-Type": "text/html; charset=ISO-8859-1"})
                elif path == "/drip":
                    self.drip()
                elif path in ("/huge", "/huge-declared"):
                    self.huge(declared=path == "/huge-declared")
                elif path.startswith("/github/repos/") and path.endswith("/readme"):
                    owner, repo = path.split("/")[3:5]
                    readme = FIXTURES / f"readme-{owner}--{repo}.md"
                    if readme.is_file() and self.headers.get("Accept") == "application/vnd.github.raw":
                        self.send(200, readme.read_bytes(), {"Content-Type": "application/vnd.github.raw"})
                    else:
                        self.send(404, b'{"message": "Not Found"}', {"Content-Type": "application/json"})
                elif path in stub.pages:
                    self.send(200, (FIXTURES / stub.pages[path]).read_bytes())
                else:
                    self.send(404, b"<html><body>Not found</body></html>")

            def huge(self, declared: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                if declared:
                    self.send_header("Content-Length", str(HUGE))
                self.end_headers()
                sent = 0
                while sent < HUGE:
                    self.wfile.write(_CHUNK)
                    sent += len(_CHUNK)
                    stub.sent_bytes += len(_CHUNK)

            def drip(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                for _ in range(400):  # one byte every 0.05 s: 20 s in all, unless the client leaves
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.05)

        self.serve(Handler)

    @property
    def url(self) -> str:
        return self.origin

    @property
    def github(self) -> str:
        return f"{self.url}/github"

