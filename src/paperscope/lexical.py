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

import contextlib
import functools
import math
import re
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
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
_RUN = re.compile(r"[\w-]+")  # what a term comes from: word characters and hyphens
# A word's terms, for Tokenizer.term_set: one bounded cache for each (version, stop words).
_WORD_TERMS: dict[tuple[int, frozenset[str]], Callable[[str], frozenset[str]]] = {}


class Tokenizer:
    """Text to BM25 terms; the stop words and the version travel with the index."""

    def __init__(self, stopwords: Iterable[str], version: int = TOKENIZER_VERSION):
        import Stemmer

        self.stopwords = frozenset(stopwords)
        self.version = version
        self._stem = Stemmer.Stemmer("english").stemWords
        key = (version, self.stopwords)
        if key not in _WORD_TERMS:  # shared by every tokenizer that tokenises alike
            _WORD_TERMS[key] = functools.lru_cache(maxsize=1 << 17)(lambda word: frozenset(self(word)))
        self._word_terms = _WORD_TERMS[key]

    def __call__(self, text: str) -> list[str]:
        words, joined = self.parts(text)
        return words + joined

    def term_set(self, text: str) -> frozenset[str]:
        """`set(self(text))`, joined from a cache of the terms of each run of word characters
        and hyphens (no term spans two): for snippets and highlights, which tokenise the same
        words over and over."""
        return frozenset().union(*map(self._word_terms, _RUN.findall(text.lower())))

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


def _as_written(word: str) -> str:
    return word


class _Vocabulary(dict):
    """Term -> id, a new term getting the next id when first looked up."""

    def __missing__(self, term: str) -> int:
        self[term] = len(self)
        return len(self) - 1


class _TermIds(dict):
    """Word (or a hyphenated word's parts) -> the id of its term, -1 for a stop word, computed
    once when first looked up (`term` gives the term, None for a stop word)."""

    def __init__(self, vocabulary: dict[str, int], term: Callable[[Any], str | None]):
        super().__init__()
        self.vocabulary, self.term = vocabulary, term

    def __missing__(self, word: Any) -> int:
        term = self.term(word)
        found = -1 if term is None else self.vocabulary[term]
        self[word] = found
        return found


_POSTING = np.dtype([("column", np.int32), ("doc", np.int32), ("tf", np.int32)])


class StreamedLexical:
    """The BM25 matrix of `build_lexical`, built in bounded memory for any number of texts.

    `add` tokenises texts in order; every `batch_documents` texts their postings (term id,
    document, term frequency) go to a run file in `folder`. `finish` fixes the vocabulary
    (alphabetical columns), the document frequencies and `indptr`, and re-sorts each run by
    column; `blocks` then merges the runs a range of columns at a time and yields the
    (documents, weights) of the CSC arrays in order, at most about `range_postings` postings a
    block. Memory holds the vocabulary, the document lengths and one batch or block; the
    arrays are the same, bit for bit, as `build_lexical`'s."""

    def __init__(self, stopwords: Iterable[str], folder: Any, *, batch_documents: int = 50_000,
                 range_postings: int = 8_000_000, weights_dtype: Any = np.float32,
                 version: int = TOKENIZER_VERSION):
        from pathlib import Path

        self.tokenize = Tokenizer(stopwords, version)
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.batch_documents = batch_documents
        self.range_postings = range_postings
        self.weights_dtype = np.dtype(weights_dtype)
        self._term_ids: dict[str, int] = _Vocabulary()
        spell = american if version >= 2 else _as_written
        stem, stop = self.tokenize._stem, self.tokenize.stopwords

        def word_term(word: str) -> str | None:
            word = spell(word)
            return None if word in stop else stem([word])[0]

        def joined_term(parts: tuple[str, ...]) -> str:  # joined words are kept
            return stem(["".join(spell(p) for p in parts if p)])[0]

        self._word_ids = _TermIds(self._term_ids, word_term)
        self._joined_ids = _TermIds(self._term_ids, joined_term)
        self._lengths = array("i")
        self._pending: list[array] = []  # term ids of the texts not yet in a run, one array each
        self._df = np.zeros(0, dtype=np.int64)  # by term id
        self._runs: list[tuple[int, int]] = []  # (first document, postings) of each run
        self.terms: list[str] = []
        self.indptr = np.zeros(1, dtype=np.int64)

    @property
    def num_docs(self) -> int:
        return len(self._lengths)

    def add(self, texts: Iterable[str]) -> None:
        """Tokenise `texts` as `Tokenizer` does, a word's term id looked up once per distinct
        word (its stem computed once): most of the build's time is here."""
        words, joined = self._word_ids, self._joined_ids
        for text in texts:
            lowered = text.lower()
            ids = array("i", map(words.__getitem__, _WORD.findall(lowered)))
            if "-" in lowered:
                ids.extend(map(joined.__getitem__, _HYPHENATED.findall(lowered)))
            self._lengths.append(len(ids) - ids.count(-1))
            self._pending.append(ids)
            if len(self._pending) >= self.batch_documents:
                self._flush()
                if len(words) + len(joined) > self.WORD_CACHE:
                    words.clear()
                    joined.clear()

    def _run_path(self, run: int) -> Any:
        return self.folder / f"run-{run:05d}.bin"

    def _flush(self) -> None:
        """Write the pending texts' postings as one run, sorted by term id then document."""
        if not self._pending:
            return
        first = self.num_docs - len(self._pending)
        sizes = np.fromiter((len(a) for a in self._pending), dtype=np.int64, count=len(self._pending))
        flat = np.frombuffer(b"".join(a.tobytes() for a in self._pending), dtype=np.int32)
        self._pending = []
        docs = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
        kept = flat >= 0  # stop words are -1
        flat, docs = flat[kept], docs[kept]
        keys, tfs = np.unique((flat.astype(np.int64) << 32) | docs, return_counts=True)
        del flat, docs
        term_ids = (keys >> 32).astype(np.int32)
        documents = (keys & 0xFFFFFFFF).astype(np.int32) + np.int32(first)
        if len(self._df) < len(self._term_ids):
            self._df = np.concatenate([self._df, np.zeros(len(self._term_ids) - len(self._df), np.int64)])
        self._df += np.bincount(term_ids, minlength=len(self._df))
        postings = np.empty(len(keys), dtype=_POSTING)
        postings["column"], postings["doc"], postings["tf"] = term_ids, documents, tfs
        postings.tofile(self._run_path(len(self._runs)))
        self._runs.append((first, len(keys)))

    def finish(self) -> None:
        """Fix the columns (terms in alphabetical order) and re-sort each run by column."""
        self._flush()
        ids = self._term_ids
        self.terms = sorted(ids)
        rank = np.empty(len(ids), dtype=np.int64)
        rank[np.fromiter((ids[t] for t in self.terms), dtype=np.int64, count=len(ids))] = \
            np.arange(len(ids))
        self._term_ids = _Vocabulary()
        df = np.zeros(len(ids), dtype=np.int64)
        df[rank] = self._df[:len(ids)]
        self._df = df
        self.indptr = np.concatenate([[0], np.cumsum(df)]).astype(np.int64)
        for run in range(len(self._runs)):
            postings = np.fromfile(self._run_path(run), dtype=_POSTING)
            postings["column"] = rank[postings["column"]]
            # a stable sort: documents stay in order within a column
            postings[np.argsort(postings["column"], kind="stable")].tofile(self._run_path(run))

    def blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(documents int32, weights) of the CSC arrays, a range of columns at a time, in order."""
        num_docs = self.num_docs
        doc_lengths = np.frombuffer(self._lengths, dtype=np.int32).astype(np.float32)
        k1, b = BM25_PARAMS["k1"], BM25_PARAMS["b"]
        average = float(doc_lengths.mean()) if num_docs and doc_lengths.sum() else 1.0
        df = self._df.astype(np.float64)
        idf = np.log(1.0 + (num_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        with contextlib.ExitStack() as opened:
            handles = [opened.enter_context(open(self._run_path(run), "rb")) for run in range(len(self._runs))]
            # Each run is sorted by column: a range of columns is the next stretch of every run.
            column_at = np.searchsorted(self.indptr, np.arange(0, int(self.indptr[-1]),
                                                               max(1, self.range_postings)), side="right") - 1
            starts = sorted(set(column_at.tolist()) | {0})
            carry: list[np.ndarray | None] = [None] * len(handles)
            for end in [*starts[1:], len(self.terms)]:
                columns, docs, tfs = [], [], []
                for n, handle in enumerate(handles):
                    got = carry[n]
                    if got is None or not len(got):
                        got = self._read(handle)
                    while got is not None and got["column"][-1] < end:
                        more = self._read(handle)
                        if more is None:
                            break
                        got = np.concatenate([got, more])
                    if got is None:
                        carry[n] = None
                        continue
                    cut = int(np.searchsorted(got["column"], end))
                    columns.append(got["column"][:cut])
                    docs.append(got["doc"][:cut])
                    tfs.append(got["tf"][:cut])
                    carry[n] = got[cut:]
                if not columns:
                    continue
                column = np.concatenate(columns)
                order = np.argsort(column, kind="stable")
                column = column[order].astype(np.int64)
                doc = np.concatenate(docs)[order]
                tf = np.concatenate(tfs)[order].astype(np.float32)
                saturation = tf / (tf + k1 * (1 - b + b * doc_lengths[doc] / average)) if len(doc) else tf
                weights = (idf[column] * saturation).astype(np.float32)
                yield doc, weights.astype(self.weights_dtype)

    _READ = 1 << 18  # postings read from a run at a time
    WORD_CACHE = 4_000_000  # distinct words whose term ids are remembered

    def _read(self, handle: Any) -> np.ndarray | None:
        got = np.fromfile(handle, dtype=_POSTING, count=self._READ)
        return got if len(got) else None


def build_lexical_streamed(texts: Iterable[str], stopwords: Iterable[str], folder: Any,
                           **options: Any) -> LexicalArrays:
    """`build_lexical` through `StreamedLexical` (run files in `folder`), gathered in memory:
    for tests, and to show the two agree."""
    builder = StreamedLexical(stopwords, folder, **options)
    builder.add(texts)
    builder.finish()
    parts = list(builder.blocks())
    docs = np.concatenate([d for d, _ in parts]) if parts else np.zeros(0, np.int32)
    data = np.concatenate([w for _, w in parts]) if parts else np.zeros(0, builder.weights_dtype)
    return LexicalArrays(builder.terms, data, docs, builder.indptr, builder.num_docs)


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
