"""The lexical ranker: BM25 over stemmed English tokens.

bm25s builds the index: it computes every (term, document) BM25 weight once and
stores them as a sparse term-by-document matrix. A query's score for a document
is then the sum of its terms' stored weights, which `LexicalIndex.scores` reads
straight from the saved arrays with NumPy, so queries never import bm25s (or
the SciPy it loads). Tokenisation is ours and shared by both sides: lower-case
words of two or more characters, stop words removed, Snowball-stemmed, and
hyphenated words indexed both split and joined ("fine-tuning" meets "finetuning").
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

BM25_PARAMS = {"k1": 1.2, "b": 0.75, "method": "lucene"}
_WORD = re.compile(r"(?u)\b\w\w+\b")
_HYPHENATED = re.compile(r"\b(\w+)-(\w+)(?:-(\w+))?\b")


class Tokenizer:
    """Text to BM25 terms; the stop words travel with the index."""

    def __init__(self, stopwords: Iterable[str]):
        import Stemmer

        self.stopwords = frozenset(stopwords)
        self._stem = Stemmer.Stemmer("english").stemWords

    def __call__(self, text: str) -> list[str]:
        lowered = text.lower()
        joined = ["".join(p for p in m.groups() if p) for m in _HYPHENATED.finditer(lowered)]
        words = [w for w in _WORD.findall(lowered) if w not in self.stopwords] + joined
        return self._stem(words)


def default_stopwords() -> list[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return sorted(STOPWORDS_EN)


def _sorted_columns(vocabulary: dict[str, int], data: np.ndarray, indices: np.ndarray,
                    indptr: np.ndarray) -> tuple[dict[str, int], list[np.ndarray]]:
    """The same term-by-document matrix with its terms in alphabetical order, so that the same
    texts always give the same bytes (bm25s numbers terms in set order, which varies by run)."""
    terms = sorted(term for term, column in vocabulary.items() if column < len(indptr) - 1)
    columns = [vocabulary[term] for term in terms]
    pieces = [np.arange(indptr[c], indptr[c + 1]) for c in columns]
    take = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
    lengths = np.array([len(p) for p in pieces], dtype=indptr.dtype)
    new_indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(indptr.dtype)
    return ({term: i for i, term in enumerate(terms)},
            [data[take], indices[take], new_indptr])


class LexicalIndex:
    """BM25 scores of a query against every document."""

    def __init__(self, vocabulary: dict[str, int], data: np.ndarray, indices: np.ndarray,
                 indptr: np.ndarray, num_docs: int, stopwords: Iterable[str]):
        self.vocabulary = vocabulary
        self._data, self._indices, self._indptr = data, indices, indptr
        self.num_docs = num_docs
        self.tokenize = Tokenizer(stopwords)

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalIndex:
        import bm25s

        stopwords = default_stopwords()
        tokenize = Tokenizer(stopwords)
        corpus = [tokenize(text) for text in texts]
        retriever = bm25s.BM25(**BM25_PARAMS)
        with tempfile.TemporaryDirectory(prefix="paperscope-bm25-") as folder:
            if texts:
                retriever.index(corpus, show_progress=False)
                retriever.save(folder, show_progress=False)
                saved = Path(folder)
                arrays = [np.load(saved / f"{name}.csc.index.npy") for name in ("data", "indices", "indptr")]
                vocabulary, arrays = _sorted_columns(json.loads((saved / "vocab.index.json").read_text()),
                                                     *arrays)
            else:
                arrays = [np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(1, np.int32)]
                vocabulary = {}
        return cls(vocabulary, *arrays, num_docs=len(texts), stopwords=stopwords)

    def scores(self, query: str) -> np.ndarray:
        """One BM25 score per document (zeros when no query term is in the vocabulary)."""
        out = np.zeros(self.num_docs, dtype=np.float32)
        for term in self.tokenize(query):
            column = self.vocabulary.get(term)
            if column is None or not term:
                continue
            start, end = self._indptr[column], self._indptr[column + 1]
            np.add.at(out, self._indices[start:end], self._data[start:end])
        return out

    def shared_terms(self, a: int, b: int, text_a: str, text_b: str, limit: int = 5) -> list[str]:
        """The words documents `a` and `b` share that weigh most in both (the product of
        their BM25 weights), as written in `text_b`."""
        common = (set(self.tokenize(text_a)) & set(self.tokenize(text_b))) - {""}
        weights = {}
        for term in common:
            column = self.vocabulary.get(term)
            if column is None or term.isdigit():
                continue
            docs = self._indices[self._indptr[column]:self._indptr[column + 1]]
            data = self._data[self._indptr[column]:self._indptr[column + 1]]
            found = {int(d): float(w) for d, w in zip(docs, data) if d in (a, b)}
            if len(found) == 2:
                weights[term] = found[a] * found[b]
        surface: dict[str, str] = {}
        for word in _WORD.findall(text_b):
            stem = self.tokenize(word)
            if stem and stem[0] in weights:
                surface.setdefault(stem[0], word)
        ranked = sorted(surface, key=lambda term: -weights[term])
        return [surface[term] for term in ranked][:limit]

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        meta = {"vocabulary": self.vocabulary, "stopwords": sorted(self.tokenize.stopwords),
                "num_docs": self.num_docs}
        np.savez(buffer, data=self._data, indices=self._indices, indptr=self._indptr,
                 meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> LexicalIndex:
        with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
            meta = json.loads(arrays["meta"].tobytes().decode())
            return cls(meta["vocabulary"], arrays["data"], arrays["indices"], arrays["indptr"],
                       num_docs=int(meta["num_docs"]), stopwords=meta["stopwords"])
