"""Fetching paper metadata from the arXiv API.

Batched `id_list` requests go through one requests.Session, at most one every
`delay_seconds` (arXiv asks for 3 s). Every request is bounded: a deadline for
the whole exchange (not only per read), a cap on the body before and after
decompression, and a redirect limit. Transient failures (HTTP 429/5xx, time-outs,
dropped connections, unreadable pages) are retried with bounded exponential
backoff that honours Retry-After, each retry announced through `on_retry`. When
arXiv cannot be reached at all (refused, no route, no DNS) nothing is retried
and nothing more is asked. What fails is reported per id, never raised.

`changed_since` lists the records updated in a range of days through the API's search
(`lastUpdatedDate`), a page at a time under the same bounds, up to `max_listed` records; there
a failure is raised (FetchError), as a listing cut short has no id to report it under.
"""

from __future__ import annotations

import logging
import os
import re
import time
import xml.etree.ElementTree as ET
import xml.parsers.expat
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timezone
from typing import TypeVar

from ..errors import FetchError
from ..records import MAX_AUTHORS, MAX_NAME_CHARS, MAX_TITLE_CHARS, PaperRecord
from . import clean_text, utc_now
from .base import Deleted, FetchResult, not_a_dump
from .http import Limits, backoff_delay, bounded_get, new_session, retried
from .http import PermanentError as _PermanentError
from .http import TransientError as _TransientError
from .http import UnreachableError as _UnreachableError

T = TypeVar("T")

ARXIV_API_URL = "https://export.arxiv.org/api/query"
API_URL_ENV = "PAPERSCOPE_ARXIV_API"  # another endpoint with the same API (a mirror, a test server)
MAX_ABSTRACT_CHARS = 20_000  # arXiv allows 1,920; more is not an abstract
_ATOM, _ARXIV = "{http://www.w3.org/2005/Atom}", "{http://arxiv.org/schemas/atom}"
_OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"
log = logging.getLogger(__name__)



class ArxivApiSource:
    """Fetches arXiv records by id, rate-limited, with every request bounded in time and size
    (a PaperSource: fetch and changed_since; it holds no dump to read through).

    `on_retry(reason, delay_seconds)` is called before each backoff wait."""

    scheme = "arxiv"
    label = "arXiv"

    def __init__(self, api_url: str | None = None, batch_size: int = 50,
                 delay_seconds: float = 3.0, max_retries: int = 4, timeout: float = 30.0,
                 connect_timeout: float = 5.0, deadline: float = 60.0,
                 max_bytes: int = 20_000_000, max_redirects: int = 5,
                 backoff_seconds: float = 3.0, max_backoff_seconds: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep,
                 on_retry: Callable[[str, float], None] | None = None,
                 page_size: int = 200, max_listed: int = 10_000):
        self.api_url = api_url or os.environ.get(API_URL_ENV) or ARXIV_API_URL
        self.batch_size = batch_size
        self.delay_seconds = delay_seconds
        self.max_retries = max_retries
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.deadline = deadline
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.on_retry = on_retry
        self.page_size = page_size
        self.max_listed = max_listed
        self._sleep = sleep
        self._session = new_session("paperscope")
        self._last_request = float("-inf")

    def fetch(self, arxiv_ids: Sequence[str],
              progress: Callable[[int], None] | None = None) -> FetchResult:
        """Fetch every id; `progress` is called with the number of ids settled per batch."""
        result = FetchResult()
        for start in range(0, len(arxiv_ids), self.batch_size):
            batch = list(arxiv_ids[start:start + self.batch_size])
            if result.unreachable:
                result.failures.update(dict.fromkeys(batch, result.unreachable))
            else:
                self._fetch_batch(batch, result)
            if progress:
                progress(len(batch))
        return result

    def work(self, ids: Sequence[str]) -> tuple[int, str]:
        return len(ids), "papers"

    def changed_since(self, since: date, *, until: date | None = None,
                      categories: Sequence[str] = ()) -> Iterator[PaperRecord | Deleted]:
        """The records last updated from `since` to `until` (today when None), both days
        included, in any of `categories` ("cs" for the archive, "cs.CL" for one category),
        oldest first: pages of `page_size`, at most `max_listed` records in all. An entry
        without title or abstract is passed over; a page that cannot be had is a FetchError."""
        last = until or datetime.now(timezone.utc).date()
        query = f"lastUpdatedDate:[{since:%Y%m%d}0000 TO {last:%Y%m%d}2359]"
        if categories:
            wanted = " OR ".join(f"cat:{c}" if "." in c else f"cat:{c}.*" for c in categories)
            query = f"({wanted}) AND {query}"
        listed = 0
        while listed < self.max_listed:
            size = min(self.page_size, self.max_listed - listed)
            log.info("asking %s for changes (%s), results %d to %d", self.api_url, query,
                     listed + 1, listed + size)
            try:
                entries, total = self._page({"search_query": query, "sortBy": "lastUpdatedDate",
                                             "sortOrder": "ascending", "start": listed,
                                             "max_results": size})
            except (_PermanentError, _UnreachableError) as err:
                raise FetchError(f"Could not list arXiv's changes: {err}.", {}) from None
            for record in entries.values():
                if isinstance(record, PaperRecord):
                    yield record
            listed += size
            if not entries or total is None or listed >= total:
                return

    def records(self) -> Iterator[PaperRecord]:
        return not_a_dump(self)

    def _page(self, query: dict) -> tuple[dict[str, PaperRecord | str], int | None]:
        """One page of a search, retried as a batch is; _PermanentError once the tries are spent."""
        try:
            return self.retried(lambda: _parse_feed(self._ask(query)))
        except _TransientError as err:  # the tries are spent
            raise _PermanentError(str(err)) from None

    def retried(self, call: Callable[[], T]) -> T:
        """`call()` tried as this client tries every exchange (http.retried, with its limits)."""
        return retried(call, max_retries=self.max_retries, backoff_seconds=self.backoff_seconds,
                       max_backoff_seconds=self.max_backoff_seconds, sleep=self._sleep,
                       on_retry=self.on_retry)

    def _back_off(self, attempt: int, reason: str, retry_after: float | None) -> None:
        delay = backoff_delay(attempt, self.backoff_seconds, self.max_backoff_seconds, retry_after)
        if self.on_retry:
            self.on_retry(reason, delay)
        self._sleep(delay)

    def _fetch_batch(self, batch: list[str], result: FetchResult) -> None:
        pending = list(batch)
        for attempt in range(self.max_retries + 1):
            try:
                for arxiv_id, record in self._request(pending).items():
                    if arxiv_id in pending:
                        pending.remove(arxiv_id)
                        if isinstance(record, str):
                            result.failures[arxiv_id] = record
                        else:
                            result.records[arxiv_id] = record
                if not pending:
                    return
                reason = "arXiv returned no record for this id"
                retry_after = None
            except _TransientError as err:
                reason, retry_after = str(err), err.retry_after
            except _PermanentError as err:
                result.failures.update(dict.fromkeys(pending, str(err)))
                return
            except _UnreachableError as err:
                result.unreachable = str(err)
                result.failures.update(dict.fromkeys(pending, str(err)))
                return
            if attempt < self.max_retries:
                self._back_off(attempt, reason, retry_after)
        for arxiv_id in pending:
            result.failures[arxiv_id] = f"{reason} (after {self.max_retries + 1} tries)"

    def _request(self, ids: list[str]) -> dict[str, PaperRecord | str]:
        """One request for `ids` (never paged: a server that ignores `start` costs nothing more)."""
        log.info("asking %s for %d ids", self.api_url, len(ids))
        return _parse(self._ask({"id_list": ",".join(ids), "start": 0, "max_results": len(ids)}))

    def _ask(self, query: dict) -> bytes:
        """The body of one exchange, at most one every `delay_seconds`."""
        wait = self._last_request + self.delay_seconds - time.monotonic()
        if wait > 0:
            self._sleep(wait)
        self._last_request = time.monotonic()
        return self._get(query)

    def _get(self, query: dict) -> bytes:
        """The body of one exchange, redirects included, within `deadline` seconds in all
        (http.bounded_get)."""
        limits = Limits(deadline=self.deadline, timeout=self.timeout,
                        connect_timeout=self.connect_timeout, max_bytes=self.max_bytes,
                        max_redirects=self.max_redirects)
        return bounded_get(self._session, "arXiv", self.api_url, query, limits)


def checked_root(body: bytes, tag: str, what: str) -> ET.Element:
    """The root element of a page from arXiv; a page with a DOCTYPE (arXiv never sends one:
    refusing it rules out entity tricks), one that cannot be read, or one whose root is not
    `tag` is a transient failure naming `what` it should have been."""
    if _has_doctype(body):
        raise _TransientError(f"arXiv sent a page that is not {what}")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as err:
        raise _TransientError(f"arXiv sent a page that cannot be read ({err})") from None
    if root.tag != tag:
        raise _TransientError(f"arXiv sent a page that is not {what}")
    return root


def _parse(body: bytes) -> dict[str, PaperRecord | str]:
    """Each entry of an Atom page by arXiv id: its record, or why it is unusable."""
    return _parse_feed(body)[0]


def _parse_feed(body: bytes) -> tuple[dict[str, PaperRecord | str], int | None]:
    """Each entry of an Atom page by arXiv id (its record, or why it is unusable), and the
    number of results the page says the query has (None when it does not say)."""
    root = checked_root(body, f"{_ATOM}feed", "an Atom feed")
    entries: dict[str, PaperRecord | str] = {}
    for entry in root.findall(f"{_ATOM}entry"):
        arxiv_id = re.sub(r"v\d+$", "", _text(entry, f"{_ATOM}id").split("arxiv.org/abs/")[-1])
        if arxiv_id and not isinstance(entries.get(arxiv_id), PaperRecord):  # the first good one
            entries[arxiv_id] = _record(arxiv_id, entry)
    total = _text(root, f"{_OPENSEARCH}totalResults")
    return entries, int(total) if total.isdigit() else None


class _Prolog(Exception):
    """Raised from expat's handlers to stop reading once the prolog has been seen."""

    def __init__(self, doctype: bool):
        self.doctype = doctype


def _has_doctype(body: bytes) -> bool:
    """Whether the page declares a DOCTYPE, in whatever encoding it is written. Only the prolog
    is read: expat meets a DOCTYPE before any element (and before it could expand an entity)."""
    def stop(doctype: bool):
        def handler(*args: object) -> None:
            raise _Prolog(doctype)
        return handler

    parser = xml.parsers.expat.ParserCreate()
    parser.StartDoctypeDeclHandler = stop(True)
    parser.StartElementHandler = stop(False)
    try:
        parser.Parse(body, True)
    except _Prolog as seen:
        return seen.doctype
    except xml.parsers.expat.ExpatError:
        return False  # ElementTree reports what is wrong with it
    return False


def _record(arxiv_id: str, entry: ET.Element) -> PaperRecord | str:
    title, abstract = _text(entry, f"{_ATOM}title"), _text(entry, f"{_ATOM}summary")
    if not title:
        return "arXiv's record has no title"
    if not abstract:
        return "arXiv's record has no abstract"
    if len(abstract) > MAX_ABSTRACT_CHARS:
        return f"arXiv's record has an abstract of {len(abstract):,} characters"
    published = _text(entry, f"{_ATOM}published")[:4]
    primary = entry.find(f"{_ARXIV}primary_category")
    authors = (_text(a, f"{_ATOM}name")[:MAX_NAME_CHARS] for a in entry.findall(f"{_ATOM}author"))
    return PaperRecord(
        arxiv_id=arxiv_id,
        title=title[:MAX_TITLE_CHARS],
        abstract=abstract,
        authors=tuple(name for name in authors if name)[:MAX_AUTHORS],
        year=int(published) if published.isdigit() and int(published) > 1 else None,
        categories=tuple(term for c in entry.findall(f"{_ATOM}category") if (term := c.get("term"))),
        primary_category=(primary.get("term") if primary is not None else None) or None,
        source="arxiv-api",
        fetched_at=utc_now(),
        doi=_text(entry, f"{_ARXIV}doi") or None,
        journal_ref=_text(entry, f"{_ARXIV}journal_ref") or None,
    )


def _text(element: ET.Element, tag: str) -> str:
    """The cleaned text of the first `tag` child (nested markup included), or ""."""
    child = element.find(tag)
    return clean_text("".join(child.itertext())) if child is not None else ""
