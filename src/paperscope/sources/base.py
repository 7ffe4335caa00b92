"""The interface every source of paper records implements.

A source serves one id scheme (`scheme`, see ids.py) and answers three questions:

  fetch(ids)            the records of these ids (by id, a batch at a time)
  changed_since(date)   the records added or changed on or after a date (keeping up)
  records()             every record of a local dump (importing a corpus)

A source that cannot answer one of them raises UnsupportedBySourceError from it (the arXiv
API holds no dump to read through): `not_a_dump` and `no_dates` below say so.

Ids: `fetch` is given ids in the source's own terms (`10.1/x` for a DOI service) and keys its
FetchResult by them; each record's own id (`PaperRecord.arxiv_id`) is its record key
(ids.record_key: the bare id for arXiv, `doi:10.1/x` for others), which is what the record
cache files it under. For arXiv the two are the same. `sources.fetch_ids` takes qualified ids
of any scheme, asks each scheme's source, and keys what comes back by record key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..records import PaperRecord


@dataclass
class FetchResult:
    """What a fetch got: records by the id asked, a reason for each id it could not get, and
    `unreachable`, why the source could not be reached at all (then nothing more was asked).
    An id in neither `records` nor `failures` is one a local dump does not hold; the caller
    words that (a dump has no more to say than "not here")."""

    records: dict[str, PaperRecord] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    unreachable: str | None = None


@dataclass(frozen=True)
class Deleted:
    """A record its source withdrew or deleted (what `changed_since` yields besides records,
    for sources that report deletions, such as an OAI-PMH harvest)."""

    key: str  # the record key, as PaperRecord.key
    date: str = ""  # YYYY-MM-DD when the source says


@runtime_checkable
class PaperSource(Protocol):
    """A source of paper records. Register a new one in `paperscope.sources.SOURCES`."""

    @property
    def scheme(self) -> str:
        """The ids it serves: "arxiv" (later "doi", "url"); see ids.py."""
        ...

    @property
    def label(self) -> str:
        """What it is, in messages: "arXiv", "the snapshot arxiv-metadata-oai-snapshot.json"."""
        ...

    @property
    def batch_size(self) -> int | None:
        """How many ids a caller hands `fetch` at a time, saving what came after each call
        (None: all at once, as for a dump that is read in one pass)."""
        ...

    def fetch(self, ids: Sequence[str], progress: Callable[[int], None] | None = None) -> FetchResult:
        """The records of `ids` (local ids, in the source's own terms). Never raises for an id
        it cannot get: the reason goes to `failures`. `progress` is told the work done in the
        unit of `work(ids)`."""
        ...

    def work(self, ids: Sequence[str]) -> tuple[int, str]:
        """How much a fetch of `ids` has to do, and in what unit ("papers", "bytes"): what a
        progress bar is sized by."""
        ...

    def changed_since(self, since: date, *, until: date | None = None,
                      categories: Sequence[str] = ()) -> Iterator[PaperRecord | Deleted]:
        """The records added or changed on or after `since` (up to `until`, in any of
        `categories` when given: an arXiv category or archive such as "cs"). Bounded: a
        source stops at its own limit rather than stream without end."""
        ...

    def records(self) -> Iterator[PaperRecord]:
        """Every usable record of a local dump, in its order (unusable ones skipped)."""
        ...


def not_a_dump(source: PaperSource) -> Iterator[PaperRecord]:
    """What `records()` does for a source that holds no local dump."""
    from ..errors import UnsupportedBySourceError

    raise UnsupportedBySourceError(f"{source.label} has no local dump to read through.",
                                   "Import from a metadata snapshot instead.")


def no_dates(source: PaperSource) -> Iterator[PaperRecord | Deleted]:
    """What `changed_since()` does for a source that cannot say what changed."""
    from ..errors import UnsupportedBySourceError

    raise UnsupportedBySourceError(f"{source.label} cannot list the records changed since a date.")
