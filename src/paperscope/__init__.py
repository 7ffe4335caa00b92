"""paperscope: semantic search over the abstracts of a curated reading list."""

__version__ = "0.1.0"

from .library import Library  # noqa: E402

__all__ = ["Library", "__version__"]
