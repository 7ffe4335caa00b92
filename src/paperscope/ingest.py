"""Ingestion: getting each catalogue entry's text, and turning entries into documents.

arXiv and DOI entries take their abstract from the record cache (index/records.json),
filled through a PaperSource (sources/): the arXiv API or a metadata snapshot, OpenAlex and
Crossref for DOIs; blog posts and repositories take their page's own text (or README) from
it, fetched by sources/web.py, searched after the summary written in the catalogue when there
is one; other entries (papers known by a PDF) carry a summary in the catalogue. Only ids
without a cached record with text are fetched (all of them with `refresh`); a source never
yields a record without text, so none replaces a good one; the cache is saved after every
batch, and failures are collected per id rather than stopping the run, unless arXiv cannot be
reached at all (a web site that cannot be reached is one failure among others).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .catalogue import Catalogue
from .index import IndexStore
from .records import Document, Entry, PaperRecord
from .render import latex_as_text

if TYPE_CHECKING:
    from .sources.base import PaperSource


@dataclass
class IngestReport:
    """What an ingest did."""

    fetched: list[str] = field(default_factory=list)
    cached: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # record key (arXiv id, doi:…) -> reason
    pruned: list[str] = field(default_factory=list)
    unreachable: str | None = None  # why arXiv could not be reached; then nothing more was asked
    asked: list[str] = field(default_factory=list)  # the labels of the sources asked for something


def ids_to_fetch(catalogue: Catalogue, records: dict[str, PaperRecord], refresh: bool) -> list[str]:
    """The record keys to fetch (arXiv ids, `doi:` keys): those without a cached record with
    text (all with `refresh`)."""
    wanted = [key for entry in catalogue.entries if (key := entry.record_key)]
    return wanted if refresh else [i for i in wanted if not (i in records and _has_text(records[i]))]


def _has_text(record: PaperRecord) -> bool:
    return bool(record.title.strip() and record.abstract.strip())


def ingest(catalogue: Catalogue, store: IndexStore, *,
           source: PaperSource | Sequence[PaperSource] | None = None,
           snapshot: Path | None = None, refresh: bool = False,
           progress: Callable[[int], None] | None = None,
           on_plan: Callable[[int, str], None] | None = None) -> IngestReport:
    """Fill the record cache for the catalogue's arXiv, DOI, blog and repository entries.

    Each id is asked of the source of its scheme (sources.SOURCES: arXiv ids of the API, DOIs
    of OpenAlex and Crossref, the links of blog posts and repositories of the web); `source`
    (one or several), if given, is asked for the ids of its scheme. `snapshot`, if given, is
    read for the arXiv ids instead and no network is used (DOIs and links are then left for a
    later ingest). `on_plan(count, unit)` announces the work (ids to fetch, or bytes of
    snapshot to read), `progress` follows it."""
    from .sources import DEFAULT_SCHEME, given_sources, open_source, record_key, split_id

    records = store.read_records()
    wanted = {key for entry in catalogue.entries if (key := entry.record_key)}
    pruned = sorted(set(records) - wanted)
    for key in pruned:
        del records[key]
    todo = ids_to_fetch(catalogue, records, refresh)
    report = IngestReport(cached=len(wanted) - len(todo), pruned=pruned)
    by_scheme: dict[str, list[str]] = {DEFAULT_SCHEME: []}  # arXiv first, asked even for none
    for key in todo:
        by_scheme.setdefault(split_id(key)[0], []).append(key)
    if snapshot is not None:
        by_scheme = {DEFAULT_SCHEME: by_scheme[DEFAULT_SCHEME]}
    given = given_sources(source)
    sources = {scheme: open_source("arxiv-snapshot", snapshot) if snapshot is not None else
               given.get(scheme) or open_source(scheme)
               for scheme in by_scheme if by_scheme[scheme] or scheme == DEFAULT_SCHEME}
    if on_plan:
        plans = [sources[scheme].work(by_scheme[scheme]) for scheme in sources]
        on_plan(sum(count for count, _ in plans), plans[0][1])
    for scheme, asked in sources.items():
        keys = by_scheme[scheme]
        if keys:
            report.asked.append(asked.label)
        local = {split_id(key)[1] if scheme != DEFAULT_SCHEME else key: key for key in keys}
        order = list(local)
        size = asked.batch_size or max(len(keys), 1)
        # at least one call, even for no ids: a dump is checked even when nothing is read from it
        for start in range(0, max(len(keys), 1), size):
            batch = order[start:start + size]
            result = asked.fetch(batch, progress=progress)
            got = {record_key(f"{scheme}:{i}"): r for i, r in result.records.items()}
            records.update(got)
            report.fetched.extend(sorted(got))
            report.failures.update({local[i]: why for i, why in result.failures.items() if i in local})
            report.failures.update({local[i]: _not_held(asked) for i in batch
                                    if i not in result.records and i not in result.failures})
            if got or pruned:
                store.write_records(records)  # after every batch: a crash keeps what was fetched
            if result.unreachable:
                report.unreachable = report.unreachable or result.unreachable
                report.failures.update({local[i]: result.unreachable
                                        for i in order[start + len(batch):]})
                break
    return report


def _not_held(source: PaperSource) -> str:
    """Why an id a source holds nothing for (a dump leaves it out of its failures) was not got:
    the words `add` uses too."""
    return f"not in {source.label}"


def entry_document(entry: Entry, record: PaperRecord | None) -> Document | None:
    """The document search sees for an entry, or None while it has no text. An entry marked
    `needs_summary` is searched by its title alone until it has a summary. The entry's note
    follows its abstract or summary, so search reads it too."""
    text = _entry_text(entry, record)
    if not text and not entry.needs_summary:
        return None
    text = " ".join(part for part in (text, entry.note) if part)
    return Document(id=entry.id, title=entry.title, text=text, meta=entry_meta(entry, record))


def _entry_text(entry: Entry, record: PaperRecord | None) -> str | None:
    """What search reads of an entry: a paper's abstract (else its summary); for a blog post or
    repository the hand-written summary first, where there is one, then its page's own text."""
    fetched = record.abstract if record and record.abstract else None
    if fetched and entry.summary and (entry.record_key or "").startswith("url:"):
        return f"{entry.summary} {fetched}"
    return fetched or entry.summary


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
    if entry.doi:
        meta["doi"] = entry.doi
        if record and record.journal_ref:
            meta["venue"] = record.journal_ref
    if entry.tags:
        meta["tags"] = list(entry.tags)
    if entry.note:
        meta["note"] = entry.note
    return meta


def entry_json(entry: Entry, record: PaperRecord | None) -> dict[str, Any]:
    """One entry with every field shown by `show --json`, `list --json`, the API and MCP; its
    title, abstract, summary and note as `show` displays them (`render.latex_as_text`)."""
    meta = entry_meta(entry, record)
    abstract = record.abstract if record else None
    return {"id": entry.id, "title": latex_as_text(entry.title), **meta, "tags": list(entry.tags),
            "note": _shown(entry.note), "abstract": _shown(abstract), "summary": _shown(entry.summary)}


def _shown(text: str | None) -> str | None:
    return latex_as_text(text) if text else text


def catalogue_documents(catalogue: Catalogue, records: dict[str, PaperRecord]
                        ) -> tuple[list[Document], list[Entry]]:
    """(the documents of every entry, arXiv entries still waiting for their abstract). An entry
    waiting for its abstract is searched by its summary, if it has one (added offline), else by
    its title (and note) meanwhile."""
    documents, missing = [], []
    for entry in catalogue.entries:
        record = records.get(entry.record_key) if entry.record_key else None
        if entry.arxiv_id and not (record and record.abstract):
            missing.append(entry)
        document = entry_document(entry, record)
        if document is None:
            document = Document(id=entry.id, title=entry.title, text=entry.note or "",
                                meta=entry_meta(entry, record))
        documents.append(document)
    return documents, missing
