"""`paperscope serve`: the web page and the JSON API (/api/v1/...) over one resident library.

Read-only: only GET (and HEAD) routes exist; ids are looked up in the catalogue, and the two
static files are fixed routes, so no request can name a file. paperscope's typed errors become
HTTP statuses here (usage 400, unknown entry 404, a missing or damaged index 503) with a JSON
body {"error": {"type", "message", "hint"}}; every response carries a Content-Security-Policy.
"""

from __future__ import annotations

import functools
import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import render
from ..collection import Filters
from ..errors import (
    CatalogueError,
    IndexCorruptError,
    IndexMismatchError,
    IndexMissingError,
    ModelUnavailableError,
    PaperscopeError,
    UnknownEntryError,
    UsageError,
)
from ..ingest import entry_json as as_json
from ..records import KINDS
from ..search import MODES
from ..version import __version__
from .resident import MAX_K, MAX_QUERY_CHARS, Generation, Resident, input_problems

HERE = Path(__file__).resolve().parent
API = "/api/v1"
# Pages and scripts come from this server only; no inline script, no plugins, no framing.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
# /docs is Swagger UI, served from here (the fastapi-offline package's copy, so it works
# offline): its scripts are ours too; it styles its elements inline, on this page only.
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'")
STATUS = [(UsageError, 400, "usage"), (UnknownEntryError, 404, "unknown_entry"),
          (IndexMissingError, 503, "index_missing"), (IndexCorruptError, 503, "index_corrupt"),
          (IndexMismatchError, 503, "index_mismatch"), (ModelUnavailableError, 503, "model_unavailable"),
          (CatalogueError, 503, "catalogue")]
STATIC = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8",
          "docs.js": "text/javascript; charset=utf-8"}
SWAGGER_UI = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8",
              "swagger-ui.css": "text/css; charset=utf-8"}

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
Mode = Literal["hybrid", "dense", "lexical"]
Kind = Literal["paper", "blog", "repo"]
assert set(MODES) == set(get_args(Mode)) and set(KINDS) == set(get_args(Kind))

QueryText = Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS,
                                 description="A question or keywords.")]
K = Annotated[int, Query(ge=1, le=MAX_K, description="How many results.")]
MinScore = Annotated[float, Query(ge=0.0, le=1.0, description="Only hits scoring this or more "
                                  "(the score is calibrated: about the chance the hit is relevant).")]
Sections = Annotated[list[str] | None, Query(description="Only these sections (repeatable).")]
Kinds = Annotated[list[Kind] | None, Query(description="Only these kinds (repeatable).")]
Tags = Annotated[list[str] | None, Query(description="Only entries with any of these tags.")]
Year = Annotated[int | None, Query(ge=0, le=9999)]
CorpusName = Annotated[str | None, Query(max_length=64, description="Search this corpus (see "
                                         "`paperscope corpus list`) instead of the catalogue.")]
Since = Annotated[str | None, Query(max_length=10, description="Only papers first posted on or "
                                    "after this day (YYYY, YYYY-MM or YYYY-MM-DD).")]
New = Annotated[bool, Query(description="Only papers first posted since the corpus's last update.")]
Limit = Annotated[int, Query(ge=1, le=MAX_K, description="How many papers.")]
Entries = Annotated[list[str] | None, Query(description="Papers near these entries (repeatable; "
                                            "default: the whole catalogue).")]


def error_body(kind: str, message: str, hint: str | None = None) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message, "hint": hint}}


def _status(err: PaperscopeError) -> tuple[int, str]:
    for cls, status, kind in STATUS:
        if isinstance(err, cls):
            return status, kind
    return 500, "error"


def _filters(section, kind, year_from, year_to, tag) -> Filters:
    return Filters(sections=tuple(section or ()), kinds=tuple(kind or ()), year_from=year_from,
                   year_to=year_to, tags=tuple(tag or ()))


def hit_json(generation: Generation, hit, query: str) -> dict[str, Any]:
    """A hit with the fields of `search --json`, plus its tags and where the snippet matches."""
    data = render.hit_json(hit)
    tags = hit.document.meta.get("tags")
    if tags:
        data["tags"] = list(tags)
    data["highlight"] = [list(span) for span in generation.highlight(data["snippet"], query)]
    return data


def marked(text: str, spans: list[tuple[int, int]]) -> Markup:
    """`text` escaped, with the given spans wrapped in <mark>."""
    out, at = [], 0
    for start, end in spans:
        out.append(escape(text[at:start]))
        out.append(Markup("<mark>") + escape(text[start:end]) + Markup("</mark>"))
        at = end
    out.append(escape(text[at:]))
    return Markup("").join(out)


def safe_url(url: str | None) -> str:
    """A link for href: http(s) only (a `javascript:` one would run on click)."""
    return url if url and re.match(r"(?i)https?://", url) else "#"


class Guard:
    """Pure ASGI middleware (cheaper than @app.middleware): refuses other Hosts and methods
    other than GET/HEAD, and adds the security headers to every response."""

    def __init__(self, app, hosts: set[str] | None):
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        docs = scope["path"] == "/docs"
        extra = [(b"content-security-policy", (DOCS_CSP if docs else CSP).encode()),
                 (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                 (b"x-frame-options", b"DENY")]
        if self.hosts is not None:
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "").lower()
            name = host if host.endswith("]") else host.rsplit(":", 1)[0]
            if name not in self.hosts:
                return await self._refuse(send, extra, 400, error_body(
                    "bad_host", f"Host {host!r} is not served here."))
        if scope["method"] not in ("GET", "HEAD"):
            return await self._refuse(send, [*extra, (b"allow", b"GET, HEAD")], 405,
                                      error_body("read_only", "This server is read-only."))

        head = scope["method"] == "HEAD"  # answered as GET, without the body

        async def send_secured(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [h for h in extra if h[0] not in names]
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"} if head else scope, receive, send_secured)

    @staticmethod
    async def _refuse(send, headers, status, body) -> None:
        data = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-type", b"application/json"),
                                (b"content-length", str(len(data)).encode()),
                                (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": data})


def create_app(resident: Resident, *, allowed_hosts: list[str] | None = None) -> FastAPI:
    """The ASGI app. `allowed_hosts` (None: any) guards a loopback server against DNS
    rebinding: a page elsewhere cannot reach it through a name that resolves to 127.0.0.1."""
    app = FastAPI(title="paperscope", version=__version__,
                  description="Semantic search over a curated reading list: the JSON API of "
                  "`paperscope serve`. Every route is read-only; errors have the body "
                  '`{"error": {"type", "message", "hint"}}`.',
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    import jinja2

    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                                     autoescape=True)  # every value escaped, whatever the name
    templates = Jinja2Templates(env=environment)
    templates.env.filters["marked"] = marked
    templates.env.filters["safe_url"] = safe_url
    static = {name: (HERE / "static" / name).read_bytes() for name in STATIC}
    hosts = {h.lower() for h in allowed_hosts} if allowed_hosts else None

    app.add_middleware(Guard, hosts=hosts)

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith(API + "/") or request.url.path == "/openapi.json"

    @app.exception_handler(PaperscopeError)
    async def paperscope_error(request: Request, err: PaperscopeError):
        status, kind = _status(err)
        if not wants_json(request):
            return page(request, "error.html", {"status": status, "message": err.message,
                                                "hint": err.hint}, status=status)
        return JSONResponse(error_body(kind, err.message, err.hint), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError):
        message = input_problems(err.errors())
        if not wants_json(request):
            return page(request, "error.html", {"status": 400, "message": message, "hint": None}, status=400)
        return JSONResponse(error_body("usage", message), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException):
        message = "Not found." if err.status_code == 404 else str(err.detail)
        if not wants_json(request):
            return page(request, "error.html", {"status": err.status_code, "message": message,
                                                "hint": None}, status=err.status_code)
        return JSONResponse(error_body("http", message), status_code=err.status_code)

    def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
        try:
            sections = resident.current().catalogue.sections
        except PaperscopeError:
            sections = []
        return templates.TemplateResponse(request, name, {"all_sections": sections, "kinds": KINDS,
                                                          "corpora": resident.corpus_names(),
                                                          "version": __version__, **context},
                                          status_code=status)

    # -- the JSON API ---------------------------------------------------------------

    @app.get(f"{API}/search", tags=["api"], summary="Rank the entries for a question")
    def api_search(q: QueryText, k: K = 10, mode: Mode = "hybrid", section: Sections = None,
                   kind: Kinds = None, year_from: Year = None, year_to: Year = None,
                   tag: Tags = None, min_score: MinScore = 0.0, corpus: CorpusName = None) -> JSONResponse:
        """The `k` entries (with `corpus`: the corpus's papers) that best answer `q`: each hit
        has the fields of `paperscope search --json`, its `tags`, and `highlight`: [start, end)
        code-point spans of the snippet's words that match the query."""
        generation = resident.current()
        searched = resident.corpus(corpus) if corpus else generation
        outcome = searched.search(q, k=k, mode=mode, filters=_filters(section, kind, year_from, year_to, tag),
                                  min_score=min_score)
        return JSONResponse({"query": q, "k": k, "mode": mode, "corpus": corpus,  # plain JSON types
                             "hits": [hit_json(generation, h, q) for h in outcome.hits],
                             "notices": outcome.notices, "index": searched.describe()})

    @app.get(f"{API}/related/{{entry_id}}", tags=["api"], summary="The entries closest to one entry")
    def api_related(entry_id: str, k: K = 5, mode: Mode = "hybrid", section: Sections = None,
                    kind: Kinds = None, year_from: Year = None, year_to: Year = None,
                    tag: Tags = None, min_score: MinScore = 0.0, corpus: CorpusName = None) -> JSONResponse:
        """As `paperscope related ID --json`, with `shared_terms` on each hit; with `corpus`,
        the corpus's papers closest to one of its papers (ID: its arXiv id)."""
        generation = resident.current()
        filters = _filters(section, kind, year_from, year_to, tag)
        if corpus:
            view = resident.corpus(corpus)
            outcome = view.related(entry_id, k=k, mode=mode, filters=filters, min_score=min_score)
            return JSONResponse({"id": entry_id, "k": k, "mode": mode, "corpus": view.name,
                                 "hits": [hit_json(generation, h, "") for h in outcome.hits],
                                 "notices": outcome.notices, "index": view.describe()})
        entry = generation.entry(entry_id)
        outcome = generation.related(entry.id, k=k, mode=mode, filters=filters, min_score=min_score)
        return JSONResponse({"id": entry.id, "k": k, "mode": mode, "corpus": None,
                             "hits": [hit_json(generation, h, "") for h in outcome.hits],
                             "notices": outcome.notices, "index": generation.describe()})

    @app.get(f"{API}/discover", tags=["api"], summary="Papers of a corpus near the reading list")
    def api_discover(corpus: Annotated[str, Query(min_length=1, max_length=64,
                                                  description="The corpus to look in.")],
                     since: Since = None, new: New = False, limit: Limit = 20,
                     entry: Entries = None) -> dict[str, Any]:
        """As `paperscope discover --json`: the corpus's papers closest to the catalogue's
        entries and not in it, each with the entries it is near (`closest`) and the words they
        share; with `since` or `new`, only papers first posted since then."""
        found, day = resident.discover(corpus, since=since, new=new, k=limit, entries=entry or ())
        return {"corpus": corpus, "since": day, "papers": [d.to_json() for d in found]}

    @app.get(f"{API}/corpora", tags=["api"], summary="The corpora served besides the catalogue")
    def api_corpora() -> dict[str, Any]:
        return {"corpora": resident.corpus_names()}

    @app.get(f"{API}/entries", tags=["api"], summary="The catalogue's entries")
    def api_entries(section: Annotated[str | None, Query(max_length=200)] = None,
                    tag: Tags = None) -> dict[str, Any]:
        """As `paperscope list --json`: every entry (of one section, with any of the tags)."""
        generation = resident.current()
        return {"sections": generation.catalogue.sections,
                "entries": generation.entries_json(section=section, tags=tag or ())}

    @app.get(f"{API}/entries/{{entry_id}}", tags=["api"], summary="One entry")
    def api_entry(entry_id: str) -> dict[str, Any]:
        """As `paperscope show ID --json` (an arXiv id works too)."""
        return resident.current().entry_json(entry_id)

    @app.get(f"{API}/cite/{{entry_id}}", tags=["api"], summary="BibTeX for one entry")
    def api_cite(entry_id: str) -> dict[str, Any]:
        """The entry's BibTeX as `paperscope cite ID` prints it, with its stable key."""
        entry, key, text = resident.current().bibtex(entry_id)
        return {"id": entry.id, "key": key, "bibtex": text}

    @app.get(f"{API}/status", tags=["api"], summary="Which index is being served")
    def api_status() -> dict[str, Any]:
        generation = resident.current()
        return {"library": str(resident.root), "entries": len(generation.catalogue.entries),
                "index": generation.describe(), "notices": generation.notices,
                "problem": generation.problem.message if generation.problem else None}

    # -- pages ----------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request, q: Annotated[str, Query(max_length=MAX_QUERY_CHARS)] = "",
             section: Annotated[str, Query(max_length=200)] = "", kind: str = "",
             year_from: Year = None, year_to: Year = None,
             corpus: Annotated[str, Query(max_length=64)] = ""):
        generation = resident.current()
        searched = resident.corpus(corpus) if corpus else generation
        hits, notices = [], []
        if kind and kind not in KINDS:
            raise UsageError(f"Unknown kind {kind!r}: choose one of {', '.join(KINDS)}.")
        if q.strip():
            outcome = searched.search(q, k=10, filters=_filters([section] if section else None,
                                                                [kind] if kind else None,
                                                                year_from, year_to, None))
            hits = [hit_json(generation, h, q) for h in outcome.hits]
            notices = outcome.notices
        listed = not q.strip() and not corpus
        return page(request, "search.html", {
            "q": q, "section": section, "kind": kind, "year_from": year_from, "year_to": year_to,
            "corpus": corpus, "hits": hits, "notices": notices,
            "sections": _grouped(generation) if listed else [],
            "count": searched.describe()["count"] if corpus else len(generation.catalogue.entries)})

    @app.get("/new", response_class=HTMLResponse, include_in_schema=False)
    def new_page(request: Request, corpus: Annotated[str, Query(max_length=64)] = "",
                 since: Annotated[str, Query(max_length=10)] = "", new: bool = False, limit: Limit = 20):
        """New near my list: discovery in a corpus since a day, or since its last update."""
        names = resident.corpus_names()
        corpus = corpus or (names[0] if names else "")
        papers, day = [], None
        if corpus:
            found, day = resident.discover(corpus, since=since or None, new=new and not since, k=limit)
            papers = [d.to_json() for d in found]
        return page(request, "new.html", {"corpus": corpus, "since": since, "new": new and not since,
                                          "day": day, "papers": papers})

    @app.get("/entries/{entry_id}", response_class=HTMLResponse, include_in_schema=False)
    def entry_page(request: Request, entry_id: str):
        generation = resident.current()
        entry = generation.entry(entry_id)
        if entry.id != entry_id:  # an arXiv id: the page's address is the entry id
            return RedirectResponse(f"/entries/{entry.id}", status_code=307)
        data = entry_json(generation, entry)
        _, key, bibtex = generation.bibtex(entry.id)
        related, note = [], None
        try:
            related = [hit_json(generation, h, "") for h in generation.related(entry.id, k=5).hits]
        except PaperscopeError as err:
            note = err.message
        return page(request, "entry.html", {"entry": data, "key": key, "bibtex": bibtex,
                                            "related": related, "related_note": note})

    @app.get("/browse", response_class=HTMLResponse, include_in_schema=False)
    def browse(request: Request, section: Annotated[str, Query(max_length=200)] = ""):
        generation = resident.current()
        groups = _grouped(generation)
        if section:
            wanted = generation.catalogue.section_named(section)
            if wanted is None:
                raise UsageError(f"No section {section!r}.")
            groups = [g for g in groups if g["name"] == wanted]
        return page(request, "browse.html", {"groups": groups, "section": section})

    @app.get(f"{API}/map", tags=["api"], summary="Every entry placed in 2-D by similarity")
    def api_map() -> dict[str, Any]:
        """The first two principal components of the document vectors, scaled to [0, 1]."""
        generation = resident.current()
        return {"points": generation.map_points(), "index": generation.describe()}

    @app.get("/map", response_class=HTMLResponse, include_in_schema=False)
    def map_page(request: Request, q: Annotated[str, Query(max_length=MAX_QUERY_CHARS)] = ""):
        generation = resident.current()
        points = generation.map_points()
        hits = []
        if q.strip():
            hits = [render.hit_json(h) for h in generation.search(q, k=5).hits]
        top = {hit["id"]: hit["rank"] for hit in hits}
        points = sorted(points, key=lambda p: p["id"] in top)  # the hits drawn last, on top
        colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(generation.catalogue.sections)}
        return page(request, "map.html", {"points": points, "top": top, "hits": hits, "q": q,
                                          "colours": colours})

    @app.get("/static/{name}", include_in_schema=False)
    def static_file(name: str):
        if name not in static:
            raise StarletteHTTPException(404)
        return Response(static[name], media_type=STATIC[name],
                        headers={"Cache-Control": "public, max-age=300"})

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs(request: Request):
        return templates.TemplateResponse(request, "docs.html", {})

    @app.get("/static/docs/{name}", include_in_schema=False)
    def swagger_ui(name: str):
        if name not in SWAGGER_UI:
            raise StarletteHTTPException(404)
        return Response(_swagger_ui_file(name), media_type=SWAGGER_UI[name],
                        headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return Response(status_code=204)

    return app


@functools.cache
def _swagger_ui_file(name: str) -> bytes:
    """One of Swagger UI's two files, from the fastapi-offline package (read once)."""
    return (files("fastapi_offline") / "static" / name).read_bytes()


def entry_json(generation: Generation, entry) -> dict[str, Any]:
    return as_json(entry, generation.record(entry))


def _grouped(generation: Generation) -> list[dict[str, Any]]:
    """The catalogue's entries, section by section, as the page lists them."""
    groups: dict[str, list] = {name: [] for name in generation.catalogue.sections}
    for entry in generation.catalogue.entries:
        groups.setdefault(entry.section, []).append(entry_json(generation, entry))
    return [{"name": name, "slug": _slug(name), "entries": entries} for name, entries in groups.items()]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
