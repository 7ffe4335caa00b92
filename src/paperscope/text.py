"""Splitting texts into sentences and passages."""

from __future__ import annotations

import re

from .records import Document

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
# all-MiniLM-L6-v2 reads 256 word pieces (trained on 128), so a long abstract embedded whole
# loses its tail and blurs its sentences together. Passages at three scales let a question meet
# a whole topic or a single finding; a document scores by its best passage. Measured (nDCG@10,
# hybrid; README "Quality"): SciFact train 0.731 whole, 0.744 at 90 words, 0.752 at these three;
# the 54 catalogue questions 0.908 and 0.901; related entries 0.815 and 0.834.
PASSAGE_WORDS = (90, 55, 35)
# Passage schemes by name. "whole" embeds title and text as one passage (the model reads its
# first 256 word pieces): one vector a document instead of about thirteen, for large corpora
# (README "Scale": SciFact train nDCG@10 0.731 against 0.752, at a thirteenth of the vectors
# and of the embedding time).
SCHEMES = {"multi-scale": PASSAGE_WORDS, "whole": ()}
DEFAULT_SCHEME = "multi-scale"


def counted(number: int, noun: str) -> str:
    """"1 entry", "2 entries", "1,200 papers": a number with its noun in the right form."""
    return f"1 {noun}" if number == 1 else f"{number:,} {plural(noun)}"


def plural(noun: str) -> str:
    return noun[:-1] + "ies" if re.search(r"[^aeiou]y$", noun) else noun + "s"


def no_abstract_yet(number: int) -> str:
    """The notice for arXiv entries searched by their title (or the summary given when they were
    added offline) until their abstracts are fetched."""
    if number == 1:
        return "1 entry waits for its arXiv abstract (searched by its title or summary until then)"
    return f"{number:,} entries wait for their arXiv abstract (searched by title or summary until then)"


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def passages(document: Document, lengths: tuple[int, ...] = PASSAGE_WORDS) -> list[str]:
    """The texts embedded for a document: its title with consecutive sentences of its text,
    packed up to each of `lengths` words (one passage when the text is short), without repeats;
    no lengths means the whole text as one passage."""
    if not lengths:
        return [document.embedding_text]
    found = dict.fromkeys(text for max_words in lengths for text in _packed(document, max_words))
    return list(found)


def _packed(document: Document, max_words: int) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    count = 0
    for sentence in sentences(document.text):
        words = len(sentence.split())
        if current and count + words > max_words:
            parts.append(" ".join(current))
            current, count = [], 0
        current.append(sentence)
        count += words
    if current:
        parts.append(" ".join(current))
    return [f"{document.title}. {part}" for part in parts] or [document.embedding_text]


def name_key(text: str) -> str:
    """A name as compared: lower-case words joined by single spaces."""
    return " ".join(re.findall(r"\w+", text.casefold()))


def document_names(document: Document) -> set[str]:
    """What people call a document: its id, its title, the name before a colon in its title
    ("LoRA" in "LoRA: Low-Rank Adaptation ...") and names in parentheses ("RLHF", "Codex")."""
    title = document.title
    names = {document.id, title, *re.findall(r"\(([^()]{2,40})\)", title)}
    head = title.split(":", 1)[0]
    if ":" in title and len(head.split()) <= 4:
        names.add(head)
    keys = {name_key(name) for name in names}
    return {key for key in keys if len(key) >= 2}


def shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters at a word boundary, with "…" when cut (a
    single word longer than the limit is cut inside it)."""
    if len(text) <= limit:
        return text
    head = text[:limit - 1]
    cut = head.rsplit(" ", 1)[0] if " " in head and not text[limit - 1].isspace() else head
    return cut.rstrip(" ,;:-–—") + "…"
