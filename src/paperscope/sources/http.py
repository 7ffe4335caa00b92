"""One bounded HTTP exchange, shared by the sources that ask a web service (arXiv, OpenAlex,
Crossref, GitHub, web pages).

`bounded_get` fetches one body within a deadline for the whole exchange (not only per read:
it runs on a daemon thread, so that nothing, a drip of headers or a DNS lookup, holds the
caller past it), with a cap on the body before and after decompression (a declared
Content-Length over it is refused before any of the body is read), a limit on redirects, which
may lead only to http(s) addresses, and optionally a check of the content type before the body
is read (`bounded_fetch`, for web pages). What goes wrong is one of three errors, by what the caller should do next:
`TransientError` (try again later, with the server's Retry-After when it gave one),
`PermanentError` (do not ask again; `status` is the HTTP status when there was one) and
`UnreachableError` (the service cannot be reached at all: ask it nothing more).
`backoff_delay` is the wait before a retry, `retried` the loop of tries around one exchange.
Nothing here imports requests at module level.
"""

from __future__ import annotations

import email.utils
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

RETRYABLE_STATUS = {429, 500, 502, 503, 504}
REDIRECT_STATUS = {301, 302, 303, 307, 308}
_CHUNK = 64 * 1024
T = TypeVar("T")


class TransientError(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentError(Exception):
    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.status = status


class UnreachableError(Exception):
    pass


@dataclass(frozen=True)
class Limits:
    """The bounds of one exchange: `deadline` seconds in all, `timeout` per read,
    `connect_timeout`, `max_bytes` of body (compressed and inflated), `max_redirects`."""

    deadline: float = 60.0
    timeout: float = 30.0
    connect_timeout: float = 5.0
    max_bytes: int = 20_000_000
    max_redirects: int = 5


def new_session(user_agent: str):
    """A requests.Session that asks for gzip and names itself."""
    import requests

    session = requests.Session()
    session.headers.update({"User-Agent": user_agent, "Accept-Encoding": "gzip"})
    return session


@dataclass(frozen=True)
class Page:
    """What one exchange got: the body, its Content-Type header ("" without one) and the
    address it came from after redirects."""

    body: bytes
    content_type: str
    url: str


def bounded_get(session, service: str, url: str, params: dict | None, limits: Limits) -> bytes:
    """The body of one GET of `url` (redirects included) from `service` (its name in messages),
    within `limits`; TransientError, PermanentError or UnreachableError otherwise."""
    return bounded_fetch(session, service, url, params, limits).body


def bounded_fetch(session, service: str, url: str, params: dict | None, limits: Limits, *,
                  headers: dict[str, str] | None = None,
                  refuse: Callable[[str], str | None] | None = None) -> Page:
    """One GET as `bounded_get`, with extra request `headers`; `refuse(content_type)` may name a
    reason not to read the body (a PDF where a web page was wanted), a PermanentError then."""
    deadline = time.monotonic() + limits.deadline
    outcome: dict = {}

    def exchange():
        try:
            outcome["page"] = _download(session, service, url, params, limits, deadline,
                                        headers, refuse)
        except Exception as err:  # handed to the caller below
            outcome["error"] = err

    worker = threading.Thread(target=exchange, daemon=True)
    worker.start()
    worker.join(limits.deadline)
    if "page" in outcome:
        return outcome["page"]
    raise classify(outcome.get("error"), service, limits.deadline)


def _download(session, service: str, url: str, params: dict | None, limits: Limits,
              deadline: float, headers: dict[str, str] | None,
              refuse: Callable[[str], str | None] | None) -> Page:
    for _ in range(limits.max_redirects + 1):
        with session.get(url, params=params, headers=headers, stream=True, allow_redirects=False,
                         timeout=(limits.connect_timeout, limits.timeout)) as response:
            status = response.status_code
            if status in REDIRECT_STATUS and response.headers.get("Location"):
                url, params = urljoin(response.url, response.headers["Location"]), None
                if urlsplit(url).scheme.lower() not in ("http", "https"):
                    raise PermanentError(f"{service} redirected to a {urlsplit(url).scheme or 'relative'}:"
                                         " address (only http and https are followed)")
                continue
            if status in RETRYABLE_STATUS:
                raise TransientError(f"HTTP {status} from {service}",
                                     parse_retry_after(response.headers.get("Retry-After")))
            if status != 200:
                raise PermanentError(f"HTTP {status} from {service}", status)
            content_type = response.headers.get("Content-Type", "")
            if refuse and (reason := refuse(content_type)):
                raise PermanentError(reason)
            declared = response.headers.get("Content-Length", "").strip()
            if declared.isdigit() and int(declared) > limits.max_bytes:
                raise PermanentError(f"{service}'s answer is larger than {limits.max_bytes:,} bytes")
            return Page(_read(response, service, limits, deadline), content_type, response.url)
    raise PermanentError(f"{service} redirected more than {limits.max_redirects} times")


def _read(response, service: str, limits: Limits, deadline: float) -> bytes:
    """The body, inflated if gzip or deflate; stops past `max_bytes` (either way) or the deadline."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip", "deflate"):
        raise PermanentError(f"{service} sent an unsupported content encoding {encoding!r}")
    inflate = zlib.decompressobj(47) if encoding != "identity" else None  # gzip or zlib header
    body, received, cap = bytearray(), 0, limits.max_bytes
    too_large = PermanentError(f"{service}'s answer is larger than {cap:,} bytes")
    while chunk := response.raw.read1(_CHUNK, decode_content=False):
        received += len(chunk)
        if received > cap:
            raise too_large
        try:
            body += inflate.decompress(chunk, cap + 1 - len(body)) if inflate else chunk
        except zlib.error:
            raise PermanentError(f"{service} sent a {encoding} page that cannot be inflated") from None
        if len(body) > cap:
            raise too_large
        if time.monotonic() > deadline:
            raise TransientError(f"{service} did not answer within {limits.deadline:g} s")
    if inflate and not inflate.eof:
        raise TransientError(f"{service} sent a page that cannot be read (truncated compressed data)")
    return bytes(body)


def classify(error: Exception | None, service: str, deadline: float) -> Exception:
    """The error of a failed exchange as one of this module's errors."""
    import requests
    import urllib3

    if error is None:
        return TransientError(f"{service} did not answer within {deadline:g} s")
    if isinstance(error, (TransientError, PermanentError)):
        return error
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return UnreachableError(f"{service} cannot be reached (no answer to connect)")
    reason = getattr(error.args[0], "reason", None) if error.args else None
    if isinstance(error, requests.exceptions.ConnectionError) and isinstance(
            reason, urllib3.exceptions.NewConnectionError):
        if isinstance(reason, urllib3.exceptions.NameResolutionError):
            return UnreachableError(f"{service} cannot be reached (its name does not resolve)")
        cause = getattr(reason.__cause__, "strerror", None) or "no connection"
        return UnreachableError(f"{service} cannot be reached ({cause.lower()})")
    if isinstance(error, (requests.exceptions.Timeout, urllib3.exceptions.ReadTimeoutError)):
        return TransientError(f"{service} did not answer in time")
    if isinstance(error, (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                          requests.exceptions.MissingSchema, requests.exceptions.InvalidHeader)):
        return PermanentError(f"cannot ask {service} at this address ({error})")  # a bad redirect too
    if isinstance(error, (requests.exceptions.ConnectionError, urllib3.exceptions.HTTPError, OSError)):
        return TransientError(f"connection to {service} failed ({type(error).__name__})")
    # Whatever else the exchange raised came from what the server sent (a Location that is no
    # URL, bytes that are not text): not worth another try, and never a traceback.
    return PermanentError(f"{service} sent an answer that cannot be read ({type(error).__name__}: {error})")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date); None without one."""
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


def backoff_delay(attempt: int, base: float, ceiling: float, retry_after: float | None) -> float:
    """The wait before retry `attempt` (0 first): doubling from `base`, at least the server's
    Retry-After, never more than `ceiling`."""
    delay = min(base * 2 ** attempt, ceiling)
    if retry_after is not None:
        delay = min(max(delay, retry_after), ceiling)
    return delay


def retried(call: Callable[[], T], *, max_retries: int, backoff_seconds: float,
            max_backoff_seconds: float, sleep: Callable[[float], None],
            on_retry: Callable[[str, float], None] | None = None) -> T:
    """`call()` again while it fails with a TransientError, up to `max_retries` more times,
    waiting `backoff_delay` between tries (each announced through `on_retry(reason, delay)`);
    the last TransientError, saying how many tries were made, once they are spent."""
    for attempt in range(max_retries + 1):
        try:
            return call()
        except TransientError as err:
            reason, retry_after = str(err), err.retry_after
        if attempt < max_retries:
            delay = backoff_delay(attempt, backoff_seconds, max_backoff_seconds, retry_after)
            if on_retry:
                on_retry(reason, delay)
            sleep(delay)
    raise TransientError(f"{reason} (after {max_retries + 1} tries)")
