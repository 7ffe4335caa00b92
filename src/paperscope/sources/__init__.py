"""Where paper metadata comes from: the arXiv API, or an arXiv metadata snapshot."""

from __future__ import annotations

import re
from datetime import datetime, timezone


def clean_text(text: str | None) -> str:
    """Collapse the line breaks and runs of spaces arXiv leaves in titles and abstracts."""
    return " ".join((text or "").split())


_ID_MONTH = re.compile(r"^(?:[a-z-]+(?:\.[A-Z]{2})?/)?(\d{2})(\d{2})")


def month_from_arxiv_id(arxiv_id: str) -> str | None:
    """The month of first submission an arXiv id encodes (YYMM.NNNNN or archive/YYMMNNN), as
    YYYY-MM; None for anything else."""
    match = _ID_MONTH.match(arxiv_id)
    if not match or not 1 <= int(match.group(2)) <= 12:
        return None
    century = "19" if int(match.group(1)) >= 91 else "20"
    return f"{century}{match.group(1)}-{match.group(2)}"


def year_from_arxiv_id(arxiv_id: str) -> int | None:
    """The submission year an arXiv id encodes."""
    month = month_from_arxiv_id(arxiv_id)
    return int(month[:4]) if month else None


def utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()
