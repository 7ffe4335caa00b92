"""Source-qualified paper ids: `arxiv:2106.09685`, `doi:10.18653/v1/2021.acl-long.353`.

A qualified id is `scheme:local-id`: the scheme names the kind of id (and the source
registered under that name fetches it), the local id is the id in that source's own terms.
arXiv is the default scheme: an id without one is an arXiv id, as every file written
before sources were pluggable holds them. So the record cache keeps arXiv records under
their bare ids (`record_key`), and today's files read back unchanged.

Only the syntax lives here (nothing to load): which schemes exist is the
registry's business (`paperscope.sources.SOURCES`).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

DEFAULT_SCHEME = "arxiv"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*):(.*)$", re.S)


def split_id(paper_id: str) -> tuple[str, str]:
    """(scheme, local id) of a paper id; an id without a scheme is an arXiv id.

    The scheme is compared without case (`arXiv:2106.09685` is `arxiv:`); what follows the
    first colon is kept as it is (a DOI may hold colons; what people type is tidied where it
    is read, as catalogue.py does). ValueError for an id with nothing after its scheme."""
    match = _SCHEME.match(paper_id)
    scheme, local = (match.group(1).lower(), match.group(2)) if match else (DEFAULT_SCHEME, paper_id)
    if not local.strip():
        raise ValueError(f"{paper_id!r} is not a paper id")
    return scheme, local


def qualify(paper_id: str, scheme: str = DEFAULT_SCHEME) -> str:
    """The qualified id: `qualify("2106.09685") == "arxiv:2106.09685"`; an id that names its
    scheme keeps it (`qualify("doi:10.1/x") == "doi:10.1/x"`). `scheme` is the one a bare id
    is taken to be in (a DOI service qualifies its bare DOIs with `scheme="doi"`)."""
    found, local = split_id(paper_id)
    return f"{found if _SCHEME.match(paper_id) else scheme.lower()}:{local}"


def record_key(paper_id: str) -> str:
    """The key a record is kept under in the record cache (records.json): the qualified id,
    with the default scheme left out, so arXiv records keep the bare keys of today's files.
    `record_key("arxiv:2106.09685") == record_key("2106.09685") == "2106.09685"`,
    `record_key("doi:10.1/x") == "doi:10.1/x"`."""
    if ":" not in paper_id and paper_id.strip():  # a bare arXiv id, as nearly every key is
        return paper_id
    scheme, local = split_id(paper_id)
    return local if scheme == DEFAULT_SCHEME else f"{scheme}:{local}"


def local_id(paper_id: str, scheme: str) -> str:
    """The id in the terms of the source of `scheme`; ValueError when it names another scheme."""
    found, local = split_id(paper_id)
    if found != scheme:
        raise ValueError(f"{paper_id!r} is a {found} id, not a {scheme} id")
    return local


MAX_DOI_CHARS = 300
_DOI = re.compile(r"^10\.\d{4,9}/[^\s\x00-\x1f\x7f]+$")
_DOI_PREFIX = re.compile(r"^(?:doi:\s*|(?:https?://)?(?:dx\.)?doi\.org/)", re.I)


def parse_doi(text: str) -> str | None:
    """The DOI `text` names, in its canonical lower case (DOIs ignore case), or None: a bare
    `10.18653/v1/2020.acl-main.740`, `doi:10.…`, or `https://doi.org/10.…` (also `dx.doi.org`,
    and with its slashes written `%2F`)."""
    text = text.strip()
    prefixed = _DOI_PREFIX.match(text)
    doi = text[prefixed.end():] if prefixed else text
    if prefixed and prefixed.group(0).lower().endswith("doi.org/"):
        doi = unquote(doi.split("#")[0].split("?")[0])
    doi = doi.strip()
    if len(doi) > MAX_DOI_CHARS or not _DOI.match(doi):
        return None
    return doi.lower()
