"""A served copy of the test library with a hostile entry, shared by the server tests."""

from __future__ import annotations

from pathlib import Path

from paperscope.library import Library

from .conftest import copy_fixture_library

HOSTILE_TITLE = "<img src=x onerror=alert(1)>"
HOSTILE_ID = "hostile-entry"


def hostile_library(target: Path) -> Path:
    """A copy of the frozen test library plus one entry whose title, summary and note are HTML."""
    copy_fixture_library(target)
    Library.open(target).add(
        "https://example.com/hostile", title=HOSTILE_TITLE, entry_id=HOSTILE_ID,
        section="LLM Evaluation", kind="blog", tags=["<b>tag</b>"],
        summary='A summary with <script>alert("summary")</script> about evaluating chatbots.',
        note='<a href="javascript:alert(3)">a note</a>')
    return target
