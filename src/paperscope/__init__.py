"""paperscope: semantic search over the abstracts of a curated reading list.

    from paperscope import Filters, Library
    library = Library.open()
    hits = library.search("adapters", filters=Filters(sections=("Training Recipe",))).hits
    print(library.cite([hit.document.id for hit in hits]))
"""

from .errors import (
    CatalogueChangedError,
    CatalogueError,
    FetchError,
    IndexCorruptError,
    IndexMismatchError,
    IndexMissingError,
    LockedError,
    ModelUnavailableError,
    PaperscopeError,
    SnapshotError,
    UnknownEntryError,
    UsageError,
)
from .version import __version__

__all__ = ["CatalogueChangedError", "CatalogueError", "Collection", "FetchError", "Filters",
           "IndexCorruptError", "IndexMismatchError", "IndexMissingError", "Library", "LockedError",
           "ModelUnavailableError", "PaperscopeError", "SnapshotError", "UnknownEntryError",
           "UsageError", "__version__", "open_collection"]
_LAZY = ("Library", "Filters", "Collection", "open_collection")


def __getattr__(name: str):
    if name in _LAZY:  # imported on first use, so `paperscope --help` stays instant
        from . import library

        return getattr(library, name)
    raise AttributeError(name)
