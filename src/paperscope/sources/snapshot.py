"""Import from arXiv's bulk metadata snapshot (arxiv-metadata-oai-snapshot.json).

The snapshot is JSON lines, several gigabytes: it is streamed line by line and
only the lines of wanted ids are parsed. Plain or gzip-compressed files work.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable, Iterable
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from ..errors import SnapshotError
from ..records import PaperRecord
from . import clean_text, utc_now, year_from_arxiv_id

_ID_FIELD = re.compile(rb'"id"\s*:\s*"([^"]+)"')


def read_snapshot(path: Path, wanted: Iterable[str],
                  progress: Callable[[int], None] | None = None) -> dict[str, PaperRecord]:
    """The records of the `wanted` arXiv ids found in the snapshot at `path`.

    `progress` is called with the number of bytes read since its last call."""
    wanted = set(wanted)
    found: dict[str, PaperRecord] = {}
    fetched_at = utc_now()
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                if progress:
                    progress(len(line))
                if not line.strip():
                    continue
                match = _ID_FIELD.search(line)
                if match is None:
                    if number == 1:
                        raise SnapshotError(f"{path}:1: not an arXiv metadata snapshot "
                                            "(expected one JSON object with an \"id\" per line).")
                    continue
                arxiv_id = match.group(1).decode()
                if arxiv_id not in wanted:
                    continue
                try:
                    data = json.loads(line)
                except ValueError as err:
                    raise SnapshotError(f"{path}:{number}: the record of {arxiv_id} is not valid "
                                        f"JSON ({err}).") from None
                found[arxiv_id] = record_from_snapshot(data, source=f"snapshot:{path.name}",
                                                       fetched_at=fetched_at)
                if len(found) == len(wanted):
                    break
    except FileNotFoundError:
        raise SnapshotError(f"Snapshot file not found: {path}") from None
    except (OSError, EOFError) as err:
        raise SnapshotError(f"Cannot read the snapshot {path}: {err}") from None
    return found


def record_from_snapshot(data: dict[str, Any], source: str, fetched_at: str) -> PaperRecord:
    """A PaperRecord from one snapshot line."""
    arxiv_id = str(data["id"])
    categories = tuple(str(data.get("categories") or "").split())
    return PaperRecord(
        arxiv_id=arxiv_id,
        title=clean_text(data.get("title")),
        abstract=clean_text(data.get("abstract")),
        authors=_authors(data),
        year=_first_version_year(data) or year_from_arxiv_id(arxiv_id),
        categories=categories,
        primary_category=categories[0] if categories else None,
        source=source,
        fetched_at=fetched_at,
        doi=data.get("doi") or None,
        journal_ref=data.get("journal-ref") or None,
    )


def _authors(data: dict[str, Any]) -> tuple[str, ...]:
    parsed = data.get("authors_parsed") or []
    if parsed:
        names = []
        for parts in parsed:
            last, first, suffix = (list(parts) + ["", "", ""])[:3]
            names.append(clean_text(" ".join(p for p in (first, last, suffix) if p)))
        return tuple(n for n in names if n)
    raw = clean_text(data.get("authors"))
    return tuple(n.strip() for n in re.split(r",\s*|\s+and\s+", raw) if n.strip())


def _first_version_year(data: dict[str, Any]) -> int | None:
    versions = data.get("versions") or []
    try:
        return parsedate_to_datetime(versions[0]["created"]).year
    except (IndexError, KeyError, TypeError, ValueError):
        return None
