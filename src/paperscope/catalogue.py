"""Reading, validating, editing and writing catalogue.yaml.

The file is a list of sections; each has a `section` name and `entries`. See
the README for the fields of an entry. Every problem is reported as a
CatalogueError with the file and line it concerns. Edits change the text of one
entry and keep every other byte; `CatalogueFile.write` is the one place that
writes the file.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn, cast, overload

import yaml

from .errors import CatalogueChangedError, CatalogueError, UsageError
from .files import atomic_write_bytes, read_text
from .records import KINDS, MAX_TEXT_CHARS, WEB_KINDS, Entry
from .sources.ids import parse_doi

ID_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?$")
# New-style identifiers (0704.0001 onwards) and old-style ones (hep-th/9901001).
ARXIV_ID_PATTERN = re.compile(r"^(?:\d{4}\.\d{4,5}|[a-z-]+(?:\.[A-Z]{2})?/\d{7})$")
URL_PATTERN = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)
# libyaml's safe loader when PyYAML was built with it (5x faster), else the pure-Python one.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CONTROL = re.compile("[\x00-\x1f]")
ENTRY_FIELDS = {"id", "title", "url", "kind", "arxiv", "doi", "summary", "needs_summary", "authors",
                "year", "tags", "note"}
SECTION_FIELDS = {"section", "entries"}
_PLAIN_TAGS = {f"tag:yaml.org,2002:{name}" for name in
               ("str", "int", "float", "bool", "null", "timestamp", "seq", "map")}
_STR, _SEQ, _MAP = (f"tag:yaml.org,2002:{name}" for name in ("str", "seq", "map"))
# The longest text each field may hold: far above real ones, low enough that one entry cannot
# make a build embed for minutes or hold gigabytes (a title is in every passage of its entry).
MAX_CHARS = {"title": 1_000, "url": 2_000, "section": 200, "summary": MAX_TEXT_CHARS,
             "note": MAX_TEXT_CHARS, "authors": 300, "tags": 100}
MAX_LIST_ITEMS = 1_000  # authors or tags of one entry
log = logging.getLogger(__name__)
_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)
_Fail = Callable[..., NoReturn]  # raises CatalogueError for a node: see _failer


@dataclass(frozen=True)
class Catalogue:
    """The validated catalogue: entries in file order."""

    entries: tuple[Entry, ...]
    path: Path | None = None
    section_names: tuple[str, ...] = ()  # in file order, empty sections too

    @property
    def sections(self) -> list[str]:
        return list(dict.fromkeys([*self.section_names, *(entry.section for entry in self.entries)]))

    def get(self, entry_id: str) -> Entry | None:
        return next((entry for entry in self.entries if entry.id == entry_id), None)

    def by_arxiv_id(self) -> dict[str, Entry]:
        return {entry.arxiv_id: entry for entry in self.entries if entry.arxiv_id}

    def by_doi(self) -> dict[str, Entry]:
        return {entry.doi: entry for entry in self.entries if entry.doi}

    def section_named(self, name: str) -> str | None:
        """The section called `name`, compared without case; None if there is none."""
        return next((s for s in self.sections if s.casefold() == name.strip().casefold()), None)

    @property
    def tags(self) -> list[str]:
        return sorted({tag.casefold() for entry in self.entries for tag in entry.tags})


@dataclass(frozen=True)
class CatalogueFile:
    """The text of catalogue.yaml as read, with the hash that a later write checks."""

    path: Path
    text: str  # with "\n" line ends, whatever the file has
    digest: str | None  # None: there was no file
    newline: str = "\n"  # the file's line end, written back

    @classmethod
    def read(cls, path: Path) -> CatalogueFile:
        raw = read_text(path, "Catalogue", newline="")
        text = raw.replace("\r\n", "\n").replace("\r", "\n")
        crlf = "\r\n" in raw and raw.count("\r\n") == raw.count("\n") == raw.count("\r")
        return cls(path, text, _digest(raw.encode("utf-8")), "\r\n" if crlf else "\n")

    @classmethod
    def to_replace(cls, path: Path) -> CatalogueFile:
        """The file as it is now, to be replaced whole, whatever it holds (or when absent)."""
        try:
            return cls(path, "", _digest(path.read_bytes()))
        except FileNotFoundError:
            return cls(path, "", None)

    @property
    def catalogue(self) -> Catalogue:
        return parse_catalogue(self.text, self.path)

    def write(self, text: str) -> None:
        """Replace the file with `text` after validating it, unless the file changed since it
        was read; a symlink is written through (it stays a link), mode and owner are kept."""
        parse_catalogue(text, self.path)
        target = self.path.resolve()
        try:
            current, info = target.read_bytes(), os.stat(target)
        except FileNotFoundError:
            current, info = None, None
        if (None if current is None else _digest(current)) != self.digest:
            raise CatalogueChangedError(
                f"{self.path} changed since paperscope read it; nothing was written.",
                "Run the command again: it reads the file anew.")
        atomic_write_bytes(target, text.replace("\n", self.newline).encode("utf-8"), like=info)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def normalise_arxiv_id(value: str) -> str | None:
    """The bare identifier in an arXiv id or abs/pdf URL, without version; None if it is not one."""
    text = value.strip()
    if ARXIV_ID_PATTERN.match(text):  # already bare, as the catalogue writes them
        return text
    match = re.search(r"arxiv\.org/(?:abs|pdf)/([^?#]+?)(?:\.pdf)?/?(?:[?#].*)?$", text)
    if match:
        text = match.group(1)
    text = re.sub(r"^arxiv:", "", text, flags=re.IGNORECASE)
    text = re.sub(r"v\d+$", "", text)
    return text if ARXIV_ID_PATTERN.match(text) else None


def parse_catalogue(text: str, path: Path | None = None) -> Catalogue:
    """Parse and validate catalogue text; raise CatalogueError on the first problem.

    A file in the everyday shape is checked an entry at a time as libyaml reads it, without
    its whole node tree in memory (200,000 entries in seconds); any other shape, and any
    problem, goes through the composed node tree, which reports the first problem in file
    order."""
    try:
        entries, sections = _validated(text)
        return Catalogue(entries=entries, path=path, section_names=sections)
    except CatalogueError as err:
        if path is None:
            raise
        raise CatalogueError(err.problem, path=str(path), line=err.line, hint=err.hint) from None


@functools.lru_cache(maxsize=2)
def _validated(text: str) -> tuple[tuple[Entry, ...], tuple[str, ...]]:
    """The entries and section names of catalogue text. The last two answers are kept (they
    are immutable): an edit validates its text, writes it and reads it back with one parse."""
    fail = _failer("catalogue.yaml")
    try:
        return _checked(_streamed_entries(text, fail), fail)
    except (_Unusual, CatalogueError, yaml.YAMLError) as why:
        log.info("catalogue read through the composed YAML tree (%s)", type(why).__name__)
        catalogue = _parse_composed(text)
        return catalogue.entries, catalogue.section_names


def _parse_composed(text: str) -> Catalogue:
    """`parse_catalogue` from the composed node tree of the whole file."""
    where = "catalogue.yaml"
    fail = _failer(where)
    root = _compose(text, where)
    if root is None:
        return Catalogue(entries=())
    _refuse_tags(root, fail)
    if not isinstance(root, yaml.SequenceNode):
        fail("the catalogue must be a list of sections (- section: NAME / entries: [...])", root)
    entries, sections = _checked(_composed_entries(root, fail), fail)
    return Catalogue(entries=entries, section_names=sections)


def _composed_entries(root: yaml.SequenceNode, fail: _Fail) -> Iterator[tuple[str, yaml.Node | None]]:
    """(section name, None) for each section of the composed file, checked, then (section name,
    entry node) for each of its entries."""
    for section_node in root.value:
        fields = _mapping(section_node, "a section", fail)
        _reject_unknown(fields, SECTION_FIELDS, "section", fail)
        name = _string(fields, "section", section_node, fail, required=True)
        entries_node = fields.get("entries")
        if entries_node is None:
            fail(f"section {name!r} has no `entries` list", section_node)
        yield name, None
        if isinstance(entries_node[1], yaml.ScalarNode) and entries_node[1].value in ("", "~", "null"):
            continue
        if not isinstance(entries_node[1], yaml.SequenceNode):
            fail(f"`entries` of section {name!r} must be a list", entries_node[1])
        for entry_node in entries_node[1].value:
            yield name, entry_node


class _Unusual(Exception):
    """The file is not in the everyday shape that `_streamed_entries` reads."""


def _streamed_entries(text: str, fail: _Fail) -> Iterator[tuple[str, yaml.Node | None]]:
    """What `_composed_entries` yields, composed from libyaml's events one entry at a time.
    Only the everyday shape is read here (sections as `section:` then an `entries:` list, no
    anchors, aliases or explicit tags): anything else raises _Unusual."""
    loader = _SAFE_LOADER(text)
    next_event: Callable[[], Any] = loader.get_event  # libyaml's events (its marks type apart)
    tags: dict[tuple[str, tuple[bool, bool]], str] = {}

    def resolve(value: str, implicit: tuple[bool, bool]) -> str:
        # The loader's own resolver, asked only where an implicit resolver could apply (plain
        # text starting with a character that one is registered for), its answers remembered.
        if not implicit[0] or value[:1] not in loader.yaml_implicit_resolvers:
            return _STR
        if (value, implicit) not in tags:
            tags[value, implicit] = loader.resolve(yaml.ScalarNode, value, implicit)
        return tags[value, implicit]

    def compose(event) -> yaml.Node:
        kind = type(event)
        if kind not in _NODE_EVENTS or event.anchor is not None or event.tag is not None:
            raise _Unusual
        if kind is yaml.ScalarEvent:
            tag = resolve(event.value, event.implicit)
            if tag not in _PLAIN_TAGS:
                raise _Unusual
            return yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
        if kind is yaml.SequenceStartEvent:
            items = []
            while type(item := next_event()) is not yaml.SequenceEndEvent:
                items.append(compose(item))
            return yaml.SequenceNode(_SEQ, items, event.start_mark, cast(yaml.Mark, item.end_mark),
                                     flow_style=event.flow_style)
        pairs = []
        while type(key := next_event()) is not yaml.MappingEndEvent:
            pairs.append((compose(key), compose(next_event())))
        return yaml.MappingNode(_MAP, pairs, event.start_mark, cast(yaml.Mark, key.end_mark),
                                flow_style=event.flow_style)

    def expect(kind, plain: bool = True) -> None:
        event = next_event()
        if type(event) is not kind or (plain and (event.anchor is not None or event.tag is not None)):
            raise _Unusual

    expect(yaml.StreamStartEvent, plain=False)
    expect(yaml.DocumentStartEvent, plain=False)
    expect(yaml.SequenceStartEvent)
    while type(event := next_event()) is yaml.MappingStartEvent:
        if event.anchor is not None or event.tag is not None:
            raise _Unusual
        section_key, section_value = compose(next_event()), compose(next_event())
        if section_key.value != "section" or not isinstance(section_value, yaml.ScalarNode):
            raise _Unusual
        name = _string({"section": (section_key, section_value)}, "section", section_value, fail,
                       required=True)
        if compose(next_event()).value != "entries":
            raise _Unusual
        expect(yaml.SequenceStartEvent)
        yield name, None
        while type(item := next_event()) is not yaml.SequenceEndEvent:
            yield name, compose(item)
        expect(yaml.MappingEndEvent, plain=False)
    if type(event) is not yaml.SequenceEndEvent:
        raise _Unusual
    expect(yaml.DocumentEndEvent, plain=False)
    expect(yaml.StreamEndEvent, plain=False)


def _checked(entries: Iterable[tuple[str, yaml.Node | None]], fail: _Fail
             ) -> tuple[tuple[Entry, ...], tuple[str, ...]]:
    """The entries validated, ids and arXiv ids unique; and the section names."""
    checked: list[Entry] = []
    sections: dict[str, None] = {}
    seen: dict[str, int] = {}
    seen_arxiv: dict[str, str] = {}
    seen_doi: dict[str, str] = {}
    for section, entry_node in entries:
        if entry_node is None:
            sections[section] = None
            continue
        entry = _entry(entry_node, section, fail)
        if entry.id in seen:
            fail(f"duplicate id {entry.id!r} (first used on line {seen[entry.id]})", entry_node)
        seen[entry.id] = entry.line or 0
        if entry.arxiv_id:
            if entry.arxiv_id in seen_arxiv:
                fail(f"arXiv id {entry.arxiv_id} is already the entry {seen_arxiv[entry.arxiv_id]!r}",
                     entry_node)
            seen_arxiv[entry.arxiv_id] = entry.id
        if entry.doi:
            if entry.doi in seen_doi:
                fail(f"DOI {entry.doi} is already the entry {seen_doi[entry.doi]!r}", entry_node)
            seen_doi[entry.doi] = entry.id
        checked.append(entry)
    return tuple(checked), tuple(sections)


def _refuse_tags(root: yaml.Node, fail) -> None:
    """Fail on a node whose tag is not plain YAML data (`!!binary`, `!foo`,
    `!!python/...`); aliases are visited once, so shared and recursive ones stay cheap."""
    seen, stack = set(), [root]
    while stack:
        node = stack.pop()
        if node.tag not in _PLAIN_TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            fail(f"the YAML tag {tag} is not allowed (write plain text, numbers and lists)", node)
        if isinstance(node, yaml.ScalarNode) or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        else:
            stack.extend(item for pair in node.value for item in pair)


def parse_entry_text(text: str, section: str, where: str) -> Entry:
    """Validate one entry written as a YAML mapping (`id: ...` lines, as `edit` shows it)."""
    fail = _failer(where)
    root = _compose(text, where)
    if root is not None:
        _refuse_tags(root, fail)
    if not isinstance(root, yaml.MappingNode):
        fail("expected one entry: a mapping of fields (id, title, url, ...)", root)
    return _entry(root, section, fail)


def check_fields(fields: dict, section: str) -> Entry:
    """Validate an entry's fields given as options; a problem is a UsageError."""
    try:
        return parse_entry_text(_as_mapping(render_entry(fields)), section, "the entry")
    except CatalogueError as err:
        raise UsageError(err.problem[:1].upper() + err.problem[1:] + ".") from None


def _failer(where: str) -> _Fail:
    def fail(message: str, node: yaml.Node | None = None, hint: str | None = None) -> NoReturn:
        line = node.start_mark.line + 1 if node is not None else None
        raise CatalogueError(message, path=where, line=line, hint=hint)

    return fail


def _compose(text: str, where: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=_SAFE_LOADER)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else None
        problem = err.problem or err.context or "invalid YAML"
        # where the YAML parser noticed it can be far below the mistake: name where the
        # construct it was reading began ("while parsing a block mapping", line 21)
        began = err.context_mark.line + 1 if err.problem and err.context and err.context_mark else None
        context = f" ({err.context} that begins on line {began})" if began and began != line else ""
        raise CatalogueError(f"invalid YAML: {problem}{context}", path=where, line=line) from None
    except yaml.YAMLError as err:
        raise CatalogueError(f"invalid YAML: {err}", path=where) from None


def _mapping(node, what, fail) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        fail(f"expected {what} (a mapping of fields), found {_describe(node)}", node)
    fields: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            fail("field names must be plain words", key_node)
        if key_node.value in fields:
            fail(f"field `{key_node.value}` is given twice", key_node)
        fields[key_node.value] = (key_node, value_node)
    return fields


def _reject_unknown(fields, allowed, what, fail) -> None:
    for key, (key_node, _) in fields.items():
        if key not in allowed:
            fail(f"unknown {what} field `{key}` (allowed: {', '.join(sorted(allowed))})", key_node)


def _describe(node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    return f"the value {node.value!r}" if node is not None else "nothing"


@overload
def _string(fields, key, owner, fail, required: Literal[True]) -> str: ...
@overload
def _string(fields, key, owner, fail, required: bool = False) -> str | None: ...
def _string(fields, key, owner, fail, required=False) -> str | None:
    if key not in fields:
        if required:
            fail(f"missing required field `{key}`", owner)
        return None
    node = fields[key][1]
    if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
        if required or not (isinstance(node, yaml.ScalarNode)):
            fail(f"`{key}` must be text, found {_describe(node)}", node)
        return None
    value = " ".join(str(node.value).split())
    if required and not value:
        fail(f"`{key}` must not be empty", node)
    limit = MAX_CHARS.get(key, MAX_TEXT_CHARS)
    if len(value) > limit:
        fail(f"`{key}` is {len(value):,} characters long; at most {limit:,}", node)
    if _CONTROL.search(value):
        fail(f"`{key}` contains control characters", node)
    return value or None


def _entry(node, section: str, fail) -> Entry:
    fields = _mapping(node, "an entry", fail)
    _reject_unknown(fields, ENTRY_FIELDS, "entry", fail)
    entry_id = _string(fields, "id", node, fail, required=True)
    if not ID_PATTERN.match(entry_id):
        fail(f"id {entry_id!r} is not a slug: use lower-case letters, digits and dashes "
             "(for example `lora` or `gpt-3`)", fields["id"][1])
    title = _string(fields, "title", node, fail, required=True)
    url = _string(fields, "url", node, fail, required=True)
    if not URL_PATTERN.match(url):
        fail(f"url {url!r} of {entry_id!r} is not an http(s) link", fields["url"][1])
    kind = _string(fields, "kind", node, fail) or "paper"
    if kind not in KINDS:
        fail(f"kind {kind!r} of {entry_id!r} is not one of {', '.join(KINDS)}", fields["kind"][1])
    arxiv_id = None
    raw_arxiv = _string(fields, "arxiv", node, fail)
    if raw_arxiv is not None:
        arxiv_id = normalise_arxiv_id(raw_arxiv)
        if arxiv_id is None:
            fail(f"arxiv {raw_arxiv!r} of {entry_id!r} is not an arXiv identifier "
                 "(like 2106.09685 or hep-th/9901001; quote it in YAML)", fields["arxiv"][1])
    doi = None
    raw_doi = _string(fields, "doi", node, fail)
    if raw_doi is not None:
        doi = parse_doi(raw_doi)
        if doi is None:
            fail(f"doi {raw_doi!r} of {entry_id!r} is not a DOI (like 10.18653/v1/2020.acl-main.740)",
                 fields["doi"][1])
    summary = _string(fields, "summary", node, fail)
    needs_summary = False
    if "needs_summary" in fields:
        flag_node = fields["needs_summary"][1]
        if not (isinstance(flag_node, yaml.ScalarNode) and flag_node.tag == "tag:yaml.org,2002:bool"):
            fail(f"`needs_summary` of {entry_id!r} must be true or false", flag_node)
        needs_summary = flag_node.value.lower() in ("true", "yes", "on")
        if needs_summary and arxiv_id is not None:
            fail(f"entry {entry_id!r} is on arXiv: search reads its abstract, so it needs no "
                 "summary (remove `needs_summary`)", flag_node)
    if arxiv_id is None and doi is None and not summary and not needs_summary and kind not in WEB_KINDS:
        fail(f"entry {entry_id!r} needs an `arxiv` id, a `doi` or a `summary`: search has no text for it",
             node, hint="Or mark it `needs_summary: true` to search it by its title until then "
                        "(a blog or repo is searched by its page's own text, fetched by `paperscope ingest`).")
    authors = _words(fields, "authors", f"`authors` of {entry_id!r} must be a list of names", fail)
    tags = tuple(dict.fromkeys(_words(fields, "tags", f"`tags` of {entry_id!r} must be a list of words "
                                                       "(for example [peft, to-read])", fail)))
    note = _string(fields, "note", node, fail)
    year = None
    if "year" in fields:
        year_node = fields["year"][1]
        if not (isinstance(year_node, yaml.ScalarNode) and re.fullmatch(r"\d{4}", year_node.value)):
            fail(f"`year` of {entry_id!r} must be a four-digit year", year_node)
        year = int(year_node.value)
    return Entry(
        id=entry_id, title=title, url=url, kind=kind, section=section, arxiv_id=arxiv_id,
        summary=summary, needs_summary=needs_summary, authors=authors, year=year, tags=tags,
        note=note, line=node.start_mark.line + 1, doi=doi,
    )


def _words(fields, key: str, message: str, fail) -> tuple[str, ...]:
    """A list of short texts (names, tags): each non-empty, without control characters."""
    if key not in fields:
        return ()
    node = fields[key][1]
    if not isinstance(node, yaml.SequenceNode) or not all(
        isinstance(item, yaml.ScalarNode) and item.value.strip()
        and not _CONTROL.search(" ".join(item.value.split())) for item in node.value
    ):
        fail(message, node)
    words = tuple(" ".join(item.value.split()) for item in node.value)
    if len(words) > MAX_LIST_ITEMS:
        fail(f"`{key}` holds {len(words):,} items; at most {MAX_LIST_ITEMS:,}", node)
    if any(len(word) > MAX_CHARS[key] for word in words):
        fail(f"an item of `{key}` is longer than {MAX_CHARS[key]:,} characters", node)
    return words


SLUG_CHARS = 30  # an automatic id is at most this long (unless one word is longer)
_SLUG_TRAILING = {"a", "an", "and", "as", "at", "by", "for", "from", "in", "into", "is", "of",
                  "on", "or", "the", "to", "using", "via", "vs", "with", "without"}


def slug(text: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """An id from a title, short enough to type: its name before a colon when short ("LoRA:
    ..." -> "lora"), else its first words up to SLUG_CHARS, without a dangling "of" or "in"
    ("Uncertainty Quantification in Fine-tuned LLMs" -> "uncertainty-quantification"); made
    unique against `taken`. Accented letters lose their accents ("Über" -> "uber")."""
    head = text.split(":", 1)[0] if ":" in text and len(text.split(":", 1)[0].split()) <= 3 else text
    head = "".join(c for c in unicodedata.normalize("NFKD", head) if not unicodedata.combining(c))
    words = re.findall(r"[a-z0-9]+", head.lower()) or ["entry"]
    kept = [words[0][:SLUG_CHARS]]
    for word in words[1:]:
        if len("-".join([*kept, word])) > SLUG_CHARS:
            break
        kept.append(word)
    while len(kept) > 1 and kept[-1] in _SLUG_TRAILING:
        kept.pop()
    base = "-".join(kept)
    candidate, number = base, 2
    while candidate in taken:
        candidate, number = f"{base}-{number}", number + 1
    return candidate


def render_entry(fields: dict) -> str:
    """One entry as YAML block text (a `- id: ...` item at column 0), rendered by ruamel.yaml
    so that every value is quoted or folded as YAML requires."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString, FoldedScalarString

    yaml_writer = YAML()
    yaml_writer.width = 4096  # a title or link stays on its line; summaries fold by fold_pos
    yaml_writer.indent(mapping=2, sequence=2, offset=0)
    item = CommentedMap()
    for key, value in fields.items():
        if key in ("summary", "note"):
            value = _folded(value, FoldedScalarString)
        elif key in ("authors", "tags"):
            value = CommentedSeq(value)
            value.fa.set_flow_style()  # [Ada Lovelace, Alan Turing], as the file writes them
        elif key in ("arxiv", "doi"):
            value = DoubleQuotedScalarString(value)
        item[key] = value
    out = io.StringIO()
    yaml_writer.dump([item], out)
    return out.getvalue()


def _folded(text: str, folded_type, width: int = 88):
    """A folded (>-) scalar that breaks at the spaces where a `width`-wide fill would."""
    folded = folded_type(" ".join(text.split()))
    positions, line_start, last_space = [], 0, None
    for index, char in enumerate(folded):
        if char == " ":
            if index - line_start > width and last_space is not None:
                positions.append(last_space)
                line_start = last_space + 1
            last_space = index
    if len(folded) - line_start > width and last_space is not None and last_space > line_start:
        positions.append(last_space)
    folded.fold_pos = positions
    return folded


def insert_entry(text: str, section: str, fields: dict) -> str:
    """catalogue text with a new entry appended to `section` (created at the end if new).

    Everything else in the file, comments and formatting included, is kept byte for byte;
    the result is checked by parsing it before it is returned."""
    return _insert_block(text, section, render_entry(fields))


def _insert_block(text: str, section: str, block: str) -> str:
    """catalogue text with `block` (a `- id: ...` item at column 0) appended to `section`."""
    sections = _outline(text)
    lines = _lines(text)
    for number, place in enumerate(sections):
        if place.name != section:
            continue
        if place.items:
            indent = " " * (place.items[0].column - 2)
            gap = "\n" if _blank_between(lines, sections) else ""
        else:
            indent = " " * (place.column + 2)
            gap = ""
        if number + 1 < len(sections):
            end = sections[number + 1].line
            while end > 0 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
                end -= 1
        else:
            end = len(lines)
            while end > 0 and not lines[end - 1].strip():
                end -= 1
        new_lines = ([gap] if gap else []) + _indented(block, indent)
        if not place.items and place.entries_line is not None:
            # "entries:" with nothing (or null, or []) after it: replace that line's value with a block.
            key_line = place.entries_line
            lines[key_line] = lines[key_line].split(":", 1)[0] + ":\n"
        result = "".join(lines[:end] + new_lines + lines[end:])
        break
    else:
        name = section if re.fullmatch(r"[A-Za-z0-9][\w .,()&/+-]*", section) else json_quote(section)
        header = f"- section: {name}\n  entries:\n"
        body = "".join(lines).rstrip("\n")
        result = (body + "\n\n" if body else "") + header + "".join(_indented(block, "    "))
    return _valid_edit(result)


def _blank_between(lines: list[str], sections: list[_PlacedSection]) -> bool:
    """Whether the file separates entries by a blank line (as the repository's does), judged
    by the first section with two entries."""
    for place in sections:
        if len(place.items) >= 2:
            line = place.items[1].line
            return line > 0 and not lines[line - 1].strip()
    return True


def _lines(text: str) -> list[str]:
    """The lines of `text`, each with its line end (one is added to the last if it has none)."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def _indented(block: str, indent: str) -> list[str]:
    return [indent + line if line.strip() else line for line in block.splitlines(keepends=True)]


@dataclass(frozen=True)
class _PlacedEntry:
    """Where an entry stands in the file (0-based lines): its mapping from (line, column) to
    the end of its last value, and its `id` value as written."""

    line: int
    column: int
    end: tuple[int, int]  # (line, column) just after it
    id: str | None
    id_style: str | None
    id_span: tuple[int, int]  # character offsets of the id value


@dataclass(frozen=True)
class _PlacedSection:
    """Where a section stands: its mapping's (line, column), its `entries:` key line and list."""

    name: str | None
    line: int
    column: int
    entries_line: int | None
    in_flow: bool
    items: list[_PlacedEntry]


def _outline(text: str) -> list[_PlacedSection]:
    """The sections and entries of valid catalogue text, placed, from libyaml's events (no
    node tree, so editing a 200,000-entry file stays quick). Aliases where sections, entries
    or their ids stand are refused: such a file is edited by hand."""
    loader = _SAFE_LOADER(text)
    next_event: Callable[[], Any] = loader.get_event
    bom = 1 if text.startswith("\ufeff") else 0  # libyaml's offsets count from after it

    def refuse(event) -> NoReturn:
        raise CatalogueError("the file uses a YAML alias (*name) where paperscope edits; edit it by hand",
                             path="catalogue.yaml", line=event.start_mark.line + 1)

    def skip(event) -> tuple[int, int]:
        """Consume the node that starts with `event`; the (line, column) after it."""
        depth = 1 if _is(event, yaml.CollectionStartEvent) else 0
        while depth:
            event = next_event()
            depth += 1 if _is(event, yaml.CollectionStartEvent) else \
                -1 if _is(event, yaml.CollectionEndEvent) else 0
        return event.end_mark.line, event.end_mark.column

    def entry(start: Any) -> _PlacedEntry:
        if not _is(start, yaml.MappingStartEvent):
            refuse(start)
        end, placed_id, style, span = (start.end_mark.line, start.end_mark.column), None, None, (0, 0)
        while not _is(key := next_event(), yaml.MappingEndEvent):
            value = next_event()
            if _is(key, yaml.ScalarEvent) and key.value == "id":
                if not _is(value, yaml.ScalarEvent):
                    refuse(value)
                placed_id, style = value.value, value.style
                span = (value.start_mark.index + bom, value.end_mark.index + bom)
            skip(key)
            end = skip(value)
        return _PlacedEntry(start.start_mark.line, start.start_mark.column, end, placed_id, style, span)

    def section(start: Any) -> _PlacedSection:
        if not _is(start, yaml.MappingStartEvent):
            refuse(start)
        name, entries_line, in_flow, items = None, None, False, []
        while not _is(key := next_event(), yaml.MappingEndEvent):
            value = next_event()
            if _is(key, yaml.ScalarEvent) and key.value == "section" \
                    and _is(value, yaml.ScalarEvent):
                name = " ".join(value.value.split())
            elif _is(key, yaml.ScalarEvent) and key.value == "entries":
                entries_line = key.start_mark.line
                if _is(value, yaml.AliasEvent):
                    refuse(value)
                if _is(value, yaml.SequenceStartEvent):
                    in_flow = bool(value.flow_style)
                    while not _is(item := next_event(), yaml.SequenceEndEvent):
                        items.append(entry(item))
                    continue
            skip(key)
            skip(value)
        return _PlacedSection(name, start.start_mark.line, start.start_mark.column, entries_line,
                              in_flow, items)

    next_event()  # the stream's start
    if not _is(next_event(), yaml.DocumentStartEvent) or \
            not _is(next_event(), yaml.SequenceStartEvent):
        return []
    sections = []
    while not _is(event := next_event(), yaml.SequenceEndEvent):
        sections.append(section(event))
    return sections


def _is(event: Any, kind: type) -> bool:
    """isinstance for libyaml's events, kept untyped (the stubs type their marks as optional)."""
    return isinstance(event, kind)


@dataclass(frozen=True)
class _Span:
    """Where one entry stands: lines[first:end] hold it, its dash at column `indent`."""

    lines: list[str]
    first: int
    end: int
    indent: int
    entry: _PlacedEntry
    only: int | None  # the line of its section's `entries:` key when it is the only entry


def _span(text: str, entry_id: str) -> _Span:
    lines = _lines(text)
    for place in _outline(text):
        for item in place.items:
            if item.id != entry_id:
                continue
            line, column = item.line, item.column
            if place.in_flow or column < 2 or lines[line][column - 2:column] != "- ":
                raise CatalogueError(
                    f"entry {entry_id!r} is not written as a `- id: ...` item; edit it by hand",
                    line=line + 1)
            end = item.end[0] + (1 if item.end[1] else 0)
            while end > line + 1 and not lines[end - 1].strip():
                end -= 1
            return _Span(lines, line, end, column - 2, item,
                         place.entries_line if len(place.items) == 1 else None)
    raise CatalogueError(f"no entry {entry_id!r}")


def entry_text(text: str, entry_id: str) -> str:
    """One entry as the YAML mapping `edit` shows (`id: ...` at column 0)."""
    span = _span(text, entry_id)
    return _as_mapping(_block(span))


def remove_entry(text: str, entry_id: str) -> str:
    """catalogue text without the entry; a section left empty keeps its name (`entries: []`)."""
    span = _span(text, entry_id)
    lines = span.lines[:span.first] + span.lines[span.end:]
    at = span.first
    before = lines[at - 1] if at > 0 else ""
    after = lines[at] if at < len(lines) else None
    if after is not None and not after.strip() and (
            not before.strip() or (before.strip() == "entries:" and span.only is None)):
        del lines[at]
    elif at > 0 and not before.strip() and (after is None or not after.strip()
                                            or len(after) - len(after.lstrip()) < span.indent):
        del lines[at - 1]
    if span.only is not None:
        key = lines[span.only]
        lines[span.only] = key[:key.index("entries:") + len("entries:")] + " []\n"
    result = "".join(lines)
    return _valid_edit(result)


def move_entry(text: str, entry_id: str, section: str) -> str:
    """catalogue text with the entry, as written, moved to the end of `section` (created if new)."""
    span = _span(text, entry_id)
    return _insert_block(remove_entry(text, entry_id), section, _block(span))


def replace_entry(text: str, entry_id: str, mapping: str) -> str:
    """catalogue text with the entry replaced by `mapping` (as `entry_text` gives it)."""
    span = _span(text, entry_id)
    block = _indented(_as_item(mapping), " " * span.indent)
    result = "".join(span.lines[:span.first] + block + span.lines[span.end:])
    return _valid_edit(result)


def rename_entry(text: str, old: str, new: str) -> str:
    """catalogue text with the entry's id changed, quoted as the old one was."""
    span = _span(text, old)
    style = span.entry.id_style
    quoted = style in ("'", '"')
    written = f"{style}{new}{style}" if quoted else new if yaml.safe_load(new) == new else json_quote(new)
    first, end = span.entry.id_span
    result = text[:first] + written + text[end:]
    return _valid_edit(result)


def _valid_edit(result: str) -> str:
    """The edited text, once it parses: an edit that would break the file (an alias left
    without its anchor, say) writes nothing."""
    try:
        parse_catalogue(result)
    except CatalogueError as err:
        raise CatalogueError(f"the edit would leave the file invalid ({err.problem}); edit it by hand",
                             path="catalogue.yaml") from None
    return result


def _block(span: _Span) -> str:
    """The entry's lines moved left so that its dash is at column 0."""
    return "".join(line[min(span.indent, len(line) - len(line.lstrip(" "))):]
                   for line in span.lines[span.first:span.end])


def _as_mapping(item: str) -> str:
    """A `- key: ...` list item at column 0 as a plain mapping (`key: ...`)."""
    return "".join(line[2:] if line.startswith(("- ", "  ")) else line
                   for line in item.splitlines(keepends=True))


def _as_item(mapping: str) -> str:
    """A mapping at column 0 as a `- key: ...` list item, blank lines around it dropped."""
    lines = mapping.strip("\n").splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")), 0)
    return "".join(("- " if i == first else "  " if line.strip() else "") + line + "\n"
                   for i, line in enumerate(lines))


def json_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
