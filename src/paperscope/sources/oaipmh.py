"""Harvesting arXiv's metadata through OAI-PMH, its interface for keeping up.

`ListRecords` with `metadataPrefix=arXiv`, a `set` (a top-level archive: "cs", "math",
"physics:astro-ph") and `from`/`until` days returns pages of records joined by a
`resumptionToken`; a record arXiv withdrew has `status="deleted"` in its header and no metadata.
arXiv refreshes it daily, Sunday to Thursday, and asks for at most one request every 3 s, one
connection at a time, answering 503 with Retry-After when asked too often.

Why not oaipmh-scythe (the maintained successor of sickle): it reads each answer whole
through httpx, whose timeout bounds each connect and read but not the whole exchange (a server
that drips a byte a second never times out), caps no answer's size, sleeps on 503 inside the
library (neither injectable, so tests would sleep, nor reported to the caller), and parses
with lxml's default parser, which expands internal entities. Wrapping it would leave those
bounds to it; so this module asks through the arXiv client's bounded exchange instead
(arxiv_api.py: one session, one request at a time every `delay_seconds`, a deadline for the
whole exchange, a cap on the body before and after decompression, a redirect limit,
retries with bounded backoff that honour Retry-After and are announced through `on_retry`)
and parses the pages here with ElementTree after refusing any DOCTYPE.

Harvesting is bounded too: at most `max_pages` pages per set, and a resumptionToken that comes
back a second time (a list that never ends) is an error. A page that cannot be had after its
tries is a FetchError (a listing cut short has no id to report a failure under).
"""

from __future__ import annotations

import logging
import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone

from ..errors import FetchError
from ..records import MAX_AUTHORS, MAX_NAME_CHARS, MAX_TEXT_CHARS, MAX_TITLE_CHARS, PaperRecord
from . import clean_text, utc_now
from .arxiv_api import (
    ArxivApiSource,
    _PermanentError,
    _TransientError,
    _UnreachableError,
    checked_root,
)
from .base import Deleted, FetchResult, not_a_dump

ARXIV_OAI_URL = "https://oaipmh.arxiv.org/oai"
OAI_URL_ENV = "PAPERSCOPE_ARXIV_OAI"  # another endpoint with the same interface (a mirror, a test server)
_OAI = "{http://www.openarchives.org/OAI/2.0/}"
_ARXIV = "{http://arxiv.org/OAI/arXiv/}"
_ID_PREFIX = "oai:arXiv.org:"
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}")
# arXiv's physics archives are sets under "physics:"; every other archive is a set of its own name
PHYSICS_ARCHIVES = frozenset({"astro-ph", "cond-mat", "gr-qc", "hep-ex", "hep-lat", "hep-ph", "hep-th",
                              "math-ph", "nlin", "nucl-ex", "nucl-th", "physics", "quant-ph"})
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OaiRecord(PaperRecord):
    """A harvested record, with the days arXiv gives: `created` (the first version,
    YYYY-MM-DD) and `updated` (the last one, "" when there was only one)."""

    created: str = ""
    updated: str = ""


class BadResumptionTokenError(FetchError):
    """The server no longer accepts a resumptionToken (it expired): harvest again from the start."""


def archive_of(category: str) -> str:
    """The top-level archive of a category or archive: "cs.CL" -> "cs", "hep-th" -> "hep-th"."""
    return category.split(".")[0]


def oai_set(category: str) -> str:
    """The OAI set that holds a category's papers: "cs.CL" -> "cs", "astro-ph.GA" ->
    "physics:astro-ph" (filter locally for the category itself)."""
    archive = archive_of(category)
    return f"physics:{archive}" if archive in PHYSICS_ARCHIVES else archive


def in_categories(categories: Sequence[str], wanted: Sequence[str]) -> bool:
    """Whether a record of `categories` is in any of `wanted` (an archive such as "cs" or
    "astro-ph" matches its subcategories); True when nothing is wanted."""
    return not wanted or any(c == want or c.startswith((want + ".", want + "-"))
                             for c in categories for want in wanted)


class OaiPmhSource:
    """arXiv's OAI-PMH interface as a PaperSource: `changed_since` harvests, `fetch` asks
    GetRecord for each id; it holds no dump to read through.

    `delay_seconds` (3: arXiv's politeness interval), `sleep` (what waits, injectable so that
    tests do not sleep) and `on_retry(reason, delay_seconds)` (told before each backoff wait,
    Retry-After included) are those of the arXiv client, as are the bounds (`deadline` for the
    whole exchange, `max_bytes`, `max_retries`, ...: ArxivApiSource's keyword options)."""

    scheme = "arxiv"
    label = "arXiv's OAI-PMH interface"
    batch_size = 20

    def __init__(self, url: str | None = None, *, delay_seconds: float = 3.0,
                 deadline: float = 120.0, max_bytes: int = 50_000_000,
                 sleep: Callable[[float], None] = time.sleep,
                 on_retry: Callable[[str, float], None] | None = None,
                 max_pages: int = 10_000, **http_options):
        self.url = url or os.environ.get(OAI_URL_ENV) or ARXIV_OAI_URL
        self.max_pages = max_pages
        self.skipped = 0  # harvested records without title or abstract, passed over
        self.pages = 0  # pages read, over every harvest of this source
        self._http = ArxivApiSource(api_url=self.url, delay_seconds=delay_seconds, deadline=deadline,
                                    max_bytes=max_bytes, sleep=sleep, on_retry=on_retry, **http_options)

    def work(self, ids: Sequence[str]) -> tuple[int, str]:
        return len(ids), "papers"

    def records(self) -> Iterator[PaperRecord]:
        return not_a_dump(self)

    def fetch(self, ids: Sequence[str], progress: Callable[[int], None] | None = None) -> FetchResult:
        """Each id by GetRecord (one request each, every `delay_seconds`); an id arXiv does not
        hold is in neither `records` nor `failures`, a deleted one is a failure."""
        result = FetchResult()
        for arxiv_id in ids:
            if result.unreachable:
                result.failures[arxiv_id] = result.unreachable
            else:
                try:
                    items, _ = self._page({"verb": "GetRecord", "metadataPrefix": "arXiv",
                                           "identifier": _ID_PREFIX + arxiv_id})
                except _Unreachable as err:
                    result.unreachable = result.failures[arxiv_id] = str(err)
                except FetchError as err:
                    result.failures[arxiv_id] = err.message
                else:
                    for item in items:
                        if isinstance(item, Deleted):
                            result.failures[arxiv_id] = "arXiv deleted this record"
                        elif item.arxiv_id == arxiv_id:
                            result.records[arxiv_id] = item
            if progress:
                progress(1)
        return result

    def changed_since(self, since: date, *, until: date | None = None,
                      categories: Sequence[str] = ()) -> Iterator[PaperRecord | Deleted]:
        """The records arXiv added, changed or deleted from `since` to `until` (both days
        included; no end when None), as `OaiRecord`s and `Deleted`s, set after set (the sets of
        `categories`' archives; every record when none). Records outside `categories` are
        passed over here (deletions carry no categories and all come through); a record listed
        in two sets comes once."""
        sets: list[str | None] = [*dict.fromkeys(oai_set(c) for c in categories)] or [None]
        seen: set[str] = set()
        for set_spec in sets:
            for item in self.harvest(since, until=until, set_spec=set_spec):
                key = item.key if isinstance(item, Deleted) else item.arxiv_id
                if key in seen:
                    continue
                seen.add(key)
                if isinstance(item, Deleted) or in_categories(item.categories, categories):
                    yield item

    def harvest(self, since: date | None, *, until: date | None = None, set_spec: str | None = None,
                token: str | None = None) -> Iterator[OaiRecord | Deleted]:
        """Every record of one ListRecords harvest, page after page (from `token` when given:
        a resumptionToken of an earlier harvest). FetchError when a page cannot be had,
        BadResumptionTokenError when a token is refused."""
        if token:
            params: dict[str, str] = {"verb": "ListRecords", "resumptionToken": token}
        else:
            params = {"verb": "ListRecords", "metadataPrefix": "arXiv"}
            if set_spec:
                params["set"] = set_spec
            if since:
                params["from"] = since.isoformat()
            if until:
                params["until"] = until.isoformat()
        tokens: set[str] = set()
        for _ in range(self.max_pages):
            log.info("asking %s: %s", self.url, params)
            try:
                items, token = self._page(params)
            except _Unreachable as err:
                raise FetchError(f"Could not harvest arXiv's changes: {err}.", {}) from None
            self.pages += 1
            yield from items
            if not token:
                return
            if token in tokens:
                raise FetchError("Could not harvest arXiv's changes: the server sent the same "
                                 "resumptionToken twice (a list that never ends).", {})
            tokens.add(token)
            params = {"verb": "ListRecords", "resumptionToken": token}
        raise FetchError(f"Could not harvest arXiv's changes: more than {self.max_pages:,} pages "
                         "in one harvest.", {}, "Harvest a shorter range of days.")

    def _page(self, params: dict[str, str]) -> tuple[list[OaiRecord | Deleted], str | None]:
        """One page's items and its resumptionToken, retried as arXiv client retries a batch
        (HTTP 429/5xx, time-outs, unreadable pages); FetchError once the tries are spent or for
        an answer not worth another try, _Unreachable when arXiv cannot be reached at all."""
        http = self._http
        try:
            return http.retried(lambda: self._parse(http._ask(params)))
        except (_TransientError, _PermanentError) as err:  # a transient one: the tries are spent
            raise FetchError(f"Could not harvest arXiv's changes: {err}.", {}) from None
        except _UnreachableError as err:
            raise _Unreachable(str(err)) from None

    def _parse(self, body: bytes) -> tuple[list[OaiRecord | Deleted], str | None]:
        root = checked_root(body, f"{_OAI}OAI-PMH", "an OAI-PMH answer")
        error = root.find(f"{_OAI}error")
        if error is not None:
            code = error.get("code", "")
            if code in ("noRecordsMatch", "idDoesNotExist"):
                return [], None
            message = f"Could not harvest arXiv's changes: the server answered {code} ({_text(error)})."
            if code == "badResumptionToken":
                raise BadResumptionTokenError(message, {}, "Run it again: the harvest starts over.")
            raise FetchError(message, {})
        listing = root.find(f"{_OAI}ListRecords")
        if listing is None:
            listing = root.find(f"{_OAI}GetRecord")
        if listing is None:
            raise _TransientError("arXiv sent an OAI-PMH answer without records")
        items: list[OaiRecord | Deleted] = []
        for record in listing.findall(f"{_OAI}record"):
            item = self._item(record)
            if item is None:
                self.skipped += 1
            else:
                items.append(item)
        token_element = listing.find(f"{_OAI}resumptionToken")
        token = _text(token_element) if token_element is not None else ""
        return items, token or None

    def _item(self, record: ET.Element) -> OaiRecord | Deleted | None:
        header = record.find(f"{_OAI}header")
        if header is None:
            return None
        identifier = _text(header.find(f"{_OAI}identifier"))
        arxiv_id = identifier[len(_ID_PREFIX):] if identifier.startswith(_ID_PREFIX) else ""
        if not arxiv_id:
            return None
        if header.get("status") == "deleted":
            datestamp = _text(header.find(f"{_OAI}datestamp"))
            return Deleted(arxiv_id, datestamp[:10] if _DAY.match(datestamp) else "")
        meta = record.find(f"{_OAI}metadata/{_ARXIV}arXiv")
        return None if meta is None else _record(arxiv_id, meta)


class _Unreachable(Exception):
    """arXiv cannot be reached at all (refused, no route, no name): nothing more is asked."""


def _record(arxiv_id: str, meta: ET.Element) -> OaiRecord | None:
    """The record of one `arXiv` metadata element; None without a title or an abstract."""
    title = _text(meta.find(f"{_ARXIV}title"))[:MAX_TITLE_CHARS]
    abstract = _text(meta.find(f"{_ARXIV}abstract"))
    if not title or not abstract or len(abstract) > MAX_TEXT_CHARS:
        return None
    authors = []
    for author in meta.findall(f"{_ARXIV}authors/{_ARXIV}author"):
        parts = (_text(author.find(f"{_ARXIV}{part}")) for part in ("forenames", "keyname", "suffix"))
        name = " ".join(p for p in parts if p)[:MAX_NAME_CHARS]
        if name:
            authors.append(name)
    categories = tuple(_text(meta.find(f"{_ARXIV}categories")).split())
    created, updated = (_day(_text(meta.find(f"{_ARXIV}{f}"))) for f in ("created", "updated"))
    return OaiRecord(
        arxiv_id=arxiv_id, title=title, abstract=abstract, authors=tuple(authors[:MAX_AUTHORS]),
        year=int(created[:4]) if created else None, categories=categories,
        primary_category=categories[0] if categories else None, source="arxiv-oai",
        fetched_at=utc_now(), doi=_text(meta.find(f"{_ARXIV}doi")) or None,
        journal_ref=_text(meta.find(f"{_ARXIV}journal-ref")) or None, created=created, updated=updated)


def _day(value: str) -> str:
    """YYYY-MM-DD when `value` starts with a real day, else ""."""
    try:
        return datetime.strptime(value[:10], "%Y-%m-%d").replace(tzinfo=timezone.utc).date().isoformat()
    except ValueError:
        return ""


def _text(element: ET.Element | None) -> str:
    return clean_text("".join(element.itertext())) if element is not None else ""
