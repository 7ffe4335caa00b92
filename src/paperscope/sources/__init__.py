"""Where paper metadata comes from: the sources of records, and where they are registered.

Every source implements `PaperSource` (base.py): fetch records by id, list the records changed
since a date, read through a local dump. Each one serves an id scheme (ids.py: `arxiv:`, `doi:`,
`url:`). A new source is one module with its class, and one line in `SOURCES` below;
the source registered under a scheme's own name is the one that fetches ids of that scheme
(`add`, `ingest`), the others are read when asked for by name (a snapshot file, a corpus).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .ids import DEFAULT_SCHEME, qualify, record_key, split_id

if TYPE_CHECKING:
    from .base import FetchResult, PaperSource

# name -> "module:factory", imported only when the source is opened (so `--help` stays instant)
SOURCES: dict[str, str] = {
    "arxiv": "paperscope.sources.arxiv_api:ArxivApiSource",  # arXiv ids, from the arXiv API
    "arxiv-snapshot": "paperscope.sources.snapshot:SnapshotSource",  # arXiv's metadata snapshot file
    "corpus": "paperscope.sources.corpus:CorpusSource",  # a named corpus imported from a snapshot
    "arxiv-oai": "paperscope.sources.oaipmh:OaiPmhSource",  # arXiv's OAI-PMH interface (harvesting changes)
    "doi": "paperscope.sources.doi:DoiSource",  # DOIs, from OpenAlex (Crossref for a missing abstract)
    "url": "paperscope.sources.web:WebSource",  # blog posts' and repositories' own text (web pages, READMEs)
}

__all__ = ["DEFAULT_SCHEME", "SOURCES", "fetch_ids", "given_sources", "open_source", "qualify", "record_key",
           "source_for", "split_id"]


def open_source(name: str, *args: Any, **options: Any) -> PaperSource:
    """The registered source `name`, made with `args` and `options` (a snapshot's path, a
    corpus's name, an API's address); UsageError for a name not registered."""
    from ..errors import UsageError

    if name not in SOURCES:
        raise UsageError(f"No source named {name!r} (known: {', '.join(sorted(SOURCES))}).")
    module, factory = SOURCES[name].split(":")
    source: PaperSource = getattr(importlib.import_module(module), factory)(*args, **options)
    return source


def source_for(paper_id: str, **options: Any) -> PaperSource:
    """The source that fetches `paper_id` (qualified, or a bare arXiv id): the one registered
    under its scheme's name, made with `options`; UsageError when no source serves the scheme."""
    from ..errors import UsageError

    scheme = split_id(paper_id)[0]
    if scheme not in SOURCES:
        raise UsageError(f"No source fetches {scheme}: ids such as {paper_id!r} "
                         f"(sources: {', '.join(sorted(SOURCES))}).")
    return open_source(scheme, **options)


def given_sources(source: PaperSource | Sequence[PaperSource] | None) -> dict[str, PaperSource]:
    """The sources a caller made itself (one, several or none), by the scheme each serves; one
    that does not say serves arXiv ids."""
    if source is None:
        return {}
    listed: list[PaperSource] = list(source) if isinstance(source, (list, tuple)) else [source]  # type: ignore[list-item]
    return {getattr(s, "scheme", DEFAULT_SCHEME): s for s in listed}


def fetch_ids(ids: Sequence[str], source: PaperSource | Sequence[PaperSource] | None = None,
              progress: Callable[[int], None] | None = None) -> FetchResult:
    """The records of paper ids of any scheme (qualified, or bare arXiv ids), by record key.

    Ids of `source`'s scheme (or of one of several sources given) are asked of it, the others
    of the source registered for
    their scheme (UsageError, before anything is asked, for a scheme no source serves), one
    source after the other. An id its source does not hold is in neither `records` nor
    `failures`, as `fetch` leaves it; `unreachable` is that of the first source that could not
    be reached."""
    from .base import FetchResult

    by_scheme: dict[str, list[str]] = {}
    first: dict[str, str] = {}
    for paper_id in dict.fromkeys(ids):
        scheme, local = split_id(paper_id)
        by_scheme.setdefault(scheme, []).append(local)
        first.setdefault(scheme, paper_id)
    given = given_sources(source)
    asked = {scheme: given.get(scheme) or source_for(first[scheme]) for scheme in by_scheme}
    result = FetchResult()
    for scheme, local_ids in by_scheme.items():
        got = asked[scheme].fetch(local_ids, progress=progress)
        result.records.update({record_key(f"{scheme}:{i}"): r for i, r in got.records.items()})
        result.failures.update({record_key(f"{scheme}:{i}"): why for i, why in got.failures.items()})
        result.unreachable = result.unreachable or got.unreachable
    return result


def clean_text(text: str | None) -> str:
    """Collapse the line breaks and runs of spaces arXiv leaves in titles and abstracts."""
    return " ".join((text or "").split())


_ID_MONTH = re.compile(r"^(?:[a-z-]+(?:\.[A-Z]{2})?/)?(\d{2})(\d{2})")


def month_from_arxiv_id(arxiv_id: str) -> str | None:
    """The month of first submission an arXiv id encodes (YYMM.NNNNN or archive/YYMMNNN), as
    YYYY-MM; None for anything else."""
    match = _ID_MONTH.match(arxiv_id)
    if not match or not 1 <= int(match.group(2)) <= 12:
        return None
    century = "19" if int(match.group(1)) >= 91 else "20"
    return f"{century}{match.group(1)}-{match.group(2)}"


def year_from_arxiv_id(arxiv_id: str) -> int | None:
    """The submission year an arXiv id encodes."""
    month = month_from_arxiv_id(arxiv_id)
    return int(month[:4]) if month else None


def utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()
