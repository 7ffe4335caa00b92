"""Typed errors of paperscope.

Every error carries a message for people and, where one exists, a hint: the
command that repairs the problem. The CLI turns them into a message on stderr
and the exit code of the class; nothing below the CLI prints or exits.
"""

from __future__ import annotations


class PaperscopeError(Exception):
    """Base class of every error paperscope raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class UsageError(PaperscopeError):
    """The caller asked for something that cannot be done as asked."""

    exit_code = 2


class CatalogueError(PaperscopeError):
    """catalogue.yaml is missing, malformed or invalid."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 hint: str | None = None):
        location = path or "catalogue"
        if line is not None:
            location = f"{location}:{line}"
        super().__init__(f"{location}: {message}", hint)
        self.problem = message  # without the file and line
        self.path = path
        self.line = line


class UnknownEntryError(PaperscopeError):
    """An entry id that is not in the catalogue or index."""

    exit_code = 3


class IndexMissingError(PaperscopeError):
    """There is no index (or a file of it is gone)."""

    exit_code = 4


class IndexCorruptError(PaperscopeError):
    """A file of the index cannot be read or does not match the manifest."""

    exit_code = 5


class IndexMismatchError(PaperscopeError):
    """The index was built with another model, dimension or format."""

    exit_code = 6


class ModelUnavailableError(PaperscopeError):
    """The embedding model cannot be loaded offline."""

    exit_code = 7


class FetchError(PaperscopeError):
    """Some entries could not be fetched; what was fetched is kept."""

    exit_code = 8

    def __init__(self, message: str, failures: dict[str, str], hint: str | None = None):
        super().__init__(message, hint)
        self.failures = failures


class SnapshotError(PaperscopeError):
    """An arXiv metadata snapshot file cannot be read."""

    exit_code = 2


class LockedError(PaperscopeError):
    """Another paperscope process is writing this index."""

    exit_code = 9


class CatalogueChangedError(PaperscopeError):
    """catalogue.yaml changed between being read and being written by an editing command."""

    exit_code = 9


class StorageError(PaperscopeError):
    """A file could not be read or written: permissions, a full disk, a read-only folder."""

    exit_code = 10


def storage_error(err: Exception) -> StorageError:
    """The StorageError that says what an OSError or SQLite error was, in words."""
    if isinstance(err, OSError):
        what = err.strerror or str(err)
        where = f" {err.filename}" if err.filename else ""
        return StorageError(f"Cannot read or write{where}: {what}.",
                            "Nothing half-written was kept; free some space or fix the permissions "
                            "and run the command again.")
    return StorageError(f"Cannot write the index's document table: {err}.",
                        "Nothing half-written was kept; free some space and run the command again.")


class UnsupportedBySourceError(UsageError):
    """A source was asked for something it does not do (the arXiv API holds no local dump
    to read through; a dump file has no server to ask)."""
