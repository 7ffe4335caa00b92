"""Import from arXiv's bulk metadata snapshot (arxiv-metadata-oai-snapshot.json).

The snapshot is JSON lines, several gigabytes: it is streamed line by line, at most
`MAX_LINE_BYTES` of a line held at once, and only the lines of wanted ids are parsed. Plain
or gzip-compressed files work. One parser, `parse_line`, turns a line into a record for both
`ingest --from-snapshot` and the corpus importer; a line it cannot use is skipped with a reason.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from ..errors import SnapshotError
from ..files import file_size
from ..records import MAX_TEXT_CHARS, MAX_TITLE_CHARS, PaperRecord
from . import clean_text, utc_now, year_from_arxiv_id
from .base import Deleted, FetchResult

_ID_FIELD = re.compile(rb'"id"\s*:\s*"([^"]+)"')
_UPDATE_FIELD = re.compile(rb'"update_date"\s*:\s*"(\d{4}-\d{2}-\d{2})"')
MAX_LINE_BYTES = 1 << 20  # longer snapshot lines are skipped as damaged (real ones are a few KiB)


class UnusableLine(ValueError):
    """A snapshot line that holds no usable record; the message says why."""


def snapshot_lines(path: Path, progress: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """The non-blank lines of a snapshot file; a line over MAX_LINE_BYTES comes cut to
    MAX_LINE_BYTES + 1 bytes (so `parse_line` skips it) and the rest of it is read past.
    `progress` is told the bytes read."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            while line := handle.readline(MAX_LINE_BYTES + 1):
                read = len(line)
                if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                    while (rest := handle.readline(1 << 16)) and not rest.endswith(b"\n"):
                        read += len(rest)
                    read += len(rest)
                if progress:
                    progress(read)
                if line.strip():
                    yield line
    except FileNotFoundError:
        raise SnapshotError(f"Snapshot file not found: {path}") from None
    except IsADirectoryError:
        raise SnapshotError(f"{path} is a folder, not a snapshot file.") from None
    except (OSError, EOFError, zlib.error) as err:
        raise SnapshotError(f"Cannot read the snapshot {path}: {err}") from None


def refuse_unless_snapshot(path: Path, first: bytes) -> None:
    """Raise SnapshotError when the first line of a file is not a snapshot record."""
    if not first.lstrip().startswith(b"{") or _ID_FIELD.search(first) is None:
        raise SnapshotError(f"{path}:1: not an arXiv metadata snapshot "
                            "(expected one JSON object with an \"id\" per line).")


def line_id(line: bytes) -> str | None:
    """The arXiv id a line seems to hold, found without parsing it (None if none)."""
    match = _ID_FIELD.search(line)
    try:
        return match.group(1).decode() if match else None
    except UnicodeDecodeError:
        return None


def read_snapshot(path: Path, wanted: Iterable[str],
                  progress: Callable[[int], None] | None = None,
                  unusable: set[str] | None = None) -> dict[str, PaperRecord]:
    """The usable records of the `wanted` arXiv ids found in the snapshot at `path` (a record
    without title or abstract, or one that is damaged, counts as not found, and its id is put
    in `unusable` when given).

    `progress` is called with the number of bytes read since its last call."""
    wanted = set(wanted)
    found: dict[str, PaperRecord] = {}
    source, fetched_at = f"snapshot:{path.name}", utc_now()
    for number, line in enumerate(snapshot_lines(path, progress), start=1):
        if number == 1:
            refuse_unless_snapshot(path, line)
            if not wanted:  # the file is checked even when there is nothing to read from it
                break
        arxiv_id = line_id(line)
        if arxiv_id not in wanted:
            continue
        try:
            record, _ = parse_line(line, source=source, fetched_at=fetched_at, expected_id=arxiv_id)
        except UnusableLine:
            if unusable is not None:
                unusable.add(arxiv_id)
            continue
        found[arxiv_id] = record
        if len(found) == len(wanted):
            break
    return found


class SnapshotSource:
    """arXiv's metadata snapshot as a PaperSource: a local dump, read in one pass per call
    (so `batch_size` is None: a caller hands it every id at once)."""

    scheme = "arxiv"
    batch_size = None

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.label = f"the snapshot {self.path.name}"
        self.provenance = f"snapshot:{self.path.name}"  # PaperRecord.source of what it reads

    def fetch(self, ids: Sequence[str], progress: Callable[[int], None] | None = None) -> FetchResult:
        """The usable records of `ids`; an id whose line has no title or abstract (or is
        damaged) is a failure, one the file does not hold is in neither `records` nor `failures`.
        `progress` is told the bytes read."""
        unusable: set[str] = set()
        records = read_snapshot(self.path, ids, progress=progress, unusable=unusable)
        why = f"no record with title and abstract in {self.label}"
        return FetchResult(records=records, failures=dict.fromkeys(unusable, why))

    def work(self, ids: Sequence[str]) -> tuple[int, str]:
        return file_size(self.path), "bytes"

    def changed_since(self, since: date, *, until: date | None = None,
                      categories: Sequence[str] = ()) -> Iterator[PaperRecord | Deleted]:
        """The records whose last update (`update_date`, else the last version's date) is on
        or after `since` (and on or before `until`), in any of `categories` (a prefix such as
        "cs" takes its subcategories). A line's date is looked at before it is parsed."""
        first, last = since.isoformat(), until.isoformat() if until else "9999-12-31"
        for record, data in self._parsed(prefilter=lambda line: _before(line, first)):
            changed = _changed_date(data)
            if changed and first <= changed <= last and _in_categories(record.categories, categories):
                yield record

    def records(self, on_skip: Callable[[str], None] | None = None) -> Iterator[PaperRecord]:
        """Every usable record of the file, in its order; `on_skip(reason)` hears of each line
        skipped. SnapshotError when the file is not a snapshot at all."""
        for record, _ in self._parsed(on_skip=on_skip):
            yield record

    def _parsed(self, prefilter: Callable[[bytes], bool] | None = None,
                on_skip: Callable[[str], None] | None = None) -> Iterator[tuple[PaperRecord, dict[str, Any]]]:
        fetched_at = utc_now()
        for number, line in enumerate(snapshot_lines(self.path), start=1):
            if number == 1:
                refuse_unless_snapshot(self.path, line)
            if prefilter is not None and prefilter(line):
                continue
            try:
                yield parse_line(line, source=self.provenance, fetched_at=fetched_at)
            except UnusableLine as why:
                if on_skip:
                    on_skip(str(why))


def _before(line: bytes, first: str) -> bool:
    """Whether a line's update date, found without parsing it, is before `first`."""
    match = _UPDATE_FIELD.search(line)
    return match is not None and match.group(1).decode() < first


def _changed_date(data: dict[str, Any]) -> str:
    """The date a record last changed, YYYY-MM-DD ("" when the line does not say)."""
    updated = data.get("update_date")
    if isinstance(updated, str) and re.match(r"^\d{4}-\d{2}-\d{2}$", updated):
        return updated
    versions = data.get("versions")
    try:
        return parsedate_to_datetime(versions[-1]["created"]).date().isoformat()  # type: ignore[index]
    except (IndexError, KeyError, TypeError, ValueError, AttributeError):
        return ""


def _in_categories(categories: Sequence[str], wanted: Sequence[str]) -> bool:
    return not wanted or any(c == w or c.startswith((w + ".", w + "-")) for c in categories for w in wanted)


def parse_line(line: bytes, source: str = "snapshot", fetched_at: str = "",
               expected_id: str | None = None) -> tuple[PaperRecord, dict[str, Any]]:
    """The record on one snapshot line and the parsed object, or UnusableLine saying why.
    With `expected_id`, a line whose parsed id differs (a nested or repeated "id") is refused."""
    if len(line) > MAX_LINE_BYTES:
        raise UnusableLine("line over 1 MiB")
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        raise UnusableLine("not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"].strip():
        raise UnusableLine("no arXiv id")
    if expected_id is not None and data["id"] != expected_id:
        raise UnusableLine("id given twice")
    if not isinstance(data.get("title"), str) or not isinstance(data.get("abstract"), str):
        raise UnusableLine("title or abstract missing or not text")
    record = record_from_snapshot(data, source=source, fetched_at=fetched_at)
    if not record.title or not record.abstract:
        raise UnusableLine("empty title or abstract")
    return record, data


def record_from_snapshot(data: dict[str, Any], source: str, fetched_at: str) -> PaperRecord:
    """A PaperRecord from one parsed snapshot line (fields of the wrong type are left out,
    title and abstract are cut to their caps)."""
    arxiv_id = str(data["id"]).strip()
    categories = tuple(_str(data.get("categories")).split())
    return PaperRecord(
        arxiv_id=arxiv_id,
        title=clean_text(_str(data.get("title"))[:MAX_TITLE_CHARS * 2])[:MAX_TITLE_CHARS],
        abstract=clean_text(_str(data.get("abstract"))[:MAX_TEXT_CHARS * 2])[:MAX_TEXT_CHARS],
        authors=_authors(data),
        year=_first_version_year(data) or year_from_arxiv_id(arxiv_id),
        categories=categories,
        primary_category=categories[0] if categories else None,
        source=source,
        fetched_at=fetched_at,
        doi=_str(data.get("doi")) or None,
        journal_ref=_str(data.get("journal-ref")) or None,
    )


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _authors(data: dict[str, Any]) -> tuple[str, ...]:
    parsed = data.get("authors_parsed")
    if isinstance(parsed, list) and parsed:
        names = []
        for parts in parsed:
            parts = [_str(p) for p in parts] if isinstance(parts, list) else []
            last, first, suffix = [*parts, "", "", ""][:3]
            names.append(clean_text(" ".join(p for p in (first, last, suffix) if p)))
        return tuple(n for n in names if n)
    raw = clean_text(_str(data.get("authors")))
    return tuple(n.strip() for n in re.split(r",\s*|\s+and\s+", raw) if n.strip())


def _first_version_year(data: dict[str, Any]) -> int | None:
    versions: Any = data.get("versions")  # whatever the line holds: checked by the except
    try:
        return parsedate_to_datetime(versions[0]["created"]).year
    except (IndexError, KeyError, TypeError, ValueError, AttributeError):
        return None
