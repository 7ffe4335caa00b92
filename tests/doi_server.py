"""A local stand-in for OpenAlex and Crossref: serves recorded JSON works (tests/fixtures/doi/)
by DOI, with scripted faults, so that tests drive the real DOI client over HTTP on 127.0.0.1.

OpenAlex answers under /openalex (`/openalex/works/doi:<doi>`), Crossref under /crossref
(`/crossref/works/<doi>`); a DOI with no recorded work is a 404, as both services answer."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from .stub_server import LocalServer, QuietHandler

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "doi"
SERVICES = ("openalex", "crossref")


def recorded() -> dict[str, dict[str, bytes]]:
    """The recorded works by service, then by lower-case DOI."""
    works: dict[str, dict[str, bytes]] = {service: {} for service in SERVICES}
    for path in sorted(FIXTURES.glob("*.json")):
        service = path.name.split("-")[0]
        data = json.loads(path.read_text())
        doi = data["doi"].split("doi.org/")[1] if service == "openalex" else data["message"]["DOI"]
        works[service][doi.lower()] = path.read_bytes()
    return works


class DoiStub(LocalServer):
    """Answers each request to a service with the next step of `script[service]`, then with the
    recorded work (or a 404).

    Steps: ("status", code[, headers]), ("redirect",): a redirect to the same URL,
    ("sleep", seconds): wait, then answer as recorded, ("body", bytes): a 200 with that body,
    ("drip", seconds): the recorded body one byte every `seconds`, ("big", size): a 200 body of
    `size` bytes of JSON-looking text."""

    def __init__(self):
        self.works = recorded()
        self.script: dict[str, list[tuple]] = {service: [] for service in SERVICES}
        self.requests: list[tuple[str, str, dict[str, list[str]], str]] = []
        stub = self

        class Handler(QuietHandler):
            content_type = "application/json"

            def do_GET(self):
                parsed = urlparse(self.path)
                service, _, rest = parsed.path.lstrip("/").partition("/")
                rest = unquote(rest)
                doi = rest.split("works/", 1)[-1]
                if service == "openalex":
                    doi = doi.removeprefix("doi:")
                stub.requests.append((service, doi, parse_qs(parsed.query),
                                      self.headers.get("User-Agent", "")))
                script = stub.script.get(service, [])
                step = script.pop(0) if script else ("ok",)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.answer(step, stub.works.get(service, {}).get(doi.lower()))

            def answer(self, step: tuple, work: bytes | None) -> None:
                kind = step[0]
                if kind == "sleep":
                    time.sleep(step[1])
                if kind == "status":
                    self.send(step[1], b"", step[2] if len(step) > 2 else {})
                    return
                if kind == "redirect":
                    self.send(302, b"", {"Location": self.path})
                    return
                if kind == "body":
                    self.send(200, step[1])
                    return
                if kind == "big":
                    self.send(200, b'{"title": "' + b"a" * step[1] + b'"}')
                    return
                if work is None:
                    self.send(404, b"Resource not found.", {"Content-Type": "text/plain"})
                    return
                if kind == "drip":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(work)))
                    self.end_headers()
                    for byte in work:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(step[1])
                    return
                self.send(200, work)

        self.serve(Handler)

    def url(self, service: str) -> str:
        return f"{self.origin}/{service}"

    def asked(self, service: str) -> list[str]:
        """The DOIs asked of `service`, in order."""
        return [doi for name, doi, _, _ in self.requests if name == service]

