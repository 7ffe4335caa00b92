"""The reading list as Markdown, both ways.

`catalogue_to_markdown` writes the catalogue in a reading list's own style: a `## ` heading
per section and a numbered link per entry, so a repository's README can be generated from
catalogue.yaml. `read_markdown_list` does the reverse: every list item with an http(s) link
(`1. [Title](url)`, `- [Title](url)`, `- https://...`) becomes an entry of the section of the
nearest heading above it; arXiv ids are recognised from arXiv links, and every other entry is
marked `needs_summary` (searched by its title until someone writes its summary).
`write_catalogue_from_markdown` is the one function here that touches files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .catalogue import (
    Catalogue,
    CatalogueFile,
    json_quote,
    normalise_arxiv_id,
    parse_catalogue,
    render_entry,
    slug,
)
from .errors import UsageError
from .files import CATALOGUE_NAME, read_text
from .records import Entry, PaperRecord

DEFAULT_SECTION = "Reading list"
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])\s+(.*)$")
_FENCE = re.compile(r"^\s*(```|~~~)")
# [text](url "optional title"): the text may hold escapes and one level of brackets, the url one
# of parentheses.
_LINK = re.compile(r"(!?)\[((?:\\.|[^\[\]\\]|\[(?:\\.|[^\[\]\\])*\])*)\]"
                   r"\(\s*<?((?:[^()\s<>]|\([^()\s]*\))+)>?"
                   r"(?:\s+\"[^\"]*\")?\s*\)")
_BARE_URL = re.compile(r"<?(https?://[^\s<>]+?)>?(?=[.,;:!?)\]]*(?:\s|$))")
_YEAR = re.compile(r"\((\d{4})\)")
_PLAIN_SECTION = re.compile(r"[A-Za-z0-9][\w .,()&/+-]*")
_SEPARATORS = " -:–—|([.,;"  # around a title written before its link
_GENERIC_LINK_TEXT = {"paper", "pdf", "link", "arxiv", "abs", "code", "blog", "post", "html",
                      "website", "project", "here", "url"}


@dataclass(frozen=True)
class MarkdownList:
    """A catalogue made from a Markdown reading list: its YAML text, that text parsed, the
    list's title (its single top heading, if any) and the links left out, with the reason."""

    yaml: str
    catalogue: Catalogue
    title: str | None
    skipped: tuple[str, ...] = ()

    @property
    def needs_summary(self) -> list[Entry]:
        return [entry for entry in self.catalogue.entries if entry.needs_summary]


def catalogue_to_markdown(catalogue: Catalogue, *, years: bool = False, tags: bool = False,
                          title: str | None = None,
                          records: Mapping[str, PaperRecord] | None = None) -> str:
    """The catalogue as a Markdown reading list: `# title` if given, then for each section a
    `## ` heading and its entries as `1. [Title](url)`, with ` (year)` when `years` (the
    entry's year, else its arXiv record's from `records`) and the entry's tags as `code` words
    when `tags`."""
    blocks = [f"# {title.strip()}"] if title and title.strip() else []
    for section in catalogue.sections:
        lines = [f"## {section}"]
        entries = [entry for entry in catalogue.entries if entry.section == section]
        for number, entry in enumerate(entries, start=1):
            line = f"{number}. [{_escape_brackets(entry.title)}]({entry.url})"
            year = entry.year or _record_year(entry, records)
            if years and year:
                line += f" ({year})"
            if tags and entry.tags:
                line += " " + " ".join(f"`{tag}`" for tag in entry.tags)
            lines.append(line)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n" if blocks else ""


def _escape_brackets(title: str) -> str:
    """A title as link text: brackets and backslashes escaped, so any title stays one link."""
    return re.sub(r"([\\\[\]])", r"\\\1", title)


def _record_year(entry: Entry, records: Mapping[str, PaperRecord] | None) -> int | None:
    record = records.get(entry.record_key) if records and entry.record_key else None
    return record.year if record else None


def read_markdown_list(text: str, source_name: str) -> MarkdownList:
    """Parse a Markdown reading list into a validated catalogue; UsageError when it holds no
    list item with an http(s) link. Links listed twice (same URL or arXiv id) are kept once."""
    lines = text.lstrip("\ufeff").splitlines()
    headings = _headings(lines)
    top = [(name, number) for level, name, number in headings if level == 1]
    # A single `# ` heading above all others is the list's title, not a section.
    title, title_line = top[0] if len(top) == 1 and headings[0][0] == 1 else (None, None)

    sections: dict[str, list[dict]] = {}
    skipped: list[str] = []
    seen: dict[str, str] = {}  # url or arXiv id -> the section it was first listed in
    taken: set[str] = set()
    path: list[tuple[int, str]] = []  # the headings above, from the section level down
    by_line = {number: (level, name) for level, name, number in headings}
    in_fence = False
    for number, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        if number in by_line:
            level, name = by_line[number]
            if number != title_line:
                path = [(above, text) for above, text in path if above < level] + [(level, name)]
            continue
        item = _LIST_ITEM.match(line)
        found = _link(item.group(1)) if item else None
        if found is None:
            continue
        link_title, url, rest = found
        section = " / ".join(name for _, name in path) or title or DEFAULT_SECTION
        arxiv_id = normalise_arxiv_id(url)
        key = arxiv_id or url
        if key in seen:
            skipped.append(f"{link_title} ({url}): listed before in {seen[key]}")
            continue
        seen[key] = section
        slug_source = link_title if link_title not in (url, f"arXiv:{arxiv_id}") else \
            re.sub(r"^\w+://|[:/.]", " ", link_title)  # a bare link: "arxiv-2106-09685"
        fields: dict[str, Any] = {"id": slug(slug_source, taken), "title": link_title, "url": url,
                  "kind": guess_kind(url, arxiv_id)}
        taken.add(fields["id"])
        if arxiv_id:
            fields["arxiv"] = arxiv_id
        else:
            fields["needs_summary"] = True
        year = _YEAR.search(rest)
        if year:
            fields["year"] = int(year.group(1))
        sections.setdefault(section, []).append(fields)
    if not sections:
        raise UsageError(f"{source_name}: no list item with an http(s) link, so no entry to make.",
                         hint="A reading list has entries like `1. [Title](https://...)` or "
                              "`- [Title](https://...)` under `## Section` headings.")
    yaml_text = catalogue_yaml(sections, source_name)
    return MarkdownList(yaml=yaml_text, catalogue=parse_catalogue(yaml_text), title=title,
                        skipped=tuple(skipped))


def markdown_to_catalogue_yaml(text: str, source_name: str) -> str:
    """The catalogue.yaml text for a Markdown reading list (see `read_markdown_list`)."""
    return read_markdown_list(text, source_name).yaml


def _headings(lines: list[str]) -> list[tuple[int, str, int]]:
    """(level, text, line number) of each ATX heading outside code fences."""
    found, in_fence = [], False
    for number, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else _HEADING.match(line)
        if match and _inline_text(match.group(2)):
            found.append((len(match.group(1)), _inline_text(match.group(2)), number))
    return found


def _link(item: str) -> tuple[str, str, str] | None:
    """(title, url, text after the link) of a list item's first http(s) link, or None."""
    for match in _LINK.finditer(item):
        url = match.group(3)
        if match.group(1) or not url.lower().startswith(("http://", "https://")):
            continue  # an image (a badge) or a link inside the page, such as a table of contents
        text = _inline_text(match.group(2))
        before = _inline_text(item[:match.start()]).strip(_SEPARATORS)
        if before and text.strip("[]").lower() in _GENERIC_LINK_TEXT:
            text = before  # "Title. [[pdf]](url)": the title is the text before the link
        return text or url, url, item[match.end():]
    plain = _LINK.sub("", item)  # not the address of an image or of a link inside the page
    bare = _BARE_URL.search(plain)
    if bare is None:
        return None
    url = bare.group(1)
    before = _inline_text(plain[:bare.start()]).strip(_SEPARATORS)
    arxiv_id = normalise_arxiv_id(url)
    return before or (f"arXiv:{arxiv_id}" if arxiv_id else url), url, plain[bare.end():]


def _inline_text(markdown: str) -> str:
    """Markdown inline text as plain text: links become their text, emphasis and code marks
    and backslash escapes are dropped, white space is collapsed."""
    text = _LINK.sub(lambda m: m.group(2), markdown)
    text = re.sub(r"(\*\*|__|`)", "", text)
    text = re.sub(r"\\([\\`*_{}\[\]()#+\-.!|])", r"\1", text)
    return " ".join(text.split())


def guess_kind(url: str, arxiv_id: str | None) -> str:
    """A guess from the link: arXiv and PDF links are papers, code hosts are repos, the rest blogs."""
    lowered = url.lower().split("?", 1)[0].split("#", 1)[0]
    if arxiv_id or lowered.endswith(".pdf"):
        return "paper"
    if re.match(r"https?://(www\.)?(github\.com|gitlab\.com|bitbucket\.org)/", lowered):
        return "repo"
    return "blog"


_HEADER = """\
# paperscope catalogue: the reading list, one entry per paper, post or repository.
# Made from {source} by `paperscope init {option}`.
#
# Edit this file by hand (or with `paperscope add`), then run `paperscope build`.
# Each section has a `section` name and a list of `entries`. An entry has:
#   id       stable slug, lower-case letters, digits and dashes (used by `show`, `related`, `cite`)
#   title    as written in the reading list
#   url      the link of the reading list
#   kind     paper, blog or repo (guessed from the link: correct it where it is wrong)
#   arxiv    the arXiv identifier, for papers on arXiv (abstract and authors are fetched)
#   summary  for everything else: 3 to 6 sentences that search reads instead of an abstract
#   needs_summary   true until such an entry has a summary: search reads its title alone;
#            write the summary, then delete this line
#   authors, year   optional, for entries that are not on arXiv (used by `cite`)
"""


def catalogue_yaml(sections: dict[str, list[dict]], source_name: str,
                   option: str = "--from-markdown") -> str:
    """catalogue.yaml text in the layout of the repository's own: a header explaining the
    fields, then each section with its entries separated by blank lines."""
    parts = [_HEADER.format(source=" ".join(source_name.split()) or "a file", option=option)]
    for name, entries in sections.items():
        quoted = name if _PLAIN_SECTION.fullmatch(name) else json_quote(name)
        blocks = ["".join("    " + line if line.strip() else line
                          for line in render_entry(fields).splitlines(keepends=True))
                  for fields in entries]
        parts.append(f"- section: {quoted}\n  entries:\n" + "\n".join(blocks))
    return "\n".join(parts)


def write_catalogue_from_markdown(source: Path, folder: Path, *, force: bool = False
                                  ) -> tuple[Path, MarkdownList]:
    """Create folder/catalogue.yaml from the Markdown reading list `source`, atomically;
    an existing catalogue is replaced only with `force`."""
    target = new_catalogue_path(folder, force=force)
    made = read_markdown_list(read_text(source, "Markdown file"), source.name)
    CatalogueFile.to_replace(target).write(made.yaml)
    return target, made


def new_catalogue_path(folder: Path, *, force: bool) -> Path:
    """folder/catalogue.yaml, for `init` to create; UsageError if it exists, unless `force`."""
    target = folder / CATALOGUE_NAME
    if target.exists() and not force:
        raise UsageError(f"{target} already exists; nothing was changed.",
                         hint="Pass --force to replace it (its entries are lost).")
    return target
