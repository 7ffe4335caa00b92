"""The Library facade: one catalogue, its record cache and its index.

    from paperscope import Library
    library = Library.open()              # the library around the current folder
    for hit in library.search("parameter-efficient finetuning", k=3).hits:
        print(hit.rank, hit.document.title)

Also the front door of everything else a command opens (`open_collection` for corpora and BEIR
folders, `Corpus`, `run_evaluation`, `find_papers`): the CLI and the servers import this module
and never the index code beneath it.
"""


from __future__ import annotations

from .bibtex import bibtex_entry, citation_keys
from .catalogue import (
    ID_PATTERN,
    URL_PATTERN,
    CatalogueFile,
    check_fields,
    entry_text,
    insert_entry,
    move_entry,
    parse_entry_text,
    remove_entry,
    rename_entry,
    replace_entry,
    slug,
)
from .citations import ImportReport, imported, place, read_citation_file, to_csl_json
from .errors import FetchError
from .sources import fetch_ids, given_sources, open_source, source_for
from .sources.ids import parse_doi, split_id

__all__ = ["MAX_QUERY_CHARS", "MODES", "Collection", "Corpus", "Filters", "Freshness", "Library",
           "SearchOutcome", "SnapshotFilter", "check_day", "check_scheme", "corpora_dir", "discovery_since",
           "entry_json",
           "find_papers", "list_corpora", "open_collection", "ray_embedder", "run_evaluation"]

import collections
import contextlib
import dataclasses
import datetime
import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .beir import corpus_file, read_corpus
from .catalogue import Catalogue, normalise_arxiv_id, parse_catalogue
from .collection import Collection, Filters, SearchOutcome, check_tags
from .corpora import Corpus, SnapshotFilter, check_day, corpora_dir, list_corpora
from .discover import discover as find_papers
from .distributed import ray_embedder
from .errors import (
    CatalogueChangedError,
    PaperscopeError,
    UnknownEntryError,
    UsageError,
)
from .evaluate import evaluate as run_evaluation
from .files import LibraryPaths, corpus_index_dir, file_signature, find_library, read_text
from .index import IndexStore, documents_digest, meta_json
from .indexer import check_scheme
from .ingest import IngestReport, catalogue_documents, entry_json, ingest
from .records import KINDS, WEB_KINDS, Document, Entry, PaperRecord
from .search import MAX_QUERY_CHARS, MODES
from .settings import configured_model, settings_change
from .text import DEFAULT_SCHEME, no_abstract_yet

if TYPE_CHECKING:  # numpy, FAISS and the encoders load only when a command needs them
    from .embedding import Encoder
    from .index import Manifest, OpenIndex
    from .indexer import BuildReport


@dataclass
class AddResult:
    """The entry `add` wrote (or found already there), and the rebuild it ran."""

    entry: Entry
    already: bool
    build: BuildReport | None = None
    created_section: bool = False  # the entry's section is new
    not_fetched: str | None = None  # why its text could not be fetched (added with the summary given)


@dataclass
class EditResult:
    """The entry an editing command changed (as it is now), and the rebuild it ran."""

    entry: Entry
    changed: bool
    build: BuildReport | None = None


def close_ids(key: str, entries: Sequence[Entry], most: int = 3) -> list[str]:
    """The ids a mistyped `key` may have meant: ids spelt nearly alike (a ratio of 0.6 at
    least, and near the best one's), then entries whose title has `key` as a whole word."""
    key = key.strip().lower()
    if not key:
        return []
    scored = sorted(((difflib.SequenceMatcher(None, key, e.id).ratio(), e.id) for e in entries),
                    key=lambda pair: -pair[0])
    best = scored[0][0] if scored else 0.0
    close = [i for ratio, i in scored if ratio >= max(0.6, best - 0.1)][:most]
    word = re.compile(rf"(?<![a-z0-9]){re.escape(key)}(?![a-z0-9])", re.IGNORECASE)
    close += [e.id for e in entries if word.search(e.title) and e.id not in close]
    return close[:most]


@dataclass(frozen=True)
class Freshness:
    """Whether the catalogue's index is up to date: the one definition every command reports.

    Up to date means the index holds every entry of the catalogue as it is now, each with its
    full text: `build` has nothing to embed and no arXiv abstract waits to be fetched. Else the
    `state` says what is left: "waiting for abstracts" (the index matches the catalogue, but the
    entries in `waiting` are searched by their title or summary until `paperscope ingest`
    fetches their abstracts), "out of date" (`build` would change the index), "no index" or
    "damaged" (`problem` says why). Entries in `needs_summary` are searched by their titles until
    someone writes their summary; that is the catalogue's business, not the index's."""

    STATES = ("up to date", "waiting for abstracts", "out of date", "no index", "damaged")

    index: str  # "current", "out of date", "none" or "damaged"
    indexed: int = 0
    new: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()
    metadata_changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    rebuild_reason: str = ""
    problem: str = ""
    waiting: tuple[str, ...] = ()  # arXiv entries without their abstract yet
    needs_summary: tuple[str, ...] = ()
    manifest: Manifest | None = None

    @property
    def up_to_date(self) -> bool:
        return self.index == "current" and not self.waiting

    @property
    def state(self) -> str:
        if self.index == "current":
            return "waiting for abstracts" if self.waiting else "up to date"
        return {"out of date": "out of date", "none": "no index", "damaged": "damaged"}[self.index]

    def waiting_notice(self, first: Sequence[str] = ()) -> str:
        """The line that names the entries waiting for their abstract ('' when none), those
        among `first` (just added, say) named first."""
        return waiting_notice([*(i for i in self.waiting if i in first),
                               *(i for i in self.waiting if i not in first)])


def waiting_notice(ids: Sequence[str], shown: int = 8) -> str:
    """The one wording, wherever the state is shown, of arXiv entries waiting for their abstract."""
    if not ids:
        return ""
    names = ", ".join(ids[:shown]) + (f" and {len(ids) - shown} more" if len(ids) > shown else "")
    it = "it" if len(ids) == 1 else "them"
    return (f"{no_abstract_yet(len(ids))}: {names}. Fetch {it} with: paperscope ingest "
            "(offline: paperscope ingest --from-snapshot FILE)")


def _entry_fields(source: str, key: str | None, record: PaperRecord | None, *,
                  title: str, entry_id: str, kind: str | None, authors: list[str],
                  year: int | None, tags: list[str], summary: str | None, note: str | None) -> dict:
    """The fields `add` writes for one entry (`key`: its arXiv id, `doi:` or `url:` key), in
    the file's usual order."""
    doi = key[4:] if key and key.startswith("doi:") else None
    arxiv_id = key if key and not doi and not key.startswith("url:") else None
    fields = {"id": entry_id, "title": title,
              "url": f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else
                     f"https://doi.org/{doi}" if doi else source,
              "kind": kind or ("paper" if arxiv_id or doi else "blog"), "arxiv": arxiv_id, "doi": doi,
              "authors": authors, "year": year, "tags": tags, "summary": summary, "note": note}
    return {key: value for key, value in fields.items() if value}


def _paper_key(source: str, kind: str | None = None) -> str | None:
    """What `add` fetches for `source`: its arXiv id (an arXiv DOI, 10.48550/arXiv.…, too),
    `doi:<doi>` for another DOI, `url:<link>` for another link added as a blog post or
    repository (`kind`, its page's own text); None for anything else."""
    if arxiv_id := normalise_arxiv_id(source):
        return arxiv_id
    doi = parse_doi(source)
    if doi and doi.startswith("10.48550/arxiv."):
        return normalise_arxiv_id(doi.removeprefix("10.48550/arxiv.")) or f"doi:{doi}"
    if doi:
        return f"doi:{doi}"
    return f"url:{source}" if kind in WEB_KINDS and URL_PATTERN.match(source) else None


def _named(key: str) -> str:
    """A record key as messages name it: `arXiv 2106.09685`, `DOI 10.18653/…`, the link."""
    scheme, local = split_id(key)
    return f"DOI {local}" if scheme == "doi" else local if scheme == "url" else f"arXiv {key}"


class Library:
    """A reading list: catalogue.yaml plus the index/ folder beside it."""

    def __init__(self, paths: LibraryPaths, encoder: Encoder | None = None):
        self.paths = paths
        self.store = IndexStore(paths.index_dir)
        self.encoder = encoder  # None: the configured model, loaded when first needed
        self._catalogue: Catalogue | None = None
        self._collection: Collection | None = None
        self._documents: tuple[Catalogue, object, tuple[list[Document], list[Entry]]] | None = None

    @classmethod
    def open(cls, path: str | Path | None = None, encoder: Encoder | None = None) -> Library:
        """The library at `path` (a folder with catalogue.yaml), else around the current folder.
        `encoder` replaces the configured model (tests pass a fake one)."""
        return cls(find_library(Path(path) if path else None), encoder)

    # -- the catalogue ------------------------------------------------------------

    @property
    def catalogue(self) -> Catalogue:
        if self._catalogue is None:
            path = self.paths.catalogue
            self._catalogue = parse_catalogue(read_text(path, "Catalogue"), path)
        return self._catalogue

    def records(self) -> dict[str, PaperRecord]:
        return self.store.read_records()

    def entry(self, key: str) -> Entry:
        """The entry with this id (or arXiv id); an unknown one suggests the closest ids."""
        catalogue = self.catalogue
        found = catalogue.get(key.strip())
        if found is None and (arxiv_id := normalise_arxiv_id(key)):
            found = catalogue.by_arxiv_id().get(arxiv_id)
        if found is None and (doi := parse_doi(key)):
            found = catalogue.by_doi().get(doi)
        if found is None:
            close = close_ids(key, catalogue.entries)
            hint = f"Did you mean: {', '.join(close)}?" if close else \
                "See the ids with: paperscope list"
            raise UnknownEntryError(f"No entry with id {key!r}.", hint)
        return found

    def entries(self, *, section: str | None = None, sections: Sequence[str] = (),
                tags: Sequence[str] = ()) -> list[Entry]:
        """The catalogue's entries, in order: of one `section` or any of `sections` (compared
        without case) and carrying any of `tags`; an unknown section or tag is a UsageError."""
        catalogue = self.catalogue
        entries = list(catalogue.entries)
        wanted = [*([section] if section is not None else []), *sections]
        if wanted:
            unknown = [name for name in wanted if catalogue.section_named(name) is None]
            if unknown:
                raise UsageError(f"No section {', '.join(map(repr, unknown))}.",
                                 f"Sections: {', '.join(catalogue.sections)}")
            folded = {name.strip().casefold() for name in wanted}
            entries = [e for e in entries if e.section.casefold() in folded]
        if tags:
            check_tags(tags, catalogue.tags)
            tagged = {tag.casefold() for tag in tags}
            entries = [e for e in entries if tagged & {tag.casefold() for tag in e.tags}]
        return entries

    def cite(self, ids: Sequence[str] = ()) -> str:
        """BibTeX for the entries `ids` (ids or arXiv ids; every entry when empty), with
        citation keys that stay stable as the catalogue grows."""
        entries = [self.entry(key) for key in ids] if ids else list(self.catalogue.entries)
        records = self.records()
        keys = citation_keys(self.catalogue.entries, records)
        return "\n".join(bibtex_entry(entry, records.get(entry.record_key) if entry.record_key else None,
                                      keys[entry.id]) for entry in entries)

    def documents(self) -> tuple[list[Document], list[Entry]]:
        """(documents of every entry with text, entries still missing an abstract), computed
        again only when the catalogue or the record cache changed."""
        # The catalogue object itself, not its id(): a replaced catalogue's id can be reused
        # by the next one, which would keep the old documents (and an edit would not build).
        catalogue, records = self.catalogue, file_signature(self.store.records_path)
        cached = self._documents
        if cached is None or cached[0] is not catalogue or cached[1] != records:
            cached = self._documents = (catalogue, records,
                                        catalogue_documents(catalogue, self.records()))
        return cached[2]

    @property
    def collection(self) -> Collection:
        """The catalogue's index as a `Collection`: searched, built and kept up to date."""
        if self._collection is None:
            self._collection = Collection(
                self.store, lambda: self.documents()[0], name="catalogue", encoder=self.encoder,
                model=self.model, scheme=DEFAULT_SCHEME, source="catalogue",
                missing_hint="Build it with: paperscope build", auto_update=True)
        return self._collection

    # -- writing ------------------------------------------------------------------

    def ingest(self, *, snapshot: Path | None = None, refresh: bool = False, source=None,
               progress: Callable[[int], None] | None = None,
               on_plan: Callable[[int, str], None] | None = None,
               wait: bool = True, on_wait: Callable[[], None] | None = None) -> IngestReport:
        """Fetch the metadata of arXiv entries not in the record cache (all with `refresh`)."""
        with self.store.write_lock(wait=wait, on_wait=on_wait):
            return ingest(self.catalogue, self.store, source=source, snapshot=snapshot,
                          refresh=refresh, progress=progress, on_plan=on_plan)

    def build(self, *, full: bool = False, model: str | None = None,
              progress: Callable[[int], None] | None = None,
              on_encoder: Callable[[str, int, str], None] | None = None,
              wait: bool = True, on_wait: Callable[[], None] | None = None
              ) -> tuple[BuildReport, list[Entry]]:
        """Bring the index up to date with the catalogue; returns the report and the
        entries left out because they still have no text."""
        report = self.collection.build(full=full, model=model, progress=progress,
                                       on_encoder=on_encoder, wait=wait, on_wait=on_wait)
        return report, self.documents()[1]

    def add(self, source: str, **options) -> AddResult:
        """Append a paper (arXiv id or URL) or another link to the catalogue; see `add_many`."""
        results, report = self.add_many([source], **options)
        return dataclasses.replace(results[0], build=report)

    def add_many(self, sources: Sequence[str], *, section: str | None = None,
                 summary: str | None = None, title: str | None = None, kind: str | None = None,
                 entry_id: str | None = None, authors: Sequence[str] = (), year: int | None = None,
                 tags: Sequence[str] = (), note: str | None = None, snapshot: Path | None = None,
                 corpus: str | None = None, api=None, build: bool = True,
                 on_encoder: Callable[[str, int, str], None] | None = None,
                 wait: bool = True, on_wait: Callable[[], None] | None = None
                 ) -> tuple[list[AddResult], BuildReport | None]:
        """Append papers (arXiv ids or URLs) or other links to one section of the catalogue,
        keeping the file's comments and layout, then rebuild the index incrementally. Either
        every source is added or nothing changes. While arXiv cannot be reached, one arXiv id
        given with `title` and `summary` is added without its record."""
        sources = list(dict.fromkeys(s.strip() for s in sources))
        if not sources:
            raise UsageError("Name at least one arXiv id or link to add.")
        if len(sources) > 1 and (title or summary or entry_id):
            raise UsageError("--title, --summary and --id describe one entry: add the others "
                             "one at a time.")
        if kind is not None and kind not in KINDS:
            raise UsageError(f"Unknown kind {kind!r}: choose one of {', '.join(KINDS)}.")
        catalogue = self.catalogue
        arxiv_ids = {source: _paper_key(source, kind) for source in sources}  # arXiv id, doi:…, url:…
        for source, arxiv_id in arxiv_ids.items():
            if arxiv_id is None and not URL_PATTERN.match(source):
                raise UsageError(f"{source!r} is neither an arXiv id, a DOI nor an http(s) link.")
            if arxiv_id is None and not (title and summary):
                raise UsageError("An entry that is not on arXiv needs --title and --summary "
                                 "(the summary is the text search reads), or --kind blog or "
                                 "--kind repo to fetch its page's own text.")
        if year is not None and not 1000 <= year <= datetime.date.today().year + 1:
            raise UsageError(f"--year {year} is not a year of publication: give one from 1000 "
                             f"to {datetime.date.today().year + 1}.")
        new = [s for s, a in arxiv_ids.items() if self._existing(catalogue, s, a) is None]
        if new and entry_id is not None:
            if not ID_PATTERN.match(entry_id):
                raise UsageError(f"{entry_id!r} is not an id: use lower-case letters, digits and "
                                 "dashes (for example `lora` or `gpt-3`).")
            if catalogue.get(entry_id) is not None:
                raise UsageError(f"The id {entry_id!r} is already taken.",
                                 "Choose another with --id, or leave --id out for one made from "
                                 "the title.")
        if new:
            self._section_for_add(catalogue, section)  # before any network
        fetch = [a for s in new if (a := arxiv_ids[s])]
        failures: dict[str, str] = {}
        records = self._fetch_records(fetch, snapshot=snapshot, corpus=corpus, api=api,
                                      offline_ok=bool(title and summary), failures=failures)
        options: dict[str, Any] = {"kind": kind, "authors": list(authors), "year": year, "tags": list(tags),
                   "summary": summary, "note": note}
        results: list[AddResult] = []

        def change(text: str, current: Catalogue) -> str:
            results.clear()
            taken = {e.id for e in current.entries}
            for source, arxiv_id in arxiv_ids.items():
                existing = self._existing(current, source, arxiv_id)
                if existing is not None:
                    results.append(AddResult(existing, already=True))
                    continue
                record = records.get(arxiv_id) if arxiv_id else None
                entry_title = title or (record.title if record else None)
                assert entry_title, "_fetch_records returned a record for each id given no --title"
                target = self._section_for_add(current, section)
                fields = _entry_fields(source, arxiv_id, record, title=entry_title,
                                       entry_id=entry_id or slug(entry_title, taken), **options)
                results.append(AddResult(check_fields(fields, target), already=False,
                                         created_section=current.section_named(target) is None,
                                         not_fetched=failures.get(arxiv_id or "")))
                taken.add(fields["id"])
                text = insert_entry(text, target, fields)
            return text

        with self.store.write_lock(wait=wait, on_wait=on_wait):
            edited = self._edit_catalogue(change)
            if records:
                cached = self.store.read_records()
                cached.update(records)
                self.store.write_records(cached)
        results = [dataclasses.replace(r, entry=edited.get(r.entry.id) or r.entry) for r in results]
        added = any(not r.already for r in results)
        report = self.build(on_encoder=on_encoder, wait=wait, on_wait=on_wait)[0] \
            if build and added else None
        return results, report

    def import_citations(self, path: Path, fmt: str, *, section: str | None = None,
                         section_field: str | None = None, build: bool = True,
                         on_encoder: Callable[[str, int, str], None] | None = None,
                         wait: bool = True, on_wait: Callable[[], None] | None = None
                         ) -> tuple[ImportReport, BuildReport | None]:
        """Append the references of a BibTeX or CSL JSON file (`fmt`: bibtex, csl-json) to the
        catalogue, offline, skipping those it has; each goes to its `section_field` value, else
        `section`, else the only section. Unreadable references are reported, not fatal."""
        found = read_citation_file(path, fmt, section_field)
        outcome: list[ImportReport] = []

        def change(text: str, current: Catalogue) -> str:
            try:
                default = self._section_for_add(current, section)
            except UsageError:
                if section_field is None:
                    raise
                default = None  # only the entries without the field need one: they are refused
            placement, refused = place(found.citations, current, section=section,
                                       default_section=default)
            outcome[:] = [imported(path.name, placement, (*found.problems, *refused))]
            for name, entries in placement.sections.items():
                for fields in entries:
                    text = insert_entry(text, name, fields)
            return text

        with self.store.write_lock(wait=wait, on_wait=on_wait):
            self._edit_catalogue(change)
        report = outcome[0]
        added = any(report.placement.sections.values())
        return report, (self.build(on_encoder=on_encoder, wait=wait, on_wait=on_wait)[0]
                        if build and added else None)

    def csl_json(self, ids: Sequence[str] = ()) -> str:
        """CSL JSON for the entries `ids` (every entry when empty), ids being `cite`'s keys."""
        entries = [self.entry(key) for key in ids] if ids else list(self.catalogue.entries)
        records = self.records()
        return to_csl_json(entries, records, citation_keys(self.catalogue.entries, records))

    @staticmethod
    def _existing(catalogue: Catalogue, source: str, arxiv_id: str | None) -> Entry | None:
        if arxiv_id and arxiv_id.startswith("url:"):
            arxiv_id = None  # a link is found by its address
        if arxiv_id and arxiv_id.startswith("doi:"):
            return catalogue.by_doi().get(arxiv_id[4:])
        return (catalogue.by_arxiv_id().get(arxiv_id) if arxiv_id else
                next((e for e in catalogue.entries if e.url == source), None))

    @staticmethod
    def _section_for_add(catalogue: Catalogue, section: str | None) -> str:
        """The section an added entry goes to: the one named (an existing one compared without
        case, else a new one), or the only one; with several, one must be named."""
        if section is not None:
            if not section.strip():
                raise UsageError("--section must not be empty.")
            return catalogue.section_named(section) or " ".join(section.split())
        if len(catalogue.sections) > 1:
            raise UsageError("Say which section the entry goes to, with --section.",
                             f"Sections: {', '.join(catalogue.sections)}")
        return catalogue.sections[0] if catalogue.sections else "Reading list"

    def _fetch_records(self, arxiv_ids: list[str], *, snapshot: Path | None, corpus: str | None,
                       api, offline_ok: bool, failures: dict[str, str]) -> dict[str, PaperRecord]:
        """The records of `arxiv_ids` from a corpus, a snapshot or the API (`api`, else the
        source registered for the ids); FetchError when one is missing (unless arXiv is
        unreachable, or the id is a DOI or a link, and `offline_ok`: the reasons go to
        `failures` then)."""
        if not arxiv_ids:
            return {}
        pages = [a for a in arxiv_ids if a.startswith("url:")]
        if pages and (corpus is not None or snapshot is not None):
            raise UsageError("--corpus and --from-snapshot hold arXiv papers: add a blog post or "
                             "repository without them.")
        source = (open_source("corpus", corpus) if corpus is not None else
                  open_source("arxiv-snapshot", snapshot) if snapshot is not None else
                  api or source_for(arxiv_ids[0]))  # api: one source, or several (arXiv, DOI)
        result = fetch_ids(arxiv_ids, source)
        advice = (f" (its papers: paperscope search QUERY --corpus {corpus}; or add it with "
                  "--from-snapshot FILE)" if corpus is not None else "")
        given = given_sources(source)
        labels = {a: given[scheme].label if (scheme := split_id(a)[0]) in given else scheme
                  for a in arxiv_ids}
        failures.update({a: result.failures.get(a) or f"not in {labels[a]}{advice}"
                         for a in arxiv_ids if a not in result.records})
        unreachable = result.unreachable is not None
        # given a title and summary, an entry is added without its record while its source
        # cannot be reached, and a DOI or a link also when no source has its text
        without = unreachable or all(a.startswith(("doi:", "url:")) for a in failures)
        if failures and not (without and offline_ok):
            offline = ("Add it offline with --from-snapshot FILE (an arXiv metadata snapshot), or with "
                       if any(not a.startswith(("doi:", "url:")) for a in failures) else "Add it with ")
            hint = (offline + "--title and --summary (`paperscope ingest` fetches its abstract later)."
                    if unreachable else "Add it with --title and --summary (the summary is the text "
                    "search reads)." if without else None)
            reasons = "; ".join(f"{_named(a)}: {why}" for a, why in failures.items())
            raise FetchError(f"Could not get {reasons}. Nothing was changed.", failures, hint=hint)
        return result.records

    def remove(self, entry_id: str, **options) -> EditResult:
        """Delete an entry from the catalogue, then update the index."""
        entry = self.entry(entry_id)
        return self._edit(entry, lambda text, current: remove_entry(text, entry.id), **options)

    def move(self, entry_id: str, section: str, *, create: bool = False, **options) -> EditResult:
        """Move an entry, as written, to the end of another section (a new one with `create`)."""
        entry = self.entry(entry_id)
        target = self.catalogue.section_named(section)
        if target is None and not create:
            raise UsageError(f"No section {section!r}.",
                             f"Sections: {', '.join(self.catalogue.sections)}. "
                             "Pass --create to make a new one.")
        if target == entry.section:
            return EditResult(entry, changed=False)
        target = target or " ".join(section.split())
        return self._edit(entry, lambda text, current: move_entry(text, entry.id, target),
                          new_id=entry.id, **options)

    def rename(self, old: str, new: str, **options) -> EditResult:
        """Give an entry another id."""
        entry = self.entry(old)
        if not ID_PATTERN.match(new):
            raise UsageError(f"{new!r} is not an id: use lower-case letters, digits and dashes "
                             "(for example `lora` or `gpt-3`).")
        if new == entry.id:
            return EditResult(entry, changed=False)
        if self.catalogue.get(new) is not None:
            raise UsageError(f"The id {new!r} is already taken.")
        return self._edit(entry, lambda text, current: rename_entry(text, entry.id, new),
                          new_id=new, **options)

    def edit(self, entry_id: str, editor: Callable[[str], str],
             retry: Callable[[PaperscopeError], bool] = lambda error: False, **options) -> EditResult:
        """Let `editor` change the entry's YAML (it gets the text, returns the new text);
        invalid text is refused, or handed back to `editor` while `retry(error)` says so.
        Nothing is written when the file changed meanwhile (CatalogueChangedError)."""
        entry = self.entry(entry_id)
        start = CatalogueFile.read(self.paths.catalogue)
        original = text = entry_text(start.text, entry.id)
        while True:
            text = editor(text)
            if not text.strip() or text == original:
                return EditResult(entry, changed=False)
            try:
                new_id = parse_entry_text(text, entry.section, f"entry {entry.id!r}").id
                edited = replace_entry(start.text, entry.id, text)
                break
            except PaperscopeError as error:
                if not retry(error):
                    raise
        return self._edit(entry, lambda current, catalogue: edited, new_id=new_id,
                          expected=start.digest, **options)

    def _edit(self, entry: Entry, change: Callable[[str, Catalogue], str], *,
              new_id: str | None = None, expected: str | None = None, build: bool = True,
              on_encoder: Callable[[str, int, str], None] | None = None,
              wait: bool = True, on_wait: Callable[[], None] | None = None) -> EditResult:
        with self.store.write_lock(wait=wait, on_wait=on_wait):
            edited = self._edit_catalogue(change, expected=expected, entry_id=entry.id)
        report = self.build(on_encoder=on_encoder, wait=wait, on_wait=on_wait)[0] if build else None
        current = edited.get(new_id) if new_id else entry
        assert current is not None  # _edit_catalogue wrote it under new_id
        return EditResult(current, changed=True, build=report)

    def _edit_catalogue(self, change: Callable[[str, Catalogue], str], *,
                        expected: str | None = None, entry_id: str | None = None) -> Catalogue:
        """Read catalogue.yaml, apply `change(text, catalogue)` and write the result if it
        differs; the caller holds the lock. With `expected`, the file must still have that hash."""
        self._catalogue = None
        current = CatalogueFile.read(self.paths.catalogue)
        if expected is not None and current.digest != expected:
            raise CatalogueChangedError(f"{self.paths.catalogue} changed while the entry was "
                                        "edited; nothing was written.",
                                        "Run the command again: it starts from the file as it is now.")
        catalogue = current.catalogue
        if entry_id is not None and catalogue.get(entry_id) is None:
            raise UnknownEntryError(f"The entry {entry_id!r} was removed meanwhile; nothing was written.")
        text = change(current.text, catalogue)
        if text != current.text:
            current.write(text)
            catalogue = parse_catalogue(text, self.paths.catalogue)
        self._catalogue = catalogue
        return catalogue

    # -- reading ------------------------------------------------------------------

    @property
    def model(self) -> str:
        """The embedding model of this library: the only one its queries are encoded with."""
        return self.encoder.model_name if self.encoder else configured_model()

    def index(self, *, update: bool = True) -> tuple[OpenIndex, list[str]]:
        """The index, brought up to date with the catalogue where that needs no network
        (when `update`); and notices about what is stale or missing."""
        index, notices = self.collection.index(update=update)
        return index, [*notices, *self._missing_notices()]

    def _missing_notices(self) -> list[str]:
        notice = waiting_notice([entry.id for entry in self.documents()[1]])
        return [notice] if notice else []

    def search(self, query: str, *, k: int = 10, mode: str = "hybrid",
               filters: Filters | None = None, update: bool = True,
               min_score: float = 0.0) -> SearchOutcome:
        """The `k` entries that best answer `query` (those scoring `min_score` or more)."""
        return self.collection.search(query, k=k, mode=mode, filters=filters, update=update,
                                      notices=self._missing_notices(), min_score=min_score)

    def related(self, entry_id: str, *, k: int = 5, mode: str = "hybrid",
                filters: Filters | None = None, update: bool = True,
                min_score: float = 0.0) -> SearchOutcome:
        """The `k` entries closest to the entry `entry_id`, itself excluded (those scoring
        `min_score` or more)."""
        entry = self.entry(entry_id)
        return self.collection.related(
            entry.id, k=k, mode=mode, filters=filters, update=update, notices=self._missing_notices(),
            missing=f"The entry {entry.id!r} is not in the index yet (it has no abstract).",
            min_score=min_score)

    def freshness(self, verify: bool = False) -> Freshness:
        """Whether the index is up to date: the one answer `build`, `status`, `search`, `add`
        and `init` all report (see `Freshness`). With `verify`, every index byte is hashed."""
        documents, waiting = self.documents()
        problem, manifest = "", None
        try:
            manifest = self.store.read_manifest()
            indexed = self.store.indexed_hashes(manifest) if manifest else {}
            shown = self.store.indexed_meta(manifest) if manifest else {}
            if manifest and verify:
                self.store.verify()
            if manifest:  # whatever `search` would refuse, status reports
                with contextlib.closing(self.store.open()) as index:
                    collections.deque(index.all_documents(), maxlen=0)
        except PaperscopeError as err:
            indexed, shown, problem = {}, {}, err.message
        current = {d.id: d.content_hash for d in documents}
        stale = sorted(i for i in current if i in indexed and indexed[i] != current[i])
        metadata = sorted(d.id for d in documents if d.id in indexed and d.id not in stale
                          and shown.get(d.id) != meta_json(d.meta))
        new = sorted(i for i in current if i not in indexed)
        removed = sorted(i for i in indexed if i not in current)
        rebuild_reason = settings_change(manifest, self.model, DEFAULT_SCHEME) if manifest else ""
        if problem:
            index_state = "damaged"
        elif manifest is None:
            index_state = "none"
        elif stale or metadata or new or removed or rebuild_reason \
                or manifest.documents_digest != documents_digest(documents):
            index_state = "out of date"
        else:
            index_state = "current"
        return Freshness(index=index_state, indexed=len(indexed), new=tuple(new), stale=tuple(stale),
                         metadata_changed=tuple(metadata), removed=tuple(removed),
                         rebuild_reason=rebuild_reason, problem=problem,
                         waiting=tuple(e.id for e in waiting),
                         needs_summary=tuple(e.id for e in self.catalogue.entries if e.needs_summary),
                         manifest=manifest)

    def status(self, verify: bool = False) -> dict:
        """`freshness` as JSON, with what the index holds. `state` is one of `Freshness.STATES`
        and `up_to_date` is true in the first only; `missing_text` names the arXiv entries
        waiting for their abstract (`paperscope ingest` fetches them), `metadata_changed` the
        entries whose shown metadata (section, link, year...) changed without their text,
        `needs_summary` those searched by their titles until someone writes their summary, and
        `rebuild_reason` why the next build would embed everything again, if it would."""
        fresh = self.freshness(verify)
        manifest = fresh.manifest
        return {
            "library": str(self.paths.root),
            "entries": len(self.catalogue.entries),
            "arxiv_entries": sum(1 for e in self.catalogue.entries if e.arxiv_id),
            "indexed": fresh.indexed,
            "state": fresh.state,
            "up_to_date": fresh.up_to_date,
            "stale": list(fresh.stale),
            "metadata_changed": list(fresh.metadata_changed),
            "new": list(fresh.new),
            "removed": list(fresh.removed),
            "missing_text": list(fresh.waiting),
            "needs_summary": list(fresh.needs_summary),
            "problem": fresh.problem,
            "rebuild_reason": fresh.rebuild_reason,
            "model": manifest.model if manifest else None,
            "dimension": manifest.dimension if manifest else None,
            "built_at": self.store.built_at() if manifest else None,
            "index_bytes": self.store.size_bytes() if manifest else 0,
        }


def discovery_since(corpus: Corpus, since: str | None = None, new: bool = False) -> str | None:
    """The first day `find_papers` keeps papers from: `since` (YYYY[-MM[-DD]]), or with `new`
    the day the corpus's last update harvested from (what that update brought); None: all."""
    if new and since is not None:
        raise UsageError("Give a day (since) or ask for what is new, not both.")
    if new:
        return corpus.new_since()
    return check_day(since) if since is not None else None


def open_collection(*, corpus: str | None = None, index_dir: Path | None = None,
                    beir: Path | None = None, library: str | Path | None = None,
                    encoder: Encoder | None = None) -> Collection:
    """The index a command names, as a `Collection` to build and search: a named corpus
    (`corpus`), a BEIR corpus file or folder (`beir`, indexed in `index_dir` or the cache), an
    index folder built before (`index_dir` alone), else the catalogue's (the library at
    `library`, or around the current folder)."""
    if corpus and (index_dir or beir):
        raise UsageError("Give --corpus or --index-dir, not both.")
    if corpus:
        return Corpus.open(corpus, encoder).collection
    if beir is not None:
        source = corpus_file(beir)
        return Collection(IndexStore(index_dir or corpus_index_dir(source)), lambda: read_corpus(source),
                          name=str(source), encoder=encoder, source=str(source))
    if index_dir is not None:
        return Collection(IndexStore(index_dir), None, name=str(index_dir), encoder=encoder,
                          missing_hint=f"Build it with: paperscope build --corpus PATH --index-dir {index_dir}")
    return Library.open(library, encoder).collection
