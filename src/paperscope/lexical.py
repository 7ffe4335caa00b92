"""The lexical ranker: BM25 over stemmed English tokens.

The index is a term-by-document matrix of BM25 weights in compressed sparse column form
(terms in alphabetical order, so the same texts always give the same arrays), computed once at
build time with Lucene's formula. A query's score for a document is the sum of its terms'
stored weights, read straight from the arrays (memory-mapped by the index), so a query touches
only the posting lists of its own terms. Tokenisation is shared by both sides: lower-case words
of two or more characters, stop words removed, Snowball-stemmed, and hyphenated words indexed
both split and joined ("fine-tuning" meets "finetuning").
"""

from __future__ import annotations

import functools
import math
import re
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .spelling import american

BM25_PARAMS: dict[str, Any] = {"k1": 1.2, "b": 0.75, "method": "lucene"}
# The tokenizer's version, recorded in the manifest's `lexical` record as "tokenizer": an
# index's vocabulary is queried with the tokenizer that built it. 1 (no record): no spelling
# normalisation; 2: British spellings made American (spelling.py).
TOKENIZER_VERSION = 2
TOKENIZER_VERSIONS = (1, 2)
_WORD = re.compile(r"(?u)\b\w\w+\b")
_HYPHENATED = re.compile(r"\b(\w+)-(\w+)(?:-(\w+))?\b")


class Tokenizer:
    """Text to BM25 terms; the stop words and the version travel with the index."""

    def __init__(self, stopwords: Iterable[str], version: int = TOKENIZER_VERSION):
        import Stemmer

        self.stopwords = frozenset(stopwords)
        self.version = version
        self._stem = Stemmer.Stemmer("english").stemWords

    def __call__(self, text: str) -> list[str]:
        words, joined = self.parts(text)
        return words + joined

    def parts(self, text: str) -> tuple[list[str], list[str]]:
        """The terms of `text`: those of its words, and those of its hyphenated words joined."""
        lowered = text.lower()
        if self.version < 2:
            joined = ["".join(p for p in m.groups() if p) for m in _HYPHENATED.finditer(lowered)]
            words = [w for w in _WORD.findall(lowered) if w not in self.stopwords]
        else:
            joined = ["".join(american(p) for p in m.groups() if p) for m in _HYPHENATED.finditer(lowered)]
            words = [w for w in map(american, _WORD.findall(lowered)) if w not in self.stopwords]
        return self._stem(words), self._stem(joined)


def default_stopwords() -> list[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return sorted(STOPWORDS_EN)


# Words never shown as what connects two texts or highlighted as matching, on top of the
# index's stop words: function words, the filler of abstracts ("than", "greatly", "despite",
# "results", "propose"), the halves of hyphenated words ("fine" of "fine-tuning", whose whole
# "finetuning" is a term of its own) and the parts of links ("https", "com", "github").
# Compared by stem, so "provides" also covers "provided".
DISPLAY_STOPWORDS = frozenset("""
    a an and are as at be but by if in into is it no not of on or such that the their then
    there these they this to was will with about above across after again against ago all
    almost along already also although always among amongst another any anyone anything
    around away back because been before behind being below beneath beside besides between
    beyond both can cannot could despite did does doing done down during each either else
    enough especially even ever every except few fewer first following for from further
    furthermore had has have having he her here hers herself him himself his how however i
    its itself just last later least less let like likely many may me might more moreover
    most mostly much must my near nearly neither never nevertheless next nor now off often
    once one only onto other others otherwise our ours out over own per perhaps quite rather
    really same second several shall she should since so some something sometimes still than
    thanks that's thereby therefore thus those though three through throughout till too
    toward towards two under unless unlike until up upon us very via we well were what
    whatever when whenever where whereas whether which while who whom whose why within
    without would yet you your ability able achieve achieved achieves achieving across
    addition additional address allow allows approach approaches art available based better
    comparable discuss finally find finds investigate pre reach reaching best broad current
    currently demonstrate demonstrates different directly easily effective effectively
    enable enables existing fully full generally given good great greatly greater high
    higher highly however important improve improved improves improving include includes
    including increase increasing instead introduce introduces key large largely largest
    level limited lot low lower main make makes making method methods new novel number often
    overall paper particular particularly present presents previous previously prior propose
    proposed proposes provide provides providing publicly range recent recently reduce
    reduces reducing require requires requiring result results set show shows shown
    significant significantly similar simple simply small state strong study substantially
    such suggest time times use used uses using various version way ways well wide widely
    work works written
    fine post self multi non co sub semi specific specifically exclusively facilitate
    facilitates cover covers related linked multiple area outperform outperforms outperformed
    perform performs performed performing hundreds thousands millions billions trillions
    http https www com org io github html pdf
""".split())  # noqa: SIM905 (a word list reads better as text)


@dataclass
class LexicalArrays:
    """A built BM25 matrix: `terms` in column order, and the CSC arrays."""

    terms: list[str]
    data: np.ndarray  # float32 weights
    indices: np.ndarray  # int32 document positions
    indptr: np.ndarray  # int64, len(terms) + 1
    num_docs: int


def build_lexical(texts: Iterable[str], stopwords: Iterable[str],
                  version: int = TOKENIZER_VERSION) -> LexicalArrays:
    """BM25 weights (Lucene's idf and saturation, BM25_PARAMS) of every (term, document) pair,
    streaming over `texts` with postings kept in compact arrays."""
    tokenize = Tokenizer(stopwords, version)
    term_ids: dict[str, int] = {}
    post_terms, post_docs, post_tfs, lengths = array("i"), array("i"), array("i"), array("i")
    for position, text in enumerate(texts):
        tokens = tokenize(text)
        lengths.append(len(tokens))
        for term, tf in Counter(tokens).items():
            post_terms.append(term_ids.setdefault(term, len(term_ids)))
            post_docs.append(position)
            post_tfs.append(tf)
    num_docs = len(lengths)
    terms = sorted(term_ids)
    rank = np.empty(len(term_ids), dtype=np.int64)
    rank[[term_ids[t] for t in terms]] = np.arange(len(terms))
    columns = rank[np.frombuffer(post_terms, dtype=np.int32)] if post_terms else np.zeros(0, np.int64)
    docs = np.frombuffer(post_docs, dtype=np.int32)
    tfs = np.frombuffer(post_tfs, dtype=np.int32).astype(np.float32)
    order = np.lexsort((docs, columns))
    columns, docs, tfs = columns[order], docs[order], tfs[order]
    df = np.bincount(columns, minlength=len(terms)).astype(np.float64)
    indptr = np.concatenate([[0], np.cumsum(df)]).astype(np.int64)
    doc_lengths = np.frombuffer(lengths, dtype=np.int32).astype(np.float32)
    k1, b = BM25_PARAMS["k1"], BM25_PARAMS["b"]
    average = float(doc_lengths.mean()) if num_docs and doc_lengths.sum() else 1.0
    idf = np.log(1.0 + (num_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
    saturation = tfs / (tfs + k1 * (1 - b + b * doc_lengths[docs] / average)) if len(docs) else tfs
    data = (idf[columns] * saturation).astype(np.float32) if len(docs) else np.zeros(0, np.float32)
    return LexicalArrays(terms, data, docs.astype(np.int32), indptr, num_docs)


class LexicalIndex:
    """BM25 scores of a query against every document. `column(term)` gives a term's column
    (None when the term is not in the vocabulary)."""

    def __init__(self, column: Callable[[str], int | None], data: np.ndarray, indices: np.ndarray,
                 indptr: np.ndarray, num_docs: int, stopwords: Iterable[str],
                 version: int = TOKENIZER_VERSION):
        self.column = column
        self._data, self._indices, self._indptr = data, indices, indptr
        self.num_docs = num_docs
        self.tokenize = Tokenizer(stopwords, version)

    @classmethod
    def from_arrays(cls, arrays: LexicalArrays, stopwords: Iterable[str],
                    version: int = TOKENIZER_VERSION) -> LexicalIndex:
        columns = {term: i for i, term in enumerate(arrays.terms)}
        return cls(columns.get, arrays.data, arrays.indices, arrays.indptr, arrays.num_docs,
                   stopwords, version)

    def _postings(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        column = self.column(term) if term else None
        if column is None:
            return None
        start, end = int(self._indptr[column]), int(self._indptr[column + 1])
        return self._indices[start:end], self._data[start:end]

    def terms(self, query: str | Sequence[str]) -> Sequence[str]:
        """The query's terms: a text is tokenised, a list of terms (tokenised once by the
        caller, who needs them again) is taken as it is."""
        return self.tokenize(query) if isinstance(query, str) else query

    def scores(self, query: str | Sequence[str]) -> np.ndarray:
        """One BM25 score per document (zeros when no query term is in the vocabulary)."""
        out = np.zeros(self.num_docs, dtype=np.float32)
        for term in self.terms(query):
            postings = self._postings(term)
            if postings is not None:
                docs, weights = postings
                out[docs] += weights  # a document appears once in a term's posting list
        return out

    def coverage(self, query: str, positions: np.ndarray) -> np.ndarray:
        """For each document at `positions`, the share of the query's distinct terms it
        contains, each term weighed by its IDF (a word no document has weighs as much as the
        rarest can; a hyphenated word joined, "parameterefficient", only when some document
        has it): 1 when every query word occurs in it, whatever the query's length."""
        positions = np.asarray(positions, dtype=np.int64)
        out = np.zeros(len(positions), dtype=np.float64)
        total = 0.0
        unknown = math.log(1.0 + (self.num_docs + 0.5) / 0.5)
        words, joined = self.tokenize.parts(query)
        for term in dict.fromkeys(words + joined):
            postings = self._postings(term)
            if postings is None:
                total += unknown if term in words else 0.0
                continue
            docs = postings[0]
            idf = math.log(1.0 + (self.num_docs - len(docs) + 0.5) / (len(docs) + 0.5))
            total += idf
            if len(docs) and len(positions):
                at = np.minimum(np.searchsorted(docs, positions), len(docs) - 1)
                out += idf * (docs[at] == positions)
        return out / total if total > 0 else out

    def knows_any(self, query: str | Sequence[str]) -> bool:
        """Whether any word of `query` (stopwords aside) occurs in some document."""
        return any(self.column(term) is not None for term in self.terms(query))

    def weight(self, term: str, position: int) -> float:
        """The BM25 weight of `term` in the document at `position` (0 when absent): a binary
        search in the term's posting list, which is sorted by document."""
        postings = self._postings(term)
        if postings is None:
            return 0.0
        docs, data = postings
        i = int(np.searchsorted(docs, position))
        return float(data[i]) if i < len(docs) and docs[i] == position else 0.0

    def idf(self, term: str) -> float:
        """The term's inverse document frequency, as BM25 computes it (0 when unknown)."""
        postings = self._postings(term)
        if postings is None:
            return 0.0
        df = len(postings[0])
        return math.log(1.0 + (self.num_docs - df + 0.5) / (df + 0.5))

    def _shown(self, terms: set[str]) -> list[str]:
        """The terms worth showing people: no numbers, no filler (DISPLAY_STOPWORDS)."""
        return [t for t in terms if t and not t.isdigit() and t not in self._display_stopwords]

    @functools.cached_property
    def _display_stopwords(self) -> frozenset[str]:
        return frozenset(self.tokenize(" ".join(DISPLAY_STOPWORDS)))

    def shared_terms(self, a: int, b: int, text_a: str, text_b: str, limit: int = 5) -> list[str]:
        """The content words documents `a` and `b` share that weigh most in both (the product
        of their BM25 weights and the word's IDF, so rare words come first), as written in
        `text_b`."""
        weights = {}
        for term in self._shown(set(self.tokenize(text_a)) & set(self.tokenize(text_b))):
            weight = self.weight(term, a) * self.weight(term, b) * self.idf(term)
            if weight > 0:
                weights[term] = weight
        return surface_words(weights, text_b, self.tokenize, limit)

    def matching_terms(self, text: str, position: int, limit: int = 5) -> list[str]:
        """The content words of `text` that weigh most in the document at `position` (for
        saying why an outside text and a document meet)."""
        weights = {}
        for term in self._shown(set(self.tokenize(text))):
            weight = self.weight(term, position)
            if weight > 0:
                weights[term] = weight
        return surface_words(weights, text, self.tokenize, limit)


def surface_words(weights: dict[str, float], text: str, tokenize: Callable[[str], list[str]],
                  limit: int) -> list[str]:
    """The heaviest terms of `weights`, each as first written in `text`."""
    surface: dict[str, str] = {}
    for word in _WORD.findall(text):
        stem = tokenize(word)
        if stem and stem[0] in weights:
            surface.setdefault(stem[0], word)
    return [surface[term] for term in sorted(surface, key=lambda term: -weights[term])][:limit]
