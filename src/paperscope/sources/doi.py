"""Papers by DOI: title, authors, year, venue and abstract from OpenAlex, with Crossref as the
fallback where OpenAlex has no abstract (or no record).

OpenAlex (`GET /works/doi:<doi>`) gives the abstract as an inverted index (each word with its
positions), which is put back in order; Crossref (`GET /works/<doi>`) gives it as JATS XML,
whose tags are stripped. Neither needs a key; both ask for a contact address for their
"polite pool", sent as `mailto` (and in the User-Agent) when `PAPERSCOPE_MAILTO` or `mailto`
gives one. The endpoints can be changed with `PAPERSCOPE_OPENALEX_URL` and
`PAPERSCOPE_CROSSREF_URL` (a mirror, a test server).

Every request is bounded as the arXiv client's are (http.py: a deadline for the whole
exchange, size caps, a redirect limit), requests to one service are spaced by `delay_seconds`,
transient failures (429, 5xx, time-outs, an unreadable answer) are retried with bounded backoff
that honours Retry-After, each retry announced through `on_retry`. What fails is reported per
DOI, never raised; when neither service can be reached, nothing more is asked.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from typing import Any
from urllib.parse import quote

from ..records import MAX_AUTHORS, MAX_NAME_CHARS, MAX_TITLE_CHARS, PaperRecord
from ..version import __version__
from . import clean_text, utc_now
from .base import Deleted, FetchResult, no_dates, not_a_dump
from .http import (
    Limits,
    PermanentError,
    TransientError,
    UnreachableError,
    bounded_get,
    new_session,
    retried,
)
from .ids import parse_doi

OPENALEX_URL = "https://api.openalex.org"
CROSSREF_URL = "https://api.crossref.org"
OPENALEX_URL_ENV = "PAPERSCOPE_OPENALEX_URL"
CROSSREF_URL_ENV = "PAPERSCOPE_CROSSREF_URL"
MAILTO_ENV = "PAPERSCOPE_MAILTO"
MAX_ABSTRACT_CHARS = 20_000
MAX_ABSTRACT_WORDS = 10_000  # positions of an inverted index beyond this are not an abstract
_OPENALEX_FIELDS = "id,doi,title,display_name,publication_year,authorships,primary_location," \
                   "abstract_inverted_index"
_BLOCK_TAGS = re.compile(r"</?(?:jats:)?(?:p|sec|title|list|list-item|break|label)\b[^>]{0,500}>", re.I)
_ANY_TAG = re.compile(r"<[^<>]{0,500}>")
_ABSTRACT_HEADING = re.compile(r"^\s*<(?:jats:)?title>\s*abstract\s*</(?:jats:)?title>", re.I)
log = logging.getLogger(__name__)


class DoiSource:
    """Fetches records by DOI from OpenAlex, then Crossref for what OpenAlex lacks (a
    PaperSource: fetch only). Records are keyed `doi:<doi>` (ids.record_key)."""

    scheme = "doi"
    label = "OpenAlex and Crossref"

    def __init__(self, openalex_url: str | None = None, crossref_url: str | None = None,
                 mailto: str | None = None, batch_size: int = 25, delay_seconds: float = 0.2,
                 max_retries: int = 3, timeout: float = 15.0, connect_timeout: float = 5.0,
                 deadline: float = 30.0, max_bytes: int = 5_000_000, max_redirects: int = 5,
                 backoff_seconds: float = 2.0, max_backoff_seconds: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep,
                 on_retry: Callable[[str, float], None] | None = None):
        self.openalex_url = (openalex_url or os.environ.get(OPENALEX_URL_ENV) or OPENALEX_URL).rstrip("/")
        self.crossref_url = (crossref_url or os.environ.get(CROSSREF_URL_ENV) or CROSSREF_URL).rstrip("/")
        self.mailto = mailto if mailto is not None else os.environ.get(MAILTO_ENV) or None
        self.batch_size = batch_size
        self.delay_seconds = delay_seconds
        self.max_retries = max_retries
        self.limits = Limits(deadline=deadline, timeout=timeout, connect_timeout=connect_timeout,
                             max_bytes=max_bytes, max_redirects=max_redirects)
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.on_retry = on_retry
        self._sleep = sleep
        agent = f"paperscope/{__version__}" + (f" (mailto:{self.mailto})" if self.mailto else "")
        self._session = new_session(agent)
        self._last_request: dict[str, float] = {}
        self._unreachable: dict[str, str] = {}  # service -> why, for the rest of this source's life

    def fetch(self, ids: Sequence[str], progress: Callable[[int], None] | None = None) -> FetchResult:
        """The record of each DOI (as given, keyed so); a failure's reason per DOI otherwise."""
        result = FetchResult()
        for asked in ids:
            if result.unreachable:
                result.failures[asked] = result.unreachable
            else:
                got = self._fetch_one(asked)
                if isinstance(got, PaperRecord):
                    result.records[asked] = got
                else:
                    result.failures[asked] = got
                if len(self._unreachable) == 2:
                    result.unreachable = "; ".join(self._unreachable.values())
            if progress:
                progress(1)
        return result

    def work(self, ids: Sequence[str]) -> tuple[int, str]:
        return len(ids), "papers"

    def changed_since(self, since: date, *, until: date | None = None,
                      categories: Sequence[str] = ()) -> Iterator[PaperRecord | Deleted]:
        return no_dates(self)

    def records(self) -> Iterator[PaperRecord]:
        return not_a_dump(self)

    def _fetch_one(self, asked: str) -> PaperRecord | str:
        """The record of one DOI, or why there is none."""
        doi = parse_doi(asked)
        if doi is None:
            return f"{asked!r} is not a DOI"
        found: dict[str, Any] = {}
        why: dict[str, str] = {}
        for service, ask, parse in (("OpenAlex", self._ask_openalex, _openalex_fields),
                                    ("Crossref", self._ask_crossref, _crossref_fields)):
            try:
                fields = parse(ask(doi))
            except PermanentError as err:
                why[service] = "no record" if err.status == 404 else str(err)
                continue
            except (TransientError, UnreachableError) as err:
                why[service] = str(err)
                continue
            for name, value in fields.items():
                if value and not found.get(name):
                    found[name] = value
            if not fields.get("abstract"):
                why[service] = "no abstract"
            found.setdefault("sources", []).append(service.lower())
            if found.get("abstract") and found.get("title"):
                break
        if not found.get("title") or not found.get("abstract"):
            if why.get("OpenAlex") == why.get("Crossref") == "no record":
                return "no record of this DOI in OpenAlex or Crossref"
            missing = "a title" if found.get("abstract") else "an abstract"
            return f"no record with {missing} (" + "; ".join(f"{s}: {w}" for s, w in why.items()) + ")"
        return PaperRecord(
            arxiv_id=f"doi:{asked}", title=found["title"], abstract=found["abstract"],
            authors=found.get("authors") or (), year=found.get("year"), categories=(),
            primary_category=None, source="+".join(found["sources"]), fetched_at=utc_now(),
            doi=doi, journal_ref=found.get("venue") or None)

    def _ask_openalex(self, doi: str) -> bytes:
        params = {"select": _OPENALEX_FIELDS, **({"mailto": self.mailto} if self.mailto else {})}
        return self._ask("OpenAlex", f"{self.openalex_url}/works/doi:{_quote(doi)}", params)

    def _ask_crossref(self, doi: str) -> bytes:
        params = {"mailto": self.mailto} if self.mailto else None
        return self._ask("Crossref", f"{self.crossref_url}/works/{_quote(doi)}", params)

    def _ask(self, service: str, url: str, params: dict | None) -> Any:
        """The JSON of one request to `service`, retried while the failure is transient; the
        last error once the tries are spent. A service found unreachable is not asked again."""
        if service in self._unreachable:
            raise UnreachableError(self._unreachable[service])

        def once() -> Any:
            wait = self._last_request.get(service, float("-inf")) + self.delay_seconds - time.monotonic()
            if wait > 0:
                self._sleep(wait)
            self._last_request[service] = time.monotonic()
            log.info("asking %s: %s", service, url)
            try:
                return _json(service, bounded_get(self._session, service, url, params, self.limits))
            except UnreachableError as err:
                self._unreachable[service] = str(err)
                raise

        return retried(once, max_retries=self.max_retries, backoff_seconds=self.backoff_seconds,
                       max_backoff_seconds=self.max_backoff_seconds, sleep=self._sleep,
                       on_retry=self.on_retry)


def _quote(doi: str) -> str:
    return quote(doi, safe="/:;()")


def _json(service: str, body: bytes) -> Any:
    """The JSON document of a body; an unreadable one is transient (a page cut short)."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise TransientError(f"{service} sent an answer that is not JSON") from None


def _openalex_fields(work: Any) -> dict[str, Any]:
    """Title, authors, year, venue and abstract of an OpenAlex work (every value type-checked)."""
    if not isinstance(work, dict):
        raise PermanentError("OpenAlex sent an answer that is not a work")
    authors = []
    for authorship in _list(work.get("authorships")):
        author = authorship.get("author") if isinstance(authorship, dict) else None
        name = _str(author.get("display_name")) if isinstance(author, dict) else ""
        name = name or (_str(authorship.get("raw_author_name")) if isinstance(authorship, dict) else "")
        if name:
            authors.append(name[:MAX_NAME_CHARS])
    location = work.get("primary_location")
    venue_source = location.get("source") if isinstance(location, dict) else None
    venue = _str(venue_source.get("display_name")) if isinstance(venue_source, dict) else ""
    legacy = work.get("host_venue")
    if not venue and isinstance(legacy, dict):
        venue = _str(legacy.get("display_name"))
    return {"title": (_str(work.get("title")) or _str(work.get("display_name")))[:MAX_TITLE_CHARS],
            "authors": tuple(authors[:MAX_AUTHORS]), "year": _year(work.get("publication_year")),
            "venue": venue[:MAX_TITLE_CHARS],
            "abstract": _capped(abstract_from_inverted_index(work.get("abstract_inverted_index")))}


def _crossref_fields(document: Any) -> dict[str, Any]:
    """Title, authors, year, venue and abstract of a Crossref work (every value type-checked)."""
    work = document.get("message") if isinstance(document, dict) else None
    if not isinstance(work, dict):
        raise PermanentError("Crossref sent an answer that is not a work")
    authors = []
    for author in _list(work.get("author")):
        if isinstance(author, dict):
            name = " ".join(p for p in (_str(author.get("given")), _str(author.get("family"))) if p)
            name = name or _str(author.get("name"))
            if name:
                authors.append(name[:MAX_NAME_CHARS])
    year = None
    for key in ("issued", "published", "published-print", "published-online"):
        parts = work[key].get("date-parts") if isinstance(work.get(key), dict) else None
        first = parts[0] if isinstance(parts, list) and parts and isinstance(parts[0], list) else []
        if year is None and first:
            year = _year(first[0])
    abstract = work.get("abstract")
    return {"title": _first(work.get("title"))[:MAX_TITLE_CHARS], "authors": tuple(authors[:MAX_AUTHORS]),
            "year": year, "venue": _first(work.get("container-title"))[:MAX_TITLE_CHARS],
            "abstract": _capped(strip_jats(abstract) if isinstance(abstract, str) else "")}


def abstract_from_inverted_index(index: Any) -> str:
    """The text of an OpenAlex `abstract_inverted_index` ({word: [positions]}), words in the
    order of their positions; "" for none, or for one that is not well formed (a position that
    is no number, or beyond MAX_ABSTRACT_WORDS)."""
    if not isinstance(index, dict):
        return ""
    words: dict[int, str] = {}
    for word, positions in index.items():
        if not isinstance(word, str) or not isinstance(positions, list):
            return ""
        for position in positions:
            if (not isinstance(position, int) or isinstance(position, bool)
                    or not 0 <= position < MAX_ABSTRACT_WORDS):
                return ""
            words[position] = word
    return clean_text(" ".join(words[p] for p in sorted(words)))


def strip_jats(text: str) -> str:
    """The plain text of a Crossref JATS abstract: an "Abstract" heading dropped, paragraphs
    and headings apart, inline markup (italics, sub- and superscripts) removed, entities read."""
    text = _strip_heading(text)
    text = _ANY_TAG.sub("", _BLOCK_TAGS.sub(" ", text))
    return clean_text(html.unescape(text))


def _strip_heading(text: str) -> str:
    """`text` without a leading "Abstract" title (inside a leading <sec> or not)."""
    text = text.strip()
    text = re.sub(r"^<(?:jats:)?sec\b[^>]{0,500}>", "", text, flags=re.I).strip()
    return _ABSTRACT_HEADING.sub(" ", text)


def _capped(abstract: str) -> str:
    return "" if len(abstract) > MAX_ABSTRACT_CHARS else abstract


def _str(value: Any) -> str:
    return clean_text(value) if isinstance(value, str) else ""


def _first(value: Any) -> str:
    """The first text of a Crossref list field (`title`, `container-title`)."""
    if isinstance(value, list):
        return next((text for item in value if (text := _str(item))), "")
    return _str(value)


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _year(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and 1 < value < 3000 else None
