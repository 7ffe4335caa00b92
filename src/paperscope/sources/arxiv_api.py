"""Fetching paper metadata from the arXiv API with the `arxiv` package.

One shared `arxiv.Client` sends batched `id_list` requests, at most one every
`delay_seconds` (arXiv asks for 3 s). Transient failures (HTTP 429/5xx,
timeouts, dropped connections, unparseable pages) are retried with bounded
exponential backoff that honours Retry-After; what still fails is reported
per id, never raised half-way.
"""

from __future__ import annotations

import email.utils
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..records import PaperRecord
from . import clean_text, utc_now

ARXIV_API_URL = "https://export.arxiv.org/api/query"
API_URL_ENV = "PAPERSCOPE_ARXIV_API"  # another endpoint with the same API (a mirror, a test server)
RETRYABLE_STATUS = {429, 500, 502, 503, 504}


@dataclass
class FetchResult:
    """What a fetch got: records by arXiv id, and a reason for each id it could not get."""

    records: dict[str, PaperRecord] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


class _TransientError(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


class ArxivApiSource:
    """Fetches arXiv records by id through one rate-limited `arxiv.Client`."""

    def __init__(self, api_url: str | None = None, batch_size: int = 50,
                 delay_seconds: float = 3.0, max_retries: int = 4, timeout: float = 30.0,
                 backoff_seconds: float = 3.0, max_backoff_seconds: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep):
        import arxiv

        self.batch_size = batch_size
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self._sleep = sleep
        # Retries are ours (with backoff and Retry-After); the client keeps the rate limit.
        self.client = arxiv.Client(page_size=batch_size, delay_seconds=delay_seconds, num_retries=0)
        self.client.query_url_format = (api_url or os.environ.get(API_URL_ENV) or ARXIV_API_URL) + "?{}"
        self.client._session = _session(timeout)

    def fetch(self, arxiv_ids: Sequence[str],
              progress: Callable[[int], None] | None = None) -> FetchResult:
        """Fetch every id; `progress` is called with the number of ids settled per batch."""
        result = FetchResult()
        for start in range(0, len(arxiv_ids), self.batch_size):
            batch = list(arxiv_ids[start:start + self.batch_size])
            self._fetch_batch(batch, result)
            if progress:
                progress(len(batch))
        return result

    def _fetch_batch(self, batch: list[str], result: FetchResult) -> None:
        pending = list(batch)
        for attempt in range(self.max_retries + 1):
            try:
                for record in self._request(pending):
                    if record.arxiv_id in pending:
                        result.records[record.arxiv_id] = record
                        pending.remove(record.arxiv_id)
                if not pending:
                    return
                reason = "arXiv returned no record for this id"
                retry_after = None
            except _TransientError as err:
                reason, retry_after = str(err), err.retry_after
            except _PermanentError as err:
                for arxiv_id in pending:
                    result.failures[arxiv_id] = str(err)
                return
            if attempt < self.max_retries:
                delay = min(self.backoff_seconds * 2 ** attempt, self.max_backoff_seconds)
                if retry_after is not None:
                    delay = min(max(delay, retry_after), self.max_backoff_seconds)
                self._sleep(delay)
        for arxiv_id in pending:
            result.failures[arxiv_id] = f"{reason} (after {self.max_retries + 1} tries)"

    def _request(self, ids: list[str]) -> list[PaperRecord]:
        import arxiv
        import requests

        search = arxiv.Search(id_list=ids, max_results=len(ids))
        session = self.client._session
        try:
            results = list(self.client.results(search))
        except arxiv.HTTPError as err:
            if err.status in RETRYABLE_STATUS:
                raise _TransientError(f"HTTP {err.status} from arXiv", session.retry_after) from None
            raise _PermanentError(f"HTTP {err.status} from arXiv") from None
        except requests.exceptions.Timeout:
            raise _TransientError("arXiv did not answer in time") from None
        except requests.exceptions.ConnectionError as err:
            raise _TransientError(f"connection to arXiv failed ({type(err).__name__})") from None
        except arxiv.ArxivError as err:
            raise _TransientError(f"arXiv answered badly: {err.message}") from None
        except (ValueError, KeyError, AttributeError, arxiv.Result.MissingFieldError) as err:
            raise _TransientError(f"arXiv sent a page that cannot be read ({err})") from None
        return [_record(r) for r in results]


class _PermanentError(Exception):
    pass


def _session(timeout: float):
    """A requests session with a default timeout that remembers the last Retry-After."""
    import requests

    class TimeoutSession(requests.Session):
        retry_after: float | None = None

        def request(self, *args, **kwargs):
            kwargs.setdefault("timeout", timeout)
            response = super().request(*args, **kwargs)
            self.retry_after = _parse_retry_after(response.headers.get("Retry-After"))
            return response

    return TimeoutSession()


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _record(result) -> PaperRecord:
    arxiv_id = re.sub(r"v\d+$", "", result.get_short_id())
    return PaperRecord(
        arxiv_id=arxiv_id,
        title=clean_text(result.title),
        abstract=clean_text(result.summary),
        authors=tuple(clean_text(a.name) for a in result.authors),
        year=result.published.year if result.published and result.published.year > 1 else None,
        categories=tuple(result.categories),
        primary_category=result.primary_category or None,
        source="arxiv-api",
        fetched_at=utc_now(),
        doi=result.doi or None,
        journal_ref=result.journal_ref or None,
    )
