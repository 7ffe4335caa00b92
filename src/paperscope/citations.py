"""Reading lists from reference managers: BibTeX files (Zotero's and Better BibTeX's
exports too) and CSL JSON (Zotero's "CSL JSON" export), and the catalogue as CSL JSON.

Each reference becomes one catalogue entry, found by the first of: an arXiv id (`eprint`
with `archivePrefix = {arXiv}`, an arxiv.org link or `arXiv:NNNN.NNNNN` in url, doi, note,
journal or howpublished, a 10.48550/arXiv.… DOI), a DOI (`doi`, or a doi.org link), a link
(`url`, `howpublished`). Title, authors and year are kept, and the venue as the entry's note.
An `abstract` becomes the summary of link entries only: arXiv and DOI entries get theirs
from `ingest`. References with none of the three, and blocks the parser could not read, are
reported by key with the reason; the rest import.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalogue import Catalogue, CatalogueFile, check_fields, normalise_arxiv_id, slug
from .errors import CatalogueError, UsageError
from .files import read_text
from .markdown import DEFAULT_SECTION, catalogue_yaml, guess_kind, new_catalogue_path
from .records import Entry, PaperRecord
from .sources.ids import parse_doi

FORMATS = ("bibtex", "csl-json")
_ARXIV_IN_TEXT = re.compile(r"(?:arxiv\.org/(?:abs|pdf)/|arXiv:\s*|10\.48550/arXiv\.)"
                            r"([a-z-]+(?:\.[A-Z]{2})?/\d{7}|\d{4}\.\d{4,5})", re.IGNORECASE)
_URL_IN_TEXT = re.compile(r"https?://[^\s{}\\]+")
_PAPER_TYPES = {"article", "inproceedings", "proceedings", "incollection", "phdthesis",
                "mastersthesis", "techreport", "book", "inbook", "unpublished",
                "article-journal", "paper-conference", "chapter", "thesis", "report", "manuscript"}


@dataclass(frozen=True)
class Citation:
    """One reference as read from the file, before it is placed in a catalogue."""

    key: str
    title: str
    arxiv_id: str | None = None
    doi: str | None = None
    url: str | None = None
    kind: str = "paper"
    authors: tuple[str, ...] = ()
    year: int | None = None
    venue: str | None = None
    abstract: str | None = None
    groups: tuple[str, ...] = ()  # the values of the field sections are taken from


@dataclass(frozen=True)
class CitationList:
    """The references of a file, and (key, reason) for each one that could not be read."""

    citations: tuple[Citation, ...]
    problems: tuple[tuple[str, str], ...] = ()


@dataclass
class Placement:
    """Where imported references go: catalogue fields per section, in file order, and the
    references left out because the catalogue (or the file, earlier) already has them."""

    sections: dict[str, list[dict]] = field(default_factory=dict)
    duplicates: list[tuple[str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """How many entries of each kind: arXiv, DOI, link."""
        every = [fields for entries in self.sections.values() for fields in entries]
        return {"arXiv": sum("arxiv" in f for f in every), "DOI": sum("doi" in f for f in every),
                "link": sum("arxiv" not in f and "doi" not in f for f in every)}


def read_citations(text: str, fmt: str, source_name: str, section_field: str | None = None
                   ) -> CitationList:
    """The references of a BibTeX (`fmt="bibtex"`) or CSL JSON text; UsageError when the
    text holds none at all, so a wrong file changes nothing."""
    if fmt not in FORMATS:
        raise UsageError(f"Unknown citation format {fmt!r}: choose one of {', '.join(FORMATS)}.")
    found = (_read_bibtex(text, section_field) if fmt == "bibtex"
             else _read_csl_json(text, source_name, section_field))
    if not found.citations and not found.problems:
        what = "BibTeX entry (@article{key, ...})" if fmt == "bibtex" else "CSL JSON item"
        raise UsageError(f"{source_name}: no {what} found, so nothing to import.",
                         hint="Export the library as BibTeX (.bib) or CSL JSON from Zotero.")
    return found


def place(citations: Iterable[Citation], catalogue: Catalogue | None, *,
          section: str | None, default_section: str | None = DEFAULT_SECTION
          ) -> tuple[Placement, list[tuple[str, str]]]:
    """Catalogue fields for `citations` against `catalogue` (None: a new one): each goes to its
    first group (see `read_citations`'s `section_field`), else `section`, else `default_section`.
    Returns the placement and (key, reason) of references the catalogue refuses."""
    placement, refused = Placement(), []
    entries = catalogue.entries if catalogue else ()
    seen: dict[str, str] = {}
    for entry in entries:
        for found in (entry.arxiv_id, entry.doi and f"doi:{entry.doi}", entry.url):
            if found:
                seen[found] = f"already in the catalogue as {entry.id!r}"
    taken = {entry.id for entry in entries}
    for citation in citations:
        keys = [k for k in (citation.arxiv_id, citation.doi and f"doi:{citation.doi}",
                            citation.url) if k]
        if known := next((seen[k] for k in keys if k in seen), None):
            placement.duplicates.append((citation.key, known))
            continue
        chosen = citation.groups[0] if citation.groups else section or default_section
        if chosen is None:
            refused.append((citation.key, "no section: give --section (the catalogue has several)"))
            continue
        name = " ".join(chosen.split())
        name = (catalogue.section_named(name) if catalogue else None) or name
        fields = _fields(citation, slug(citation.title, taken))
        try:
            check_fields(fields, name)
        except CatalogueError as err:
            refused.append((citation.key, str(err).splitlines()[0]))
            continue
        taken.add(fields["id"])
        for k in keys:
            seen[k] = f"listed before in the file (as {citation.key!r})"
        placement.sections.setdefault(name, []).append(fields)
    return placement, refused


@dataclass(frozen=True)
class ImportReport:
    """What an import wrote (`placement`) and the references it could not read or place,
    as (key, reason)."""

    placement: Placement
    problems: tuple[tuple[str, str], ...]


def read_citation_file(path: Path, fmt: str, section_field: str | None = None) -> CitationList:
    """The references of the BibTeX or CSL JSON file at `path` (see `read_citations`)."""
    return read_citations(read_text(path, "File"), fmt, path.name, section_field)


def write_catalogue_from_citations(source: Path, fmt: str, folder: Path, *, force: bool = False,
                                   section: str | None = None, section_field: str | None = None
                                   ) -> tuple[Path, ImportReport]:
    """Create folder/catalogue.yaml from a BibTeX or CSL JSON file, atomically; an existing
    catalogue is replaced only with `force`. UsageError when no reference could be imported."""
    target = new_catalogue_path(folder, force=force)
    found = read_citation_file(source, fmt, section_field)
    placement, refused = place(found.citations, None, section=section)
    report = imported(source.name, placement, (*found.problems, *refused))
    CatalogueFile.to_replace(target).write(
        catalogue_yaml(placement.sections, source.name, f"--from-{fmt}"))
    return target, report


def imported(source_name: str, placement: Placement, problems: tuple[tuple[str, str], ...]
             ) -> ImportReport:
    """The report of an import; UsageError when no reference could be imported at all (and
    none was there already), so that nothing is written."""
    if not placement.sections and not placement.duplicates:
        raise UsageError(f"{source_name}: none of its references could be imported; nothing was "
                         "written.\n" + "\n".join(f"  {key}: {why}" for key, why in problems))
    return ImportReport(placement, problems)


def _fields(citation: Citation, entry_id: str) -> dict:
    arxiv_id, doi = citation.arxiv_id, citation.doi
    url = (f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else
           f"https://doi.org/{doi}" if doi else citation.url)
    linked = not (arxiv_id or doi)
    fields: dict[str, Any] = {
        "id": entry_id, "title": citation.title, "url": url, "kind": citation.kind,
        "arxiv": arxiv_id, "doi": None if arxiv_id else doi, "authors": list(citation.authors),
        "year": citation.year, "summary": citation.abstract if linked else None,
        "needs_summary": linked and not citation.abstract,
        "note": f"Published in {citation.venue}." if citation.venue else None}
    return {key: value for key, value in fields.items() if value}


# -- BibTeX ---------------------------------------------------------------------------

def _read_bibtex(text: str, section_field: str | None) -> CitationList:
    import bibtexparser  # not light: only an import needs it
    import bibtexparser.middlewares as mw

    quiet = logging.getLogger("bibtexparser")  # it logs each broken block: reported below instead
    level, quiet.level = quiet.level, logging.CRITICAL
    try:
        library = bibtexparser.parse_string(text, append_middleware=[
            mw.LatexDecodingMiddleware(), mw.NormalizeFieldKeys()])
    finally:
        quiet.setLevel(level)
    problems = [(_failed_key(block), _failure(block)) for block in library.failed_blocks]
    citations = []
    for entry in library.entries:
        values = {f.key.lower(): _plain(f.value) for f in entry.fields if isinstance(f.value, str)}
        citation = _bibtex_citation(entry.key, entry.entry_type.lower(), values, section_field)
        if isinstance(citation, str):
            problems.append((entry.key, citation))
        else:
            citations.append(citation)
    return CitationList(tuple(citations), tuple(problems))


def _failed_key(block) -> str:
    if isinstance(getattr(block, "key", None), str):
        return block.key
    match = re.match(r"\s*@\w+\s*[{(]\s*([^,\s]+)", block.raw or "")
    return match.group(1) if match else f"line {block.start_line + 1}"


def _failure(block) -> str:
    """Why bibtexparser could not read a block, in one line."""
    error = block.error
    why = getattr(error, "abort_reason", None) or str(error) or type(error).__name__
    return f"not readable BibTeX (line {block.start_line + 1}): {' '.join(why.split())}"


def _plain(value: str) -> str:
    """A decoded BibTeX value as plain text: braces and \\url{} dropped, spaces collapsed."""
    return " ".join(re.sub(r"\\url\{([^}]*)\}|[{}]", lambda m: m.group(1) or "", value).split())


def _bibtex_citation(key: str, entry_type: str, values: dict[str, str],
                     section_field: str | None) -> Citation | str:
    title = values.get("title")
    if not title:
        return "no title"
    prefix = (values.get("archiveprefix") or values.get("eprinttype") or "").lower()
    eprint = values.get("eprint", "")
    arxiv_id = normalise_arxiv_id(eprint) if prefix == "arxiv" and eprint else None
    texts = [values.get(name, "") for name in ("doi", "url", "note", "journal", "howpublished",
                                               "eprint")]
    arxiv_id = arxiv_id or _arxiv_in(texts)
    doi = next((d for d in (parse_doi(t) for t in texts[:3] if t) if d), None)
    url = next((m.group(0) for t in (values.get("url", ""), values.get("howpublished", ""))
                if (m := _URL_IN_TEXT.search(t))), None)
    if not (arxiv_id or doi or url):
        return "no arXiv id, DOI or URL"
    authors = tuple(" ".join(_person(name).split()) for name in
                    re.split(r"\s+and\s+", values.get("author", "")) if name.strip())
    year = re.search(r"\d{4}", values.get("year") or values.get("date", ""))
    venue = values.get("journal") or values.get("booktitle")
    return Citation(
        key=key, title=title, arxiv_id=arxiv_id, doi=doi, url=url,
        kind=_kind(entry_type, url, arxiv_id or doi), authors=authors,
        year=int(year.group(0)) if year else None,
        venue=None if arxiv_id and venue and _arxiv_in([venue]) else venue,
        abstract=values.get("abstract"), groups=_groups(values.get((section_field or "").lower(), "")))


def _person(name: str) -> str:
    """`Last, First` as `First Last`."""
    last, _, first = name.partition(",")
    return f"{first} {last}" if first.strip() else name


# -- CSL JSON ------------------------------------------------------------------------

def _read_csl_json(text: str, source_name: str, section_field: str | None) -> CitationList:
    try:
        data = json.loads(text) if text.strip() else []
    except json.JSONDecodeError as err:
        raise UsageError(f"{source_name}: not JSON ({err.msg} at line {err.lineno}).",
                         hint="Pass a BibTeX file with --from-bibtex instead.") from None
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        data = data["items"]
    if not isinstance(data, list):
        raise UsageError(f"{source_name}: CSL JSON is a list of items; this is not one.")
    citations, problems = [], []
    for number, item in enumerate(data, 1):
        key = str(item.get("id", f"item {number}")) if isinstance(item, dict) else f"item {number}"
        citation = _csl_citation(key, item, section_field) if isinstance(item, dict) else "not an object"
        if isinstance(citation, str):
            problems.append((key, citation))
        else:
            citations.append(citation)
    return CitationList(tuple(citations), tuple(problems))


def _csl_citation(key: str, item: Mapping[str, Any], section_field: str | None) -> Citation | str:
    def text(name: str) -> str:
        value = item.get(name)
        return " ".join(value.split()) if isinstance(value, str) else str(value) if \
            isinstance(value, int) else ""

    title = text("title")
    if not title:
        return "no title"
    texts = [text(name) for name in ("DOI", "URL", "note", "number", "archive_location",
                                     "container-title")]
    arxiv_id = _arxiv_in(texts) or (normalise_arxiv_id(text("number")) if "arxiv" in
                                    (text("archive") + text("publisher")).lower() else None)
    doi = parse_doi(text("DOI")) or parse_doi(text("URL"))
    url = text("URL") if text("URL").lower().startswith(("http://", "https://")) else None
    if not (arxiv_id or doi or url):
        return "no arXiv id, DOI or URL"
    people: list = item["author"] if isinstance(item.get("author"), list) else []
    authors = tuple(" ".join(f"{p.get('given', '')} {p.get('family', '')}".split()) or
                    str(p.get("literal", "")) for p in people if isinstance(p, dict))
    parts = (item.get("issued") or {}).get("date-parts") if isinstance(item.get("issued"), dict) else None
    year = str(parts[0][0]) if parts and isinstance(parts[0], list) and parts[0] else ""
    venue = text("container-title")
    raw_groups = item.get(section_field) if section_field else None
    groups = tuple(str(g) for g in raw_groups) if isinstance(raw_groups, list) else \
        _groups(str(raw_groups) if raw_groups else "")
    return Citation(
        key=key, title=title, arxiv_id=arxiv_id, doi=doi, url=url,
        kind=_kind(text("type"), url, arxiv_id or doi), authors=tuple(a for a in authors if a),
        year=int(year) if re.fullmatch(r"\d{4}", year) else None,
        venue=None if not venue or _arxiv_in([venue]) else venue, abstract=text("abstract") or None,
        groups=groups)


def to_csl_json(entries: Sequence[Entry], records: Mapping[str, PaperRecord],
                keys: Mapping[str, str]) -> str:
    """The entries as a CSL JSON list (Zotero imports it), ids from `keys` (citation keys)."""
    items = []
    for entry in entries:
        record = records.get(entry.record_key) if entry.record_key else None
        authors = entry.authors or (record.authors if record else ())
        year = entry.year or (record.year if record else None)
        item: dict[str, Any] = {
            "id": keys[entry.id], "type": {"paper": "article", "repo": "software"}.get(
                entry.kind, "post-weblog"), "title": entry.title, "URL": entry.url}
        if authors:
            item["author"] = [_csl_name(name) for name in authors]
        if year:
            item["issued"] = {"date-parts": [[year]]}
        if entry.arxiv_id:
            item |= {"DOI": f"10.48550/arXiv.{entry.arxiv_id}", "number": f"arXiv:{entry.arxiv_id}",
                     "publisher": "arXiv"}
        elif entry.doi:
            item["DOI"] = entry.doi
        abstract = entry.summary or (record.abstract if record else None)
        if abstract:
            item["abstract"] = abstract
        if entry.tags:
            item["keyword"] = ", ".join(entry.tags)
        items.append(item)
    return json.dumps(items, ensure_ascii=False, indent=2) + "\n"


def _csl_name(name: str) -> dict[str, str]:
    given, _, family = name.rpartition(" ")
    return {"family": family, "given": given} if given else {"literal": name}


# -- shared ---------------------------------------------------------------------------

def _arxiv_in(texts: Iterable[str]) -> str | None:
    return next((normalise_arxiv_id(m.group(1)) for t in texts if t
                 if (m := _ARXIV_IN_TEXT.search(t))), None)


def _groups(value: str) -> tuple[str, ...]:
    """A field's values as section names: `keywords = {peft, scaling}` -> ("peft", "scaling")."""
    return tuple(name for name in (" ".join(part.split()) for part in re.split(r"[,;]", value)) if name)


def _kind(citation_type: str, url: str | None, paper_id: str | None) -> str:
    if paper_id or citation_type.lower() in _PAPER_TYPES or not url:
        return "paper"
    return guess_kind(url, None)
