"""Named corpora: slices of arXiv's metadata snapshot imported for search and discovery.

A corpus lives in a folder of paperscope's cache (`paperscope corpus list` shows where):
  documents.sqlite   the imported records, in import order (written whole, then renamed)
  index/             its index (see index.py), built in committed chunks that survive
                     interruption (see indexer.py)

Import streams the snapshot line by line, so memory stays bounded whatever its size; a line
that is not a usable record is counted and skipped, never fatal.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .collection import Collection
from .errors import PaperscopeError, UnknownEntryError, UsageError
from .files import cache_dir
from .index import IndexStore
from .indexer import BuildReport
from .records import Document, PaperRecord
from .render import latex_as_text
from .sources import month_from_arxiv_id, open_source, utc_now
from .sources.base import Deleted
from .sources.snapshot import UnusableLine, parse_line, refuse_unless_snapshot, snapshot_lines

if TYPE_CHECKING:
    from .embedding import Encoder
    from .sources.base import PaperSource

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MONTH = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
STAGED_NAME = "documents.sqlite"


def corpora_dir() -> Path:
    return cache_dir() / "corpora"


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise UsageError(f"{name!r} is not a corpus name: use letters, digits, '.', '_' and '-' "
                         "(up to 64, starting with a letter or digit).")
    return name


@dataclass
class ImportReport:
    """What an import kept and skipped."""

    read: int = 0
    kept: int = 0
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> lines

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


@dataclass
class UpdateReport:
    """What an update harvested and did: papers added, changed (replaced) and deleted (by
    arXiv, or no longer in the corpus's selection), records that were already as harvested,
    and records outside the selection; then the build's report."""

    since: str = ""
    until: str = ""  # the day recorded as harvested: the next update starts there
    harvested: int = 0
    added: int = 0
    changed: int = 0
    deleted: int = 0
    unchanged: int = 0
    outside: int = 0
    build: BuildReport | None = None

    @property
    def touched(self) -> int:
        return self.added + self.changed + self.deleted


@dataclass(frozen=True)
class SnapshotFilter:
    """Which snapshot records a corpus takes: categories (a prefix such as "cs" or "astro-ph"
    matches its subcategories) and first-version dates, as YYYY, YYYY-MM or YYYY-MM-DD."""

    categories: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None

    def __post_init__(self) -> None:
        for value in (self.since, self.until):
            if value is None:
                continue
            try:
                if not _MONTH.match(value):
                    raise ValueError(value)
                date.fromisoformat((value + "-01-01")[:10] if len(value) < 10 else value)
            except ValueError:
                raise UsageError(f"{value!r} is not a date: write YYYY, YYYY-MM or YYYY-MM-DD.") from None

    def accepts(self, categories: Sequence[str], date: str) -> bool:
        if self.categories and not any(c == want or c.startswith((want + ".", want + "-"))
                                       for c in categories for want in self.categories):
            return False
        if self.since and (not date or date[:len(self.since)] < self.since):
            return False
        return not (self.until and (not date or date[:len(self.until)] > self.until))

    def to_json(self) -> dict[str, Any]:
        return {"categories": list(self.categories), "since": self.since, "until": self.until}


def _record_date(data: dict[str, Any], arxiv_id: str) -> str:
    """The date a record first appeared: its first version's (YYYY-MM-DD), else the year and
    month its id encodes (YYYY-MM), else its last update's."""
    versions = data.get("versions")
    if isinstance(versions, list) and versions and isinstance(versions[0], dict):
        with contextlib.suppress(TypeError, ValueError):
            return parsedate_to_datetime(str(versions[0].get("created"))).date().isoformat()
    month = month_from_arxiv_id(arxiv_id)
    if month:
        return month
    updated = data.get("update_date")  # the last version's date: a last resort
    return updated if isinstance(updated, str) and re.match(r"^\d{4}-\d{2}-\d{2}$", updated) else ""


def parse_snapshot_line(line: bytes, report: ImportReport) -> tuple[PaperRecord, str] | None:
    """A record and its date from one snapshot line, or None (counted in `report`)."""
    try:
        record, data = parse_line(line)
    except UnusableLine as why:
        report.skip(str(why))
        return None
    return record, _record_date(data, record.arxiv_id)


def record_document(record: PaperRecord, date: str) -> Document:
    """How an imported record is indexed and shown."""
    return Document(record.arxiv_id, record.title, record.abstract, {
        "url": f"https://arxiv.org/abs/{record.arxiv_id}", "kind": "paper", "year": record.year,
        "arxiv_id": record.arxiv_id, "date": date, "authors": list(record.authors),
        "categories": list(record.categories), "primary_category": record.primary_category})


def document_record(document: Document, source: str) -> PaperRecord:
    """The arXiv record behind a corpus document (for adding it to a catalogue offline)."""
    meta = document.meta
    return PaperRecord(arxiv_id=document.id, title=document.title, abstract=document.text,
                       authors=tuple(meta.get("authors") or ()), year=meta.get("year"),
                       categories=tuple(meta.get("categories") or ()),
                       primary_category=meta.get("primary_category"), source=source,
                       fetched_at=utc_now())


class StagedDocuments(Sequence[Document]):
    """The imported documents of a corpus, read from its SQLite file in order, a batch at a time."""

    def __init__(self, path: Path):
        self.path = path
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        self._count = self._db.execute("SELECT count(*) FROM documents").fetchone()[0]

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, position):
        if isinstance(position, slice):
            return [self[i] for i in range(*position.indices(self._count))]
        row = self._db.execute("SELECT id, title, text, meta FROM documents WHERE position = ?",
                               (int(position),)).fetchone()
        if row is None:
            raise IndexError(position)
        return Document(row[0], row[1], row[2], json.loads(row[3]))

    def find(self, doc_id: str) -> Document | None:
        row = self._db.execute("SELECT id, title, text, meta FROM documents WHERE id = ?",
                               (doc_id,)).fetchone()
        return None if row is None else Document(row[0], row[1], row[2], json.loads(row[3]))

    def __iter__(self) -> Iterator[Document]:
        cursor = self._db.execute("SELECT id, title, text, meta FROM documents ORDER BY position")
        for doc_id, title, text, meta in cursor:
            yield Document(doc_id, title, text, json.loads(meta))

    def close(self) -> None:
        self._db.close()


class Corpus:
    """A named corpus: its imported documents and its index."""

    def __init__(self, name: str, encoder: Encoder | None = None):
        self.name = check_name(name)
        self.directory = corpora_dir() / name
        self.store = IndexStore(self.directory / "index")
        self.collection = Collection(
            self.store, lambda: StagedDocuments(self.staged_path), name=name, encoder=encoder,
            source=f"corpus:{name}", missing_message=f"The corpus {name!r} has no index yet.",
            missing_hint=f"Build it with: paperscope corpus build {name}")

    @property
    def staged_path(self) -> Path:
        return self.directory / STAGED_NAME

    @classmethod
    def open(cls, name: str, encoder: Encoder | None = None) -> Corpus:
        """An existing corpus; an unknown name lists the known ones."""
        corpus = cls(name, encoder)
        if not corpus.staged_path.is_file():
            known = ", ".join(list_corpora()) or "none yet"
            raise UnknownEntryError(f"No corpus named {name!r} (known: {known}).",
                                    "Create one with: paperscope corpus import SNAPSHOT --name NAME")
        return corpus

    def import_snapshot(self, snapshot: Path, selection: SnapshotFilter, *, limit: int | None = None,
                        progress: Callable[[int], None] | None = None, replace: bool = False) -> ImportReport:
        """Stream the records of `snapshot` that `selection` accepts into this corpus. A corpus
        imported before is replaced only with `replace` (its index is then rebuilt by the next
        build, reusing the vectors of records that did not change). `progress` is told bytes read."""
        if self.staged_path.exists() and not replace:
            raise UsageError(f"A corpus named {self.name!r} exists already; nothing was imported.",
                             "Pass --replace to import it anew (the vectors of papers that stay are "
                             "reused), or choose another --name.")
        report = ImportReport()
        created = not self.directory.exists()
        self.directory.mkdir(parents=True, exist_ok=True)
        temp = self.directory / f".{STAGED_NAME}.{os.getpid()}.tmp"
        temp.unlink(missing_ok=True)
        seen: set[str] = set()
        db = sqlite3.connect(temp)
        try:
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("CREATE TABLE documents (position INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, "
                       "title TEXT NOT NULL, text TEXT NOT NULL, meta TEXT NOT NULL)")
            db.execute("CREATE TABLE about (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            rows: list[tuple] = []
            for line in snapshot_lines(snapshot, progress):
                report.read += 1
                parsed = parse_snapshot_line(line, report)
                if parsed is None:
                    if report.read == 1 and not report.kept:
                        refuse_unless_snapshot(snapshot, line)
                    continue
                record, date = parsed
                if not selection.accepts(record.categories, date):
                    continue
                if record.arxiv_id in seen:
                    report.duplicates += 1
                    continue
                seen.add(record.arxiv_id)
                document = record_document(record, date)
                rows.append((report.kept, document.id, document.title, document.text,
                             json.dumps(document.meta, ensure_ascii=False)))
                report.kept += 1
                if len(rows) >= 5000:
                    db.executemany("INSERT INTO documents VALUES (?, ?, ?, ?, ?)", rows)
                    rows = []
                if limit is not None and report.kept >= limit:
                    break
            db.executemany("INSERT INTO documents VALUES (?, ?, ?, ?, ?)", rows)
            if report.kept == 0:
                raise UsageError(f"No paper of {snapshot} matched; nothing was imported.",
                                 "Check --category and --since/--until (`paperscope corpus import --help`).")
            about = {"snapshot": str(snapshot), "filter": selection.to_json(), "limit": limit,
                     "documents": report.kept}
            db.executemany("INSERT INTO about VALUES (?, ?)",
                           [(key, json.dumps(value)) for key, value in about.items()])
            db.commit()
            db.close()
            os.replace(temp, self.staged_path)
        except BaseException:
            db.close()
            temp.unlink(missing_ok=True)
            if created:
                shutil.rmtree(self.directory, ignore_errors=True)
            raise
        return report



    def import_arxiv(self, selection: SnapshotFilter, source: PaperSource | None = None, *,
                     today: date | None = None, replace: bool = False,
                     on_batch: Callable[[UpdateReport], None] | None = None,
                     on_retry: Callable[[str, float], None] | None = None) -> UpdateReport:
        """Start this corpus from arXiv itself, with no snapshot: harvest the papers of
        `selection` (its `since` is required: the harvest asks for what changed from that day,
        which holds every paper first posted since) and keep them, as `update` does (no build:
        `build()` indexes them). Interrupted, what was harvested is kept and
        `update()` finishes the harvest; a harvest that kept nothing leaves no corpus."""
        start = _day(selection.since)
        if start is None:
            raise UsageError("Importing from arXiv needs --since: the first day of papers to harvest.")
        if self.staged_path.exists() and not replace:
            raise UsageError(f"A corpus named {self.name!r} exists already; nothing was imported.",
                             f"Bring it up to date with: paperscope corpus update {self.name} "
                             "(or pass --replace to import it anew).")
        created = not self.directory.exists()
        self.directory.mkdir(parents=True, exist_ok=True)
        temp = self.directory / f".{STAGED_NAME}.{os.getpid()}.tmp"
        temp.unlink(missing_ok=True)
        with contextlib.closing(sqlite3.connect(temp)) as db:
            db.execute("CREATE TABLE documents (position INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, "
                       "title TEXT NOT NULL, text TEXT NOT NULL, meta TEXT NOT NULL)")
            db.execute("CREATE TABLE about (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            about = {"snapshot": None, "source": "arXiv OAI-PMH", "filter": selection.to_json(),
                     "limit": None, "documents": 0, "harvesting": start.isoformat()}
            db.executemany("INSERT INTO about VALUES (?, ?)",
                           [(key, json.dumps(value)) for key, value in about.items()])
            db.commit()
        os.replace(temp, self.staged_path)
        try:
            report = self.update(source, since=start, today=today, on_batch=on_batch,
                                 on_retry=on_retry, build=False)
        except PaperscopeError as err:
            if self.about().get("documents"):
                err.hint = (f"What was harvested is kept: paperscope corpus update {self.name} "
                            "finishes the import.")
            elif created:
                shutil.rmtree(self.directory, ignore_errors=True)
            raise
        except BaseException:
            if created and not self.about().get("documents"):
                shutil.rmtree(self.directory, ignore_errors=True)
            raise
        if not self.about().get("documents"):
            if created:
                shutil.rmtree(self.directory, ignore_errors=True)
            raise UsageError(f"No paper harvested from arXiv matched; nothing was imported "
                             f"({report.harvested:,} records since {report.since}).",
                             "Check --category and --since/--until (`paperscope corpus import --help`).")
        return report

    def update(self, source: PaperSource | None = None, *, since: date | str | None = None,
               today: date | None = None, batch: int = 500,
               on_batch: Callable[[UpdateReport], None] | None = None,
               on_retry: Callable[[str, float], None] | None = None, build: bool = True,
               **build_options: Any) -> UpdateReport:
        """Harvest what arXiv added, changed or deleted since the last harvest (else since the
        newest paper's day), keep what the corpus's selection accepts, and rebuild the index,
        embedding only new or changed papers (`Collection.build`'s options).

        Changed papers are replaced where they stand, deleted ones removed, new ones appended;
        a record as the corpus holds it already is left alone, so a second run is a no-op.
        Each `batch` of records is committed as it comes (told to `on_batch`); the day
        harvested (`today`, UTC, when the harvest began) is recorded once every record is in,
        so an update killed half-way harvests the same days again and finishes the work.
        With `build` False the index is left for a later build.

        `source` is arXiv's OAI-PMH interface by default (`$PAPERSCOPE_ARXIV_OAI` for another
        address), told `on_retry(reason, seconds)` before it waits to ask again; `since`
        (YYYY-MM-DD) harvests from another day. FetchError when arXiv cannot be harvested
        (what was applied stays, and the next run asks the same days again)."""
        if isinstance(since, str):
            if not re.match(r"^\d{4}-\d{2}-\d{2}$", since) or _day(since) is None:
                raise UsageError(f"{since!r} is not a day: write YYYY-MM-DD.")
            since = _day(since)
        about = self.about()
        chosen = about.get("filter") or {}
        selection = SnapshotFilter(tuple(chosen.get("categories") or ()), chosen.get("since"),
                                   chosen.get("until"))
        # a harvest cut short left where it began: its days are asked again, whatever it added
        start = since or _day(about.get("harvesting")) or _day(about.get("harvested")) or self._newest_day()
        if start is None:
            raise UsageError(f"The corpus {self.name!r} has no dated paper to harvest from.",
                             f"Give a day: paperscope corpus update {self.name} --since YYYY-MM-DD")
        today = today or datetime.now(timezone.utc).date()
        source = source or open_source("arxiv-oai", on_retry=on_retry)
        report = UpdateReport(since=start.isoformat(), until=today.isoformat())
        pending: list = []
        # whole archives are harvested ("cs" for "cs.CL") and filtered here, so that a paper
        # whose categories left the selection is seen, and removed
        archives = tuple(dict.fromkeys(c.split(".")[0] for c in selection.categories))
        with contextlib.closing(sqlite3.connect(self.staged_path)) as db:
            with db:
                db.execute("INSERT OR REPLACE INTO about VALUES ('harvesting', ?)",
                           (json.dumps(report.since),))
            try:
                for item in source.changed_since(start, categories=archives):
                    pending.append(item)
                    if len(pending) >= batch:
                        self._apply(db, pending, selection, report)
                        pending = []
                        if on_batch:
                            on_batch(report)
            except PaperscopeError:  # the harvest was cut short: keep what came before
                self._apply(db, pending, selection, report)
                raise
            self._apply(db, pending, selection, report)
            with db:
                db.execute("INSERT OR REPLACE INTO about VALUES ('harvested', ?)",
                           (json.dumps(report.until),))
                db.execute("INSERT OR REPLACE INTO about VALUES ('updated_from', ?)",
                           (json.dumps(report.since),))
                db.execute("DELETE FROM about WHERE key = 'harvesting'")
        if build:
            report.build = self._build_unless_current(report, build_options)
        return report

    def _build_unless_current(self, report: UpdateReport, build_options: dict[str, Any]) -> BuildReport:
        """The build after an update. When the update changed nothing and the index was built
        by an update from the documents as they are (the `revision` its `_apply`s count, and
        the manifest as that build left it), nothing is read: an update that finds nothing
        new takes the time of its requests, not of a pass over every document."""
        about = self.about()
        try:
            manifest = self.store.manifest_path.stat().st_mtime_ns
        except OSError:
            manifest = None
        revision = about.get("revision", 0)
        if (not report.touched and not build_options.get("full") and manifest is not None
                and about.get("indexed") == {"revision": revision, "manifest": manifest}):
            return BuildReport(total=about.get("documents") or 0, written=False)
        built = self.collection.build(**build_options)
        with contextlib.closing(sqlite3.connect(self.staged_path)) as db, db:
            db.execute("INSERT OR REPLACE INTO about VALUES ('indexed', ?)", (json.dumps(
                {"revision": revision, "manifest": self.store.manifest_path.stat().st_mtime_ns}),))
        return built

    def _newest_day(self) -> date | None:
        """The first day of the newest paper's date (YYYY-MM-DD, YYYY-MM or YYYY)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.staged_path}?mode=ro", uri=True)) as db:
            newest = db.execute("SELECT max(json_extract(meta, '$.date')) FROM documents").fetchone()[0]
        return _day(newest)

    def _apply(self, db: sqlite3.Connection, items: list, selection: SnapshotFilter,
               report: UpdateReport) -> None:
        """Apply harvested records and deletions in one transaction (positions stay 0..n-1),
        under the index's lock, so that no build reads the documents half-changed."""
        if not items:
            return
        removed, before = False, report.touched
        with self.store.write_lock(), db:
            for item in items:
                report.harvested += 1
                key = item.key if isinstance(item, Deleted) else item.arxiv_id
                row = db.execute("SELECT position, title, text, meta FROM documents WHERE id = ?",
                                 (key,)).fetchone()
                day = "" if isinstance(item, Deleted) else (
                    getattr(item, "created", "") or month_from_arxiv_id(item.arxiv_id) or "")
                if isinstance(item, Deleted) or not selection.accepts(item.categories, day):
                    if row is not None:
                        db.execute("DELETE FROM documents WHERE id = ?", (key,))
                        report.deleted += 1
                        removed = True
                    elif not isinstance(item, Deleted):
                        report.outside += 1
                    continue
                document = record_document(item, day)
                values = (document.title, document.text, json.dumps(document.meta, ensure_ascii=False))
                if row is None:
                    db.execute("INSERT INTO documents VALUES ((SELECT coalesce(max(position), -1) + 1 "
                               "FROM documents), ?, ?, ?, ?)", (document.id, *values))
                    report.added += 1
                elif tuple(row[1:]) != values:
                    db.execute("UPDATE documents SET title = ?, text = ?, meta = ? WHERE id = ?",
                               (*values, document.id))
                    report.changed += 1
                else:
                    report.unchanged += 1
            if removed:  # close the gaps, keeping the order
                db.execute("UPDATE documents SET position = -1 - position")
                db.execute("UPDATE documents SET position = r.n FROM (SELECT id, row_number() OVER "
                           "(ORDER BY position DESC) - 1 AS n FROM documents) AS r "
                           "WHERE documents.id = r.id")
            count = db.execute("SELECT count(*) FROM documents").fetchone()[0]
            db.execute("INSERT OR REPLACE INTO about VALUES ('documents', ?)", (json.dumps(count),))
            if report.touched > before:  # the documents' revision, for _build_unless_current
                db.execute("INSERT OR REPLACE INTO about VALUES ('revision', coalesce((SELECT "
                           "CAST(value AS INTEGER) FROM about WHERE key = 'revision'), 0) + 1)")

    def new_since(self) -> str:
        """The day the last completed update harvested from (YYYY-MM-DD): the papers first
        posted since then are what that update brought ("new" to `discover --new`). A
        UsageError when the corpus was never updated."""
        since = self.about().get("updated_from")
        if not isinstance(since, str) or _day(since) is None:
            raise UsageError(f"The corpus {self.name!r} was never updated, so nothing is new in it yet.",
                             f"Give a day instead (--since YYYY-MM-DD), or update it first: "
                             f"paperscope corpus update {self.name}")
        return since

    def document(self, doc_id: str) -> Document | None:
        """One imported paper by id, from the import itself (no index needed)."""
        documents = StagedDocuments(self.staged_path)
        try:
            return documents.find(doc_id)
        finally:
            documents.close()

    def paper_json(self, paper_id: str) -> dict[str, Any]:
        """One paper with the fields of a catalogue entry's `show --json` (no section, tags or
        note; `date` and `categories` besides), for `show --corpus`; an unknown id is an
        UnknownEntryError."""
        document = self.document(paper_id.strip())
        if document is None:
            raise UnknownEntryError(f"No paper {paper_id!r} in the corpus {self.name!r}.",
                                    "A corpus's papers go by their arXiv ids: find them with "
                                    f"paperscope search QUESTION --corpus {self.name}")
        meta = document.meta
        return {"id": document.id, "title": latex_as_text(document.title), "section": None,
                "kind": meta.get("kind"), "url": meta.get("url"), "arxiv_id": meta.get("arxiv_id"),
                "year": meta.get("year"), "authors": list(meta.get("authors") or ()),
                "date": meta.get("date"), "categories": list(meta.get("categories") or ()),
                "tags": [], "note": None, "abstract": latex_as_text(document.text) or None,
                "summary": None}

    def about(self) -> dict[str, Any]:
        """What the import recorded: the snapshot, the selection, the number of documents."""
        with contextlib.closing(sqlite3.connect(f"file:{self.staged_path}?mode=ro", uri=True)) as db:
            return {key: json.loads(value) for key, value in db.execute("SELECT key, value FROM about")}

    def build(self, **options: Any) -> BuildReport:
        """Embed what is not embedded yet (resuming an interrupted build) and commit the index
        (`Collection.build`'s options)."""
        return self.collection.build(**options)

    def summary(self) -> dict[str, Any]:
        """The corpus as `corpus list` shows it: size, selection and index (or why it is unusable)."""
        about = self.about()
        try:
            manifest, problem = self.store.read_manifest(), ""
        except PaperscopeError as err:
            manifest, problem = None, err.message
        return {"name": self.name, "documents": about.get("documents"), "filter": about.get("filter"),
                "snapshot": about.get("snapshot"), "indexed": manifest.count if manifest else None,
                "model": manifest.model if manifest else None,
                "search": manifest.search if manifest else None,
                "built_at": self.store.built_at() if manifest else None,
                "problem": problem or None, "path": str(self.directory)}

    def remove(self) -> None:
        with self.store.write_lock(wait=False):
            shutil.rmtree(self.directory / "index", ignore_errors=True)
        shutil.rmtree(self.directory, ignore_errors=True)


def check_day(value: str) -> str:
    """`value` when it is a date written YYYY, YYYY-MM or YYYY-MM-DD; else a UsageError."""
    if _day(value) is None:
        raise UsageError(f"{value!r} is not a date: write YYYY, YYYY-MM or YYYY-MM-DD.")
    return value


def _day(value: Any) -> date | None:
    """The first day of a YYYY-MM-DD, YYYY-MM or YYYY date; None for anything else."""
    if not isinstance(value, str) or not _MONTH.match(value):
        return None
    try:
        return date.fromisoformat((value + "-01-01")[:10])
    except ValueError:
        return None


def list_corpora() -> list[str]:
    folder = corpora_dir()
    return sorted(p.name for p in folder.iterdir() if (p / STAGED_NAME).is_file()) if folder.is_dir() else []

