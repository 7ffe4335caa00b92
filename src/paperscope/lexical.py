"""The lexical ranker: BM25 (bm25s) over stemmed English tokens.

Hyphenated words are indexed both split and joined, so that "fine-tuning",
"fine tuning" and "finetuning" meet. The index is serialised to one .npz blob
that the store writes beside the vectors.
"""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_HYPHENATED = re.compile(r"\b(\w+)-(\w+)(?:-(\w+))?\b")
BM25_PARAMS = {"k1": 1.2, "b": 0.75, "method": "lucene"}


def _expand(text: str) -> str:
    joined = ["".join(part for part in match.groups() if part) for match in _HYPHENATED.finditer(text)]
    return f"{text} {' '.join(joined)}" if joined else text


def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased, stop-word-free, stemmed tokens of each text."""
    import bm25s

    return bm25s.tokenize([_expand(t) for t in texts], stopwords="en", stemmer=_stemmer(),
                          return_ids=False, show_progress=False)


class LexicalIndex:
    """BM25 scores of a query against every document."""

    def __init__(self, retriever, num_docs: int):
        self._retriever = retriever
        self.num_docs = num_docs

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalIndex:
        import bm25s

        retriever = bm25s.BM25(**BM25_PARAMS)
        tokens = tokenize(texts)
        # An empty corpus still needs a vocabulary of one token to be valid.
        retriever.index(tokens if any(tokens) else [["\u2205"]] * max(len(texts), 1),
                        show_progress=False)
        return cls(retriever, len(texts))

    def scores(self, query: str) -> np.ndarray:
        """One BM25 score per document (zeros when no query term is known)."""
        tokens = [t for t in tokenize([query])[0] if t in self._retriever.vocab_dict]
        if not tokens or self.num_docs == 0:
            return np.zeros(self.num_docs, dtype=np.float32)
        return np.asarray(self._retriever.get_scores(tokens), dtype=np.float32)[:self.num_docs]

    def to_bytes(self) -> bytes:
        """The index as one blob: bm25s's own saved files, packed into an .npz."""
        with tempfile.TemporaryDirectory(prefix="paperscope-bm25-") as folder:
            self._retriever.save(folder, show_progress=False)
            files = {path.name: np.frombuffer(path.read_bytes(), dtype=np.uint8)
                     for path in Path(folder).iterdir()}
        buffer = io.BytesIO()
        np.savez(buffer, __num_docs=np.array([self.num_docs]), **files)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> LexicalIndex:
        import bm25s

        with np.load(io.BytesIO(data), allow_pickle=False) as arrays, \
                tempfile.TemporaryDirectory(prefix="paperscope-bm25-") as folder:
            for name in arrays.files:
                if name != "__num_docs":
                    (Path(folder) / name).write_bytes(arrays[name].tobytes())
            retriever = bm25s.BM25.load(folder, show_progress=False, verbosity=0)
            num_docs = int(arrays["__num_docs"][0])
        return cls(retriever, num_docs)
