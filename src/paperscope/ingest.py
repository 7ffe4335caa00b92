"""Ingestion: getting each catalogue entry's text, and turning entries into documents.

arXiv entries take their abstract from the record cache (index/records.json),
filled from the arXiv API or from a metadata snapshot; other entries carry a
summary in the catalogue. Only ids without a cached record with text are fetched
(all of them with `refresh`); a source never yields a record without text, so none
replaces a good one; the cache is saved after every batch, and failures are
collected per id rather than stopping the run, unless arXiv cannot be reached at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalogue import Catalogue
from .index import IndexStore
from .records import Document, Entry, PaperRecord
from .sources.snapshot import read_snapshot
from .store import file_size


@dataclass
class IngestReport:
    """What an ingest did."""

    fetched: list[str] = field(default_factory=list)
    cached: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # arXiv id -> reason
    pruned: list[str] = field(default_factory=list)
    unreachable: str | None = None  # why arXiv could not be reached; then nothing more was asked


def ids_to_fetch(catalogue: Catalogue, records: dict[str, PaperRecord], refresh: bool) -> list[str]:
    """The arXiv ids to fetch: those without a cached record with text (all with `refresh`)."""
    wanted = [entry.arxiv_id for entry in catalogue.entries if entry.arxiv_id]
    return wanted if refresh else [i for i in wanted if not (i in records and _has_text(records[i]))]


def _has_text(record: PaperRecord) -> bool:
    return bool(record.title.strip() and record.abstract.strip())


def ingest(catalogue: Catalogue, store: IndexStore, *, source=None, snapshot: Path | None = None,
           refresh: bool = False, progress: Callable[[int], None] | None = None,
           on_plan: Callable[[int, str], None] | None = None) -> IngestReport:
    """Fill the record cache for the catalogue's arXiv entries.

    `source` is an ArxivApiSource (made on demand); `snapshot`, if given, is read
    instead and no network is used. `on_plan(count, unit)` announces the work
    (ids to fetch, or bytes of snapshot to read)."""
    records = store.read_records()
    wanted = {entry.arxiv_id for entry in catalogue.entries if entry.arxiv_id}
    pruned = sorted(set(records) - wanted)
    for arxiv_id in pruned:
        del records[arxiv_id]
    todo = ids_to_fetch(catalogue, records, refresh)
    report = IngestReport(cached=len(wanted) - len(todo), pruned=pruned)
    if snapshot is not None:
        if on_plan:
            on_plan(file_size(snapshot), "bytes")
        unusable: set[str] = set()
        found = read_snapshot(snapshot, todo, progress=progress, unusable=unusable)
        records.update(found)
        report.fetched = sorted(found)
        report.failures = {i: snapshot_failure(i, snapshot, unusable) for i in todo if i not in found}
        if found or pruned:
            store.write_records(records)
        return report

    if source is None:
        from .sources.arxiv_api import ArxivApiSource

        source = ArxivApiSource()
    if on_plan:
        on_plan(len(todo), "papers")
    if pruned and not todo:
        store.write_records(records)
    for start in range(0, len(todo), source.batch_size):
        batch = todo[start:start + source.batch_size]
        result = source.fetch(batch)
        records.update(result.records)
        report.fetched.extend(sorted(result.records))
        report.failures.update(result.failures)
        if result.records or pruned:
            store.write_records(records)  # after every batch: a crash keeps what was fetched
        if progress:
            progress(len(batch))
        if result.unreachable:
            report.unreachable = result.unreachable
            report.failures.update(dict.fromkeys(todo[start + len(batch):], result.unreachable))
            break
    return report


def snapshot_failure(arxiv_id: str, snapshot: Path, unusable: set[str]) -> str:
    """Why a snapshot gave no record for `arxiv_id`: the same words for `ingest` and `add`."""
    if arxiv_id in unusable:
        return f"no record with title and abstract in the snapshot {snapshot.name}"
    return f"not in the snapshot {snapshot.name}"


def entry_document(entry: Entry, record: PaperRecord | None) -> Document | None:
    """The document search sees for an entry, or None while it has no text. An entry marked
    `needs_summary` is searched by its title alone until it has a summary. The entry's note
    follows its abstract or summary, so search reads it too."""
    text = record.abstract if record and record.abstract else entry.summary
    if not text and not entry.needs_summary:
        return None
    text = " ".join(part for part in (text, entry.note) if part)
    return Document(id=entry.id, title=entry.title, text=text, meta=entry_meta(entry, record))


def entry_meta(entry: Entry, record: PaperRecord | None) -> dict:
    """What a hit shows of an entry; tags and note only when it has them, so that entries
    without them index exactly as before."""
    meta = {
        "section": entry.section,
        "kind": entry.kind,
        "url": entry.url,
        "arxiv_id": entry.arxiv_id,
        "year": entry.year or (record.year if record else None),
        "authors": list(entry.authors or (record.authors if record else ())),
    }
    if entry.tags:
        meta["tags"] = list(entry.tags)
    if entry.note:
        meta["note"] = entry.note
    return meta


def entry_json(entry: Entry, record: PaperRecord | None) -> dict[str, Any]:
    """One entry with every field shown by `show --json`, `list --json`, the API and MCP."""
    meta = entry_meta(entry, record)
    return {"id": entry.id, "title": entry.title, **meta, "tags": list(entry.tags), "note": entry.note,
            "abstract": record.abstract if record else None, "summary": entry.summary}


def catalogue_documents(catalogue: Catalogue, records: dict[str, PaperRecord]
                        ) -> tuple[list[Document], list[Entry]]:
    """(the documents of every entry, arXiv entries still waiting for their abstract). An entry
    waiting for its abstract is searched by its summary, if it has one (added offline), else by
    its title (and note) meanwhile."""
    documents, missing = [], []
    for entry in catalogue.entries:
        record = records.get(entry.arxiv_id) if entry.arxiv_id else None
        if entry.arxiv_id and not (record and record.abstract):
            missing.append(entry)
        document = entry_document(entry, record)
        if document is None:
            document = Document(id=entry.id, title=entry.title, text=entry.note or "",
                                meta=entry_meta(entry, record))
        documents.append(document)
    return documents, missing
