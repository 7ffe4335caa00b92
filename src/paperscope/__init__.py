"""paperscope: semantic search over the abstracts of a curated reading list."""

__version__ = "0.1.0"
__all__ = ["Library", "__version__"]


def __getattr__(name: str):
    if name == "Library":  # imported on first use, so `paperscope --help` stays instant
        from .library import Library

        return Library
    raise AttributeError(name)
