"""Blog posts and repositories by their own text: the main text of a web page (extracted with
trafilatura), or a GitHub repository's README (through the GitHub API).

Ids are the pages' addresses (`url:https://…` as record keys, ids.record_key). For
https://github.com/OWNER/REPO (with or without a /tree/… tail) the README is asked of the API,
`GET {api}/repos/OWNER/REPO/readme` as raw Markdown, `api` being https://api.github.com or
`PAPERSCOPE_GITHUB_API` (a mirror, a test server); its badges, images, code blocks, HTML and
link targets are removed. Any other address is fetched as a web page: HTML only (a PDF or
another type is refused by its Content-Type before its body is read), decoded by the charset its
header or its <meta> declares, never run (no JavaScript: a page that builds its text in the
browser has none to give).

Every request is bounded as the other sources' are (http.py: a deadline for the whole exchange,
a size cap, checked against a declared Content-Length before reading, at most `max_redirects`
redirects, to http(s) addresses only); transient failures are retried with bounded backoff,
each retry announced through `on_retry`. What fails is reported per address, never raised; one
site that cannot be reached says nothing of the others, so all are asked.
"""

from __future__ import annotations

import codecs
import html
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from urllib.parse import urlsplit

from ..records import MAX_TEXT_CHARS, MAX_TITLE_CHARS, PaperRecord
from ..version import __version__
from . import clean_text, utc_now
from .base import Deleted, FetchResult, no_dates, not_a_dump
from .http import (
    Limits,
    Page,
    PermanentError,
    TransientError,
    UnreachableError,
    bounded_fetch,
    new_session,
    retried,
)

GITHUB_API = "https://api.github.com"
GITHUB_API_ENV = "PAPERSCOPE_GITHUB_API"
HTML_TYPES = ("text/html", "application/xhtml+xml")
_GITHUB_REPO = re.compile(r"^https?://(?:www\.)?github\.com/([A-Za-z0-9-]{1,39})/([A-Za-z0-9._-]{1,100})"
                          r"(?:\.git)?(?:/(?:tree|blob)/[^?#]*)?/?(?:[?#].*)?$", re.I)
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})""", re.I)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]{1,40})", re.I)
log = logging.getLogger(__name__)


class WebSource:
    """Fetches the text of web pages and GitHub repositories' READMEs (a PaperSource: fetch
    only). Records are keyed `url:<address>`; the text is the record's abstract."""

    scheme = "url"
    label = "the web"

    def __init__(self, github_api: str | None = None, max_retries: int = 2, timeout: float = 15.0,
                 connect_timeout: float = 5.0, deadline: float = 30.0, max_bytes: int = 5_000_000,
                 max_redirects: int = 5, backoff_seconds: float = 2.0,
                 max_backoff_seconds: float = 30.0, sleep: Callable[[float], None] = time.sleep,
                 on_retry: Callable[[str, float], None] | None = None):
        self.github_api = (github_api or os.environ.get(GITHUB_API_ENV) or GITHUB_API).rstrip("/")
        self.batch_size = 10
        self.limits = Limits(deadline=deadline, timeout=timeout, connect_timeout=connect_timeout,
                             max_bytes=max_bytes, max_redirects=max_redirects)
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.on_retry = on_retry
        self._sleep = sleep
        self._session = new_session(f"paperscope/{__version__}")

    def fetch(self, ids: Sequence[str], progress: Callable[[int], None] | None = None) -> FetchResult:
        """The record of each address (as given, keyed so); a failure's reason per address."""
        result = FetchResult()
        for url in ids:
            try:
                result.records[url] = self.fetch_one(url)
            except (PermanentError, TransientError, UnreachableError) as err:
                result.failures[url] = str(err)
            if progress:
                progress(1)
        return result

    def work(self, ids: Sequence[str]) -> tuple[int, str]:
        return len(ids), "pages"

    def changed_since(self, since: date, *, until: date | None = None,
                      categories: Sequence[str] = ()) -> Iterator[PaperRecord | Deleted]:
        return no_dates(self)

    def records(self) -> Iterator[PaperRecord]:
        return not_a_dump(self)

    def fetch_one(self, url: str) -> PaperRecord:
        """The record of one address: a repository's README, or a page's main text."""
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise PermanentError(f"{url!r} is not an http(s) address")
        repo = _GITHUB_REPO.match(url)
        if repo:
            owner, name = repo.group(1), repo.group(2).removesuffix(".git")
            page = self._get("GitHub", f"{self.github_api}/repos/{owner}/{name}/readme",
                             {"Accept": "application/vnd.github.raw"}, None)
            title, text, source = f"{owner}/{name}", readme_text(decoded(page)), "github"
        else:
            page = self._get(parts.hostname, url, {"Accept": "text/html,application/xhtml+xml"},
                             _not_html)
            title, text = page_text(decoded(page), page.url)
            source = "web"
        if not text:
            raise PermanentError("no text found on the page (one built by JavaScript has none "
                                 "without a browser)" if source == "web" else "the README is empty")
        return PaperRecord(arxiv_id=f"url:{url}", title=(title or url)[:MAX_TITLE_CHARS],
                           abstract=text[:MAX_TEXT_CHARS], authors=(), year=None, categories=(),
                           primary_category=None, source=source, fetched_at=utc_now())

    def _get(self, service: str, url: str, headers: dict[str, str],
             refuse: Callable[[str], str | None] | None) -> Page:
        log.info("asking %s: %s", service, url)
        return retried(lambda: bounded_fetch(self._session, service, url, None, self.limits,
                                             headers=headers, refuse=refuse),
                       max_retries=self.max_retries, backoff_seconds=self.backoff_seconds,
                       max_backoff_seconds=self.max_backoff_seconds, sleep=self._sleep,
                       on_retry=self.on_retry)


def _not_html(content_type: str) -> str | None:
    """Why a page of this Content-Type is not read (None for HTML, or no type given)."""
    media = content_type.split(";")[0].strip().lower()
    if not media or media in HTML_TYPES:
        return None
    return f"not a web page but {media} (only HTML pages are read; give a summary instead)"


def decoded(page: Page) -> str:
    """The text of a page, by the charset its Content-Type header declares, else its <meta>
    (in the first 4 KB), else UTF-8; bytes that do not decode are replaced, never raised."""
    declared = _HEADER_CHARSET.search(page.content_type)
    charset = declared.group(1) if declared else None
    if charset is None and (meta := _META_CHARSET.search(page.body[:4096])):
        charset = meta.group(1).decode("ascii")
    try:
        codec = codecs.lookup(charset or "utf-8").name
    except LookupError:
        codec = "utf-8"
    if codec == "latin-1":
        codec = "cp1252"  # what browsers read for ISO-8859-1 (WHATWG Encoding)
    return page.body.decode(codec, errors="replace")


def page_text(document: str, url: str) -> tuple[str, str]:
    """(title, main text) of an HTML page, extracted with trafilatura (boilerplate, menus,
    comments and tables left out); ("", "") for a page without text."""
    import trafilatura

    extracted = trafilatura.bare_extraction(document, url=url, with_metadata=True,
                                            include_comments=False, include_tables=False)
    if extracted is None:
        return "", ""
    title, text = getattr(extracted, "title", None) or "", getattr(extracted, "text", None) or ""
    return clean_text(title), _paragraphs(text.replace("\n", "\n\n"))


_FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.M | re.S)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
_IMAGE = re.compile(r"!\[[^\]\n]*\]\([^)\n]*\)|!\[[^\]\n]*\]\[[^\]\n]*\]")
_LINK = re.compile(r"\[([^\]\n]*)\]\([^)\n]*\)|\[([^\]\n]*)\]\[[^\]\n]*\]")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]\n]+\]:\s*\S+.*$", re.M)
_TAG = re.compile(r"<[^<>]{0,1000}>")
_INDENTED_CODE = re.compile(r"(?:^(?: {4}|\t).*\n?)+", re.M)
_MARKS = re.compile(r"^ {0,3}(?:#{1,6}\s+|>\s?|[-*+]\s+|\d{1,3}[.)]\s+)|(?<!\w)[*_`~]{1,3}|[*_`~]{1,3}(?!\w)"
                    r"|\s#{1,6}\s*$", re.M)
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}.*$", re.M)


def readme_text(markdown: str) -> str:
    """The prose of a README: code blocks, images and badges (images inside links), HTML
    comments and tags, link targets and Markdown marks removed; each heading, list item or
    table row ends as a sentence, so that passages split there."""
    text = _HTML_COMMENT.sub(" ", markdown.replace("\r\n", "\n"))
    text = _FENCE.sub("\n", text)
    text = _INDENTED_CODE.sub("\n", text)
    text = _IMAGE.sub(" ", text)
    text = _LINK.sub(lambda m: m.group(1) or m.group(2) or "", text)
    text = _REFERENCE.sub("", text)
    text = _TAG.sub(" ", text)
    text = _TABLE_RULE.sub("", text)
    text = _MARKS.sub(" ", text).replace("|", " ")
    return _paragraphs(html.unescape(text))


def _paragraphs(text: str) -> str:
    """Lines as sentences: a block of text lines is one paragraph; a line that is alone (a
    heading, a list item) and ends without punctuation gets a full stop. One line in all."""
    sentences = []
    for block in re.split(r"\n\s*\n", text):
        lines = [clean_text(line) for line in block.split("\n") if clean_text(line)]
        if not lines:
            continue
        joined = " ".join(lines) if len(lines) > 1 and not _is_list(lines) else None
        for part in [joined] if joined else lines:
            sentences.append(part if part[-1] in ".!?:;" else part + ".")
    return clean_text(" ".join(sentences))


def _is_list(lines: list[str]) -> bool:
    """Lines that read as separate items (each short, none ending a sentence)."""
    return all(len(line.split()) <= 12 and line[-1] not in ".,;" for line in lines)
