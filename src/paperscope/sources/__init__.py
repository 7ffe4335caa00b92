"""Where paper metadata comes from: the arXiv API, or an arXiv metadata snapshot."""

from __future__ import annotations

import re
from datetime import datetime, timezone


def clean_text(text: str | None) -> str:
    """Collapse the line breaks and runs of spaces arXiv leaves in titles and abstracts."""
    return " ".join((text or "").split())


def year_from_arxiv_id(arxiv_id: str) -> int | None:
    """The submission year encoded in an arXiv id (YYMM.NNNNN or archive/YYMMNNN)."""
    match = re.match(r"^(?:[a-z-]+(?:\.[A-Z]{2})?/)?(\d{2})(\d{2})", arxiv_id)
    if not match:
        return None
    yy = int(match.group(1))
    return (1900 if yy >= 91 else 2000) + yy


def utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()
