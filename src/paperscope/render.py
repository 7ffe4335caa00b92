"""Turning hits into text for people: a rich table for terminals, plain lines for pipes, and
the text of titles, abstracts and snippets as every front door shows it (`display_text`: the
CLI, the JSON of --json, the web page and API, MCP). Returns text or renderables, prints
nothing. Text from files or the network passes through `printable` before it reaches a
terminal."""

from __future__ import annotations

import re
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from .records import WEB_KINDS, Hit

FORMATS = ("table", "json", "jsonl", "bibtex")
WIDE = 100  # from this many columns on, hits are a table; below, one compact block each
AUTHORS_SHOWN = 3  # `show` names this many authors of a longer list, then "and N others"
SHOWN_PAGE_CHARS = 1_200  # `show` prints the start of a blog's or repo's fetched text, not all of it
_LATEX_COMMAND = re.compile(r"\\(?:textit|textbf|textsc|texttt|textrm|textsf|emph|mathrm|mathbf|"
                            r"mathit|mathcal|mathbb|mathsf|boldsymbol|underline|text|mbox|url)\s*"
                            r"\{([^{}]*)\}|\{\\(?:em|it|bf|sc|tt|rm)\s+([^{}]*)\}")
_GREEK_NAMES = ("alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa "
                "lambda mu nu xi pi rho sigma tau upsilon phi varphi chi psi omega Gamma Delta "
                "Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega")
_GREEK = dict(zip(_GREEK_NAMES.split(), "αβγδϵεζηθϑικλμνξπρστυϕφχψωΓΔΘΛΞΠΣΥΦΨΩ", strict=True))
# A command shown as the character it prints; the spacing commands as a space, the sizing and
# font switches as nothing.
_LATEX_SYMBOLS = {
    **_GREEK, "sim": "~", "times": "\u00d7", "approx": "≈", "leq": "≤", "geq": "≥", "le": "≤",
    "ge": "≥", "neq": "≠", "ne": "≠", "lesssim": "≲", "gtrsim": "≳", "simeq": "≃", "equiv": "≡",
    "propto": "∝", "ll": "≪", "gg": "≫", "pm": "±", "cdot": "·", "circ": "∘", "odot": "⊙",
    "star": "⋆", "ast": "\u2217", "ell": "\u2113", "infty": "∞", "in": "∈", "to": "→", "rightarrow": "→",
    "leftarrow": "←", "nabla": "∇", "partial": "∂", "sum": "∑", "prime": "\u2032", "ldots": "…",
    "dots": "…", "cdots": "⋯", "log": "log", "ln": "ln", "exp": "exp", "max": "max",
    "min": "min", "left": "", "right": "", "rm": "", "it": "", "bf": "", "sc": "", "tt": "",
    "%": "%", "&": "&", "_": "_", "#": "#", "$": "$", "{": "{", "}": "}", ",": " ", ";": " ",
    ":": " ", " ": " ", "!": "", "(": "", ")": ""}
_LATEX_SYMBOL = re.compile(r"\\([%&_#${},;: !()]|[a-zA-Z]+(?![a-zA-Z]))( ?)")
# Letters, whose following space TeX swallows (`$\\Delta W$` -> ΔW); a relation keeps its own.
_LETTERS = {*_GREEK, "ell", "infty", "partial", "nabla", "prime"}
_QUOTES = {"``": "\u201c", "''": "\u201d", "~": " "}
_MATH = re.compile(r"\$([^$]{1,60})\$")
_WORD = re.compile(r"\w[\w-]*")
# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional controls that
# reorder what follows (U+202E writes it backwards).
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with every escape sequence, control and bidi character made harmless (U+FFFD)."""
    return _UNPRINTABLE.sub("\ufffd", text)


def display_text(text: str) -> str:
    """A title or abstract as a terminal shows it: `latex_as_text`, then `printable`."""
    return printable(latex_as_text(text))


def latex_as_text(text: str) -> str:
    """A title or abstract as people read it: simple LaTeX shown as text (`\\textit{Pythia}`
    -> Pythia, `40\\%` -> 40%, `~` -> a space, `$\\sim$` -> ~) and line breaks joined.
    Greek letters and common symbols are shown as characters (`$\\Delta W$` -> ΔW). What
    every front door shows (the JSON of --json, the API and MCP keep control characters as
    data: JSON escapes them). For display only: stored and indexed text keep what arXiv wrote."""
    for _ in range(3):  # nested commands, from the inside out
        text = _LATEX_COMMAND.sub(lambda m: m.group(1) or m.group(2) or "", text)
    text = re.sub("``|''|~", lambda m: _QUOTES[m.group()], text)
    text = _MATH.sub(lambda m: m.group(1).replace("{", "").replace("}", ""), text)
    text = _LATEX_SYMBOL.sub(_symbol, text)
    return " ".join(text.split())


def hit_json(hit: Hit) -> dict:
    """A hit as `search --json`, the API and MCP give it: its title and snippet as displayed."""
    data = hit.to_json()
    data["title"] = latex_as_text(data["title"])
    data["snippet"] = latex_as_text(data["snippet"])
    return data


def _symbol(match: re.Match) -> str:
    name, space = match.groups()
    if name not in _LATEX_SYMBOLS:
        return match.group()
    return _LATEX_SYMBOLS[name] + ("" if name in _LETTERS else space)


def short_authors(authors: Sequence[str], every: bool = False) -> str:
    """"A, B, C and 67 others" (every name with `every`)."""
    if every or len(authors) <= AUTHORS_SHOWN + 1:
        return ", ".join(authors)
    return f"{', '.join(authors[:AUTHORS_SHOWN])} and {len(authors) - AUTHORS_SHOWN} others"


def wrap(text: str, width: int | None, indent: str = "", first: str | None = None) -> str:
    """`text` wrapped to `width` columns between words (never inside one: a long link stays
    whole), or on one line when `width` is None."""
    first = indent if first is None else first
    if width is None:
        return first + text
    return textwrap.fill(text, width=max(width, len(first) + 20), initial_indent=first,
                         subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def hits_as_text(hits: Sequence[Hit], width: int | None = None) -> str:
    """Hits as plain lines: the rank and title (with id and score), then section, kind, year
    and the whole link, then shared words and the best sentence; wrapped to `width` columns
    (between words) when given, one line each otherwise (for pipes)."""
    blocks = []
    for hit in hits:
        meta = hit.document.meta
        lines = [wrap(f"{display_text(hit.document.title)}  [{printable(hit.document.id)}]  "
                      f"{hit.score:.3f}", width, "    ", f"{hit.rank:>2}. ")]
        facts = " · ".join(str(v) for v in (meta.get("section"), meta.get("kind"), meta.get("year")) if v)
        url = printable(str(meta.get("url") or ""))
        if width is not None and facts and url and 4 + len(facts) + 3 + len(url) > width:
            lines += [wrap(printable(facts), width, "    "), f"    {url}"]  # the link whole, alone
        elif facts or url:
            lines.append("    " + " · ".join(printable(v) for v in (facts, url) if v))
        if hit.shared_terms:
            lines.append(wrap(f"shared: {printable(', '.join(hit.shared_terms))}", width, "    "))
        if hit.snippet:
            lines.append(wrap(display_text(hit.snippet), width, "    "))
        blocks.append("\n".join(lines))
    return "\n".join(blocks) if width is None else "\n\n".join(blocks)


def content_terms(tokenize: Callable[[str], list[str]], query: str) -> set[str]:
    """The stems worth highlighting for `query` (`tokenize` drops the stop words)."""
    return set(tokenize(query)) if query else set()


def highlight(text, wanted: set[str], tokenize: Callable[[str], list[str]], start: int = 0) -> None:
    """Make bold yellow the words of a rich Text (from `start` on) whose stems are `wanted`."""
    if not wanted:
        return
    for match in _WORD.finditer(text.plain, start):
        if set(tokenize(match.group())) & wanted:
            text.stylize("bold yellow", match.start(), match.end())


def hits_for_terminal(hits: Sequence[Hit], tokenize: Callable[[str], list[str]], query: str,
                      width: int):
    """A renderable that fits `width` columns and never cuts a link: a table from WIDE columns
    on (when every link fits whole beside the snippet), else one compact block per hit. Content words of
    the query are highlighted, in titles too."""
    from rich.text import Text

    wanted = content_terms(tokenize, query)
    longest = max((len(str(hit.document.meta.get("url") or "")) for hit in hits), default=0)
    if width >= WIDE and longest + 60 <= width:  # room for the snippet beside the whole link
        return _hits_table(hits, tokenize, wanted, width, longest)
    text = Text(hits_as_text(hits, width))
    offset = 0
    for block in text.plain.split("\n\n"):
        title_end = offset + block.find("\n") if "\n" in block else offset + len(block)
        text.stylize("bold", offset, title_end)
        highlight(text, wanted, tokenize, offset)
        offset += len(block) + 2
    return text


def _hits_table(hits: Sequence[Hit], tokenize: Callable[[str], list[str]], wanted: set[str],
                width: int, longest: int):
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=True, header_style="bold", expand=False, width=width, show_lines=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("entry", width=max(longest, (width - 20) * 3 // 7))  # the links whole
    table.add_column("why it matched", ratio=1)
    for hit in hits:
        meta = hit.document.meta
        entry = Text(display_text(hit.document.title), style="bold")
        highlight(entry, wanted, tokenize)
        entry.append(f"\n{printable(hit.document.id)}", style="cyan")
        facts = " · ".join(str(v) for v in (meta.get("section"), meta.get("kind"), meta.get("year")) if v)
        if facts:
            entry.append(f"\n{printable(facts)}", style="dim")
        if meta.get("url"):
            entry.append(f"\n{printable(str(meta['url']))}", style="dim underline")
        why = Text(display_text(hit.snippet))
        highlight(why, wanted, tokenize)
        if hit.shared_terms:
            why = Text("shared: ", style="dim") + Text(printable(", ".join(hit.shared_terms)), style="bold yellow") \
                + Text("\n") + why
        table.add_row(str(hit.rank), f"{hit.score:.3f}", entry, why)
    return table


def entries_as_text(entries: Sequence, width: int | None) -> str:
    """`list`: entries under their section headings, one per line: id, kind, title and arXiv
    id, the title wrapped under itself to `width` columns (between words) when given; an id
    longer than its column then stands on a line of its own above the rest."""
    lines: list[str] = []
    id_width = min(max((len(e.id) for e in entries), default=0), 34 if width is None else max(12, width // 3))
    section = None
    for entry in entries:
        if entry.section != section:
            section = entry.section
            lines += ["", printable(section)] if lines else [printable(section)]
        shown_id = printable(entry.id)
        if width is not None and len(shown_id) > id_width:  # a long id on a line of its own,
            lines.append(f"  {shown_id}")                   # the columns stay aligned
            shown_id = ""
        first = f"  {shown_id:<{id_width}} {entry.kind:<5} "
        arxiv = f"  arXiv:{entry.arxiv_id}" if entry.arxiv_id else ""
        lines.append(wrap(display_text(entry.title) + arxiv, width, " " * len(first), first))
    return "\n".join(lines)


def entry_as_text(data: dict, width: int, every_author: bool = False) -> str:
    """`show`: title, authors (shortened unless `every_author`), facts, link, then the abstract
    or summary and the note, wrapped to `width` columns."""
    lines = [wrap(display_text(data["title"]), width)]
    if data["authors"]:
        lines.append(wrap(printable(short_authors(data["authors"], every_author)), width))
    facts = [data["section"], data["kind"], str(data["year"] or "")]
    if data["arxiv_id"]:
        facts.append(f"arXiv:{data['arxiv_id']}")
    lines.append(wrap(printable(" · ".join(f for f in facts if f)), width))
    if data["tags"]:
        lines.append(wrap(printable("tags: " + ", ".join(data["tags"])), width))
    lines.append(printable(data["url"]))
    text = data["abstract"] or data["summary"]
    if data["kind"] in WEB_KINDS and text:  # a page's fetched text: the summary wins, else its start
        text = data["summary"] or _shortened(data["abstract"], SHOWN_PAGE_CHARS)
    if text:
        lines += ["", wrap(display_text(text), width)]
    if data["note"]:
        lines += ["", wrap(display_text(f"Note: {data['note']}"), width)]
    return "\n".join(lines)


def _shortened(text: str, limit: int) -> str:
    """`text` cut at the last space before `limit` characters, with an ellipsis if cut."""
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


_ATOM = "http://www.w3.org/2005/Atom"


def atom_feed(items: Sequence[dict], *, title: str, feed_id: str, link: str | None = None) -> str:
    """An Atom feed (RFC 4287) of papers, newest first as given: each item a dict with `id` (a
    stable URI), `title`, `url`, `date` (YYYY[-MM[-DD]]), `authors`, `summary`. A feed reader
    subscribes to it; nothing in it runs or loads anything."""
    ET.register_namespace("", _ATOM)
    feed = ET.Element(f"{{{_ATOM}}}feed")
    ET.SubElement(feed, f"{{{_ATOM}}}title").text = title
    ET.SubElement(feed, f"{{{_ATOM}}}id").text = feed_id
    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    ET.SubElement(feed, f"{{{_ATOM}}}updated").text = now
    ET.SubElement(ET.SubElement(feed, f"{{{_ATOM}}}author"), f"{{{_ATOM}}}name").text = "paperscope"
    if link:
        ET.SubElement(feed, f"{{{_ATOM}}}link", rel="self", href=link)
    for item in items:
        entry = ET.SubElement(feed, f"{{{_ATOM}}}entry")
        ET.SubElement(entry, f"{{{_ATOM}}}id").text = item["id"]
        ET.SubElement(entry, f"{{{_ATOM}}}title").text = latex_as_text(item["title"])
        if item.get("url"):
            ET.SubElement(entry, f"{{{_ATOM}}}link", rel="alternate", href=item["url"])
        ET.SubElement(entry, f"{{{_ATOM}}}updated").text = _atom_time(item.get("date")) or now
        for name in (item.get("authors") or [])[:20]:
            ET.SubElement(ET.SubElement(entry, f"{{{_ATOM}}}author"), f"{{{_ATOM}}}name").text = name
        ET.SubElement(entry, f"{{{_ATOM}}}summary").text = latex_as_text(item.get("summary") or "")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="unicode") + "\n"


def _atom_time(day: str | None) -> str | None:
    """A YYYY[-MM[-DD]] date as an RFC 3339 time (its first moment, UTC); None for anything else."""
    if not day or not re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?", day):
        return None
    return (day + "-01-01"[len(day) - 4:] if len(day) < 10 else day) + "T00:00:00Z"



def discoveries_as_text(papers: Sequence[dict], width: int | None = None) -> str:
    """Discovered papers (as `Discovery.to_json` gives them) as plain lines: rank, title, year,
    id and score, then the link (and how many chosen entries found it), then each entry it is
    near with the words they share; wrapped to `width` columns when given, one line each
    otherwise (for pipes)."""
    blocks = []
    for paper in papers:
        lines = []
        year = f" ({paper['year']})" if paper.get("year") else ""
        lines.append(wrap(f"{display_text(paper['title'])}{year}  [{printable(paper['id'])}]  "
                          f"{paper['score']:.3f}", width, "    ", f"{paper['rank']:>2}. "))
        many = f"; close to {paper['entries']} of the chosen entries" if paper["entries"] > 1 else ""
        lines.append(wrap(f"{printable(str(paper.get('url') or ''))}{many}", width, "    "))
        for closest in paper["closest"]:
            shared = f": {printable(', '.join(closest['shared_terms']))}" if closest["shared_terms"] else ""
            lines.append(wrap(f"close to {printable(closest['entry'])} ({closest['score']:.2f}){shared}",
                              width, "      ", "    "))
        blocks.append("\n".join(lines))
    return "\n".join(blocks) if width is None else "\n\n".join(blocks)


def discoveries_as_markdown(papers: Sequence[dict], *, title: str) -> str:
    """Discovered papers (as `Discovery.to_json` gives them) as a Markdown list under a heading:
    each a link with its year, then the catalogue entries it is near and the words they share."""
    lines = [f"# {title}", ""]
    if not papers:
        lines.append("Nothing found.")
    for paper in papers:
        name = latex_as_text(paper["title"]).replace("[", "\\[").replace("]", "\\]")
        link = f"[{name}]({paper['url']})" if paper.get("url") else name
        year = f" ({paper['year']})" if paper.get("year") else ""
        near = "; ".join(f"`{c['entry']}` ({c['score']:.2f}"
                         + (f": {', '.join(c['shared_terms'])}" if c["shared_terms"] else "") + ")"
                         for c in paper["closest"])
        lines.append(f"{paper['rank']}. {link}{year} · near {near}")
    return "\n".join(lines) + "\n"
