"""BibTeX for catalogue entries: arXiv papers with eprint fields, everything
else as @misc with its link. Keys are author + year + first title word
(`hu2021lora`), or the entry id when there are no authors, made unique in
catalogue order, so they stay stable."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from .records import Entry, PaperRecord

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}
_STOP = {"a", "an", "the", "on", "of", "for", "to", "in", "can", "is", "are"}


def escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _ascii_word(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", unicodedata.normalize("NFKD", text).encode("ascii", "ignore")
                  .decode().lower())


def base_key(entry: Entry, record: PaperRecord | None) -> str:
    authors = entry.authors or (record.authors if record else ())
    year = entry.year or (record.year if record else None)
    if not authors:
        return entry.id  # a slug already: unique and stable
    surname = _ascii_word(authors[0].split()[-1])
    words = [w for w in (_ascii_word(w) for w in entry.title.split()) if w and w not in _STOP]
    return f"{surname}{year or ''}{words[0] if words else ''}" or entry.id


def citation_keys(entries: Sequence[Entry], records: dict[str, PaperRecord]) -> dict[str, str]:
    """Entry id -> citation key, unique across `entries` (the whole catalogue, for stability)."""
    keys: dict[str, str] = {}
    taken: set[str] = set()
    for entry in entries:
        key = base = base_key(entry, records.get(entry.record_key) if entry.record_key else None)
        suffix = ord("b")
        while key in taken:
            key, suffix = f"{base}{chr(suffix)}", suffix + 1
        taken.add(key)
        keys[entry.id] = key
    return keys


def bibtex_entry(entry: Entry, record: PaperRecord | None, key: str) -> str:
    """One BibTeX entry. Every value is escaped (links percent-encode braces and
    backslashes instead), so no field can end early or run a command."""
    authors = entry.authors or (record.authors if record else ())
    year = entry.year or (record.year if record else None)
    url = link(entry.url)
    fields: list[tuple[str, str]] = [("title", "{" + escape(entry.title) + "}")]
    if authors:
        fields.append(("author", " and ".join(escape(a) for a in authors)))
    if year:
        fields.append(("year", escape(str(year))))
    if entry.arxiv_id:
        fields += [("eprint", escape(entry.arxiv_id)), ("archivePrefix", "arXiv")]
        if record and record.primary_category:
            fields.append(("primaryClass", escape(record.primary_category)))
        if record and record.doi:
            fields.append(("doi", escape(record.doi)))
    elif entry.doi:
        fields.append(("doi", escape(entry.doi)))
        if record and record.journal_ref:
            fields.append(("howpublished", escape(record.journal_ref)))
    else:
        fields.append(("howpublished", "\\url{" + url + "}"))
        fields.append(("note", {"blog": "Blog post", "repo": "Software repository"}.get(entry.kind, "")))
    fields.append(("url", url))
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields if value)
    return f"@misc{{{key},\n{body}\n}}\n"


def link(url: str) -> str:
    """A URL as a BibTeX value: braces and backslashes percent-encoded (they never belong
    in a link, and would end the field)."""
    return url.replace("\\", "%5C").replace("{", "%7B").replace("}", "%7D")
