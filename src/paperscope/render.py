"""Turning hits into text for people: a rich table for terminals, plain lines for pipes.
Used by the CLI only; returns text or renderables, prints nothing. Text from files or the
network passes through `printable` before it reaches a terminal."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from .records import Hit

FORMATS = ("table", "json", "jsonl", "bibtex")
# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional controls that
# reorder what follows (U+202E writes it backwards).
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with every escape sequence, control and bidi character made harmless (U+FFFD)."""
    return _UNPRINTABLE.sub("\ufffd", text)


def hits_as_text(hits: Sequence[Hit]) -> str:
    """The plain layout used when output is piped: three lines a hit."""
    lines = []
    for hit in hits:
        meta = hit.document.meta
        facts = " · ".join(str(v) for v in (meta.get("section"), meta.get("kind"), meta.get("year"),
                                            meta.get("url")) if v)
        lines.append(f"{hit.rank:>2}. {hit.document.title}  [{hit.document.id}]  {hit.score:.3f}")
        if facts:
            lines.append(f"    {facts}")
        if hit.shared_terms:
            lines.append(f"    shared: {', '.join(hit.shared_terms)}")
        if hit.snippet:
            lines.append(f"    {hit.snippet}")
    return "\n".join(lines)


def hits_as_table(hits: Sequence[Hit], query_terms: Callable[[str], list[str]] | None,
                  query: str, width: int | None = None):
    """A rich Table that fits the terminal, with the query's terms highlighted in each snippet."""
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=True, header_style="bold", expand=False, width=width, show_lines=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("entry", ratio=3)
    table.add_column("why it matched", ratio=4)
    wanted = set(query_terms(query)) if query_terms and query else set()
    for hit in hits:
        meta = hit.document.meta
        entry = Text(printable(hit.document.title), style="bold")
        entry.append(f"\n{printable(hit.document.id)}", style="cyan")
        facts = " · ".join(str(v) for v in (meta.get("section"), meta.get("kind"), meta.get("year")) if v)
        if facts:
            entry.append(f"\n{printable(facts)}", style="dim")
        if meta.get("url"):
            entry.append(f"\n{printable(str(meta['url']))}", style="dim underline")
        snippet = printable(hit.snippet)
        why = Text(snippet)
        if wanted and query_terms:
            for match in re.finditer(r"\w[\w-]*", snippet):
                if set(query_terms(match.group())) & wanted:
                    why.stylize("bold yellow", match.start(), match.end())
        if hit.shared_terms:
            why = Text("shared: ", style="dim") + Text(printable(", ".join(hit.shared_terms)), style="bold yellow") \
                + Text("\n") + why
        table.add_row(str(hit.rank), f"{hit.score:.3f}", entry, why)
    return table
