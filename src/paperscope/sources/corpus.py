"""A named corpus (corpora.py) as a PaperSource: the arXiv records imported into it, read
from its document table with no network (for `add --corpus`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import date

from ..records import PaperRecord
from .base import Deleted, FetchResult, no_dates


class CorpusSource:
    """The records of the corpus `name`; an unknown name is UnknownEntryError, listing the
    known ones. It keeps the date papers first appeared, not when they changed: no
    `changed_since`."""

    scheme = "arxiv"
    batch_size = None

    def __init__(self, name: str):
        from ..corpora import Corpus

        self.corpus = Corpus.open(name)
        self.label = f"the corpus {name}"
        self.provenance = f"corpus:{name}"  # PaperRecord.source of what it reads

    def fetch(self, ids: Sequence[str], progress: Callable[[int], None] | None = None) -> FetchResult:
        """The records of the `ids` the corpus holds; the others are in neither `records`
        nor `failures`."""
        from ..corpora import StagedDocuments, document_record

        documents = StagedDocuments(self.corpus.staged_path)
        try:
            found = {i: documents.find(i) for i in ids}
        finally:
            documents.close()
        if progress:
            progress(len(ids))
        return FetchResult(records={i: document_record(document, self.provenance)
                                    for i, document in found.items() if document is not None})

    def work(self, ids: Sequence[str]) -> tuple[int, str]:
        return len(ids), "papers"

    def changed_since(self, since: date, *, until: date | None = None,
                      categories: Sequence[str] = ()) -> Iterator[PaperRecord | Deleted]:
        return no_dates(self)

    def records(self) -> Iterator[PaperRecord]:
        """Every record of the corpus, in import order."""
        from ..corpora import StagedDocuments, document_record

        documents = StagedDocuments(self.corpus.staged_path)
        try:
            for document in documents:
                yield document_record(document, self.provenance)
        finally:
            documents.close()
