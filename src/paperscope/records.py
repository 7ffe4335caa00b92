"""Plain data types shared by every layer: catalogue entries, fetched paper
records, indexed documents and search hits."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from .sources.ids import qualify, record_key

KINDS = ("paper", "blog", "repo")
WEB_KINDS = ("blog", "repo")  # entries whose own page (or README) is their text
MAX_TEXT_CHARS = 20_000  # one record's abstract; longer ones are cut (no real one comes near)
MAX_TITLE_CHARS = 1_000  # one record's title, cut there
MAX_AUTHORS = 10_000  # one record's authors (the largest collaborations list about 5,000)
MAX_NAME_CHARS = 300  # one author's name


@dataclass(frozen=True)
class Entry:
    """One item of the catalogue, as the maintainer wrote it."""

    id: str
    title: str
    url: str
    kind: str
    section: str
    arxiv_id: str | None = None
    summary: str | None = None
    needs_summary: bool = False  # no summary written yet: search reads the title alone
    authors: tuple[str, ...] = ()
    year: int | None = None
    tags: tuple[str, ...] = ()
    note: str | None = None  # the maintainer's own words: shown, and searched with the text
    line: int | None = None  # where it stands in catalogue.yaml, for messages
    doi: str | None = None  # lower case, without `doi:` or https://doi.org/

    @property
    def record_key(self) -> str | None:
        """The key of the entry's fetched record in the record cache: its arXiv id, else
        `doi:<doi>`, else `url:<url>` for a blog post or repository (its page's own text,
        sources/web.py); None for an entry no source fetches (a paper known by a PDF)."""
        if self.arxiv_id or self.doi:
            return self.arxiv_id or f"doi:{self.doi}"
        return f"url:{self.url}" if self.kind in WEB_KINDS and self.url else None


@dataclass(frozen=True)
class PaperRecord:
    """Metadata of a paper, fetched from its source (the arXiv API) or read from a dump (a
    snapshot). `arxiv_id` is the record's key (sources/ids.py): an arXiv id, or `scheme:id` for
    a record of another source; it keeps the name records.json has always given it."""

    arxiv_id: str
    title: str
    abstract: str
    authors: tuple[str, ...]
    year: int | None
    categories: tuple[str, ...]
    primary_category: str | None
    source: str  # "arxiv-api" or "snapshot:<file name>"
    fetched_at: str  # ISO 8601, UTC
    doi: str | None = None
    journal_ref: str | None = None

    @property
    def id(self) -> str:
        """The source-qualified id: `arxiv:2106.09685`, `doi:10.18653/v1/2021.acl-long.353`."""
        return qualify(self.arxiv_id)

    @property
    def key(self) -> str:
        """The key of the record in the record cache: the bare id for arXiv, else `id`."""
        return record_key(self.arxiv_id)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["arxiv_id"] = self.key  # never `arxiv:`: the file keeps bare arXiv ids
        data["authors"] = list(self.authors)
        data["categories"] = list(self.categories)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PaperRecord:
        """A record read back from records.json; a field of the wrong type raises ValueError
        (a year written as text is read as a number; an abstract of null as no abstract)."""
        if not isinstance(data, dict):
            raise ValueError(f"a record must be an object, not {type(data).__name__}")
        year = data.get("year")
        if isinstance(year, str) and year.strip().isdigit():
            year = int(year)
        if year is not None and (not isinstance(year, int) or isinstance(year, bool)):
            raise ValueError(f"year {year!r} is not a number")
        return cls(
            arxiv_id=record_key(_text(data, "arxiv_id", required=True)),  # `arxiv:` read as bare
            title=_text(data, "title", required=True),
            abstract=_text(data, "abstract")[:MAX_TEXT_CHARS],
            authors=_texts(data, "authors"),
            year=year,
            categories=_texts(data, "categories"),
            primary_category=_text(data, "primary_category") or None,
            source=_text(data, "source"),
            fetched_at=_text(data, "fetched_at"),
            doi=_text(data, "doi") or None,
            journal_ref=_text(data, "journal_ref") or None,
        )


def _text(data: dict[str, Any], key: str, required: bool = False) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"{key} {value!r} is not text")
    return value


def _texts(data: dict[str, Any], key: str) -> tuple[str, ...]:
    values = data.get(key) or []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{key} must be a list of texts")
    return tuple(values)


@dataclass(frozen=True)
class Document:
    """What the index holds for one entry: the text it embeds and what a hit shows."""

    id: str
    title: str
    text: str  # the abstract or summary
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def embedding_text(self) -> str:
        return f"{self.title}. {self.text}" if self.text else self.title

    @property
    def content_hash(self) -> str:
        """Hash of what is embedded: a changed hash means a new vector."""
        return hashlib.sha256(self.embedding_text.encode("utf-8")).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "text": self.text, "meta": self.meta}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Document:
        return cls(id=data["id"], title=data["title"], text=data["text"], meta=data.get("meta") or {})


@dataclass(frozen=True)
class Hit:
    """One ranked result of a search or a related-entries query."""

    rank: int
    score: float
    document: Document
    snippet: str = ""
    shared_terms: tuple[str, ...] = ()  # for related entries: what connects the two
    weak: bool = False  # the score is under search.WEAK_SCORE: not a close match

    def to_json(self) -> dict[str, Any]:
        meta = self.document.meta
        return {
            "rank": self.rank,
            "score": round(float(self.score), 6),
            "weak": self.weak,
            "id": self.document.id,
            "title": self.document.title,
            "section": meta.get("section"),
            "kind": meta.get("kind"),
            "year": meta.get("year"),
            "url": meta.get("url"),
            "arxiv_id": meta.get("arxiv_id"),
            "snippet": self.snippet,
            **({"shared_terms": list(self.shared_terms)} if self.shared_terms else {}),
        }
