"""BM25 on its own (lexical.py): the tokenizer, the weight matrix and what it explains."""

import os

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from paperscope.lexical import LexicalIndex, Tokenizer, build_lexical, default_stopwords

from .conftest import CORPUS


def _index(texts):
    return LexicalIndex.from_arrays(build_lexical(texts, default_stopwords()), default_stopwords())


def test_lexical_scores_equal_bm25s_own_scoring():
    import bm25s

    texts = [f"{key} {text}" for key, text in CORPUS.items()] + ["fine-tuning of a model", ""]
    index = LexicalIndex.from_arrays(build_lexical(texts, default_stopwords()), default_stopwords())
    tokenize = Tokenizer(default_stopwords())
    reference = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    reference.index([tokenize(t) for t in texts], show_progress=False)
    for query in ["low rank finetuning", "fine-tuning", "the model of models", "unknownword"]:
        known = [t for t in tokenize(query) if t in reference.vocab_dict]
        expected = reference.get_scores(known) if known else np.zeros(len(texts))
        np.testing.assert_allclose(index.scores(query), expected, rtol=1e-6)
    assert index.scores("finetuning")[4] > 0  # the hyphenated form is indexed joined too


def test_the_lexical_index_is_the_same_bytes_in_every_process():
    import subprocess
    import sys

    probe = ("import hashlib; from paperscope.lexical import build_lexical, default_stopwords; "
             f"a = build_lexical({list(CORPUS.values())!r}, default_stopwords()); "
             "print(hashlib.sha256(repr(a.terms).encode() + a.data.tobytes() + a.indices.tobytes()"
             " + a.indptr.tobytes()).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2", "3")}
    assert len(digests) == 1


def test_the_tokenizer_stems_drops_stopwords_and_joins_hyphens():
    tokenize = Tokenizer(default_stopwords())
    terms = tokenize("The fine-tuning of adapters")
    assert "the" not in terms and "of" not in terms
    assert set(tokenize("adapter")) <= set(terms)  # adapters and adapter meet
    assert "finetun" in terms or "finetuning" in terms


def test_a_rare_term_weighs_more_than_a_common_one():
    index = _index(["model alpha", "model beta", "model gamma", "rare model"])
    assert index.idf("rare") > index.idf("model") > 0
    assert index.idf("absent") == 0.0


def test_weights_are_the_scores_of_one_term():
    index = _index(list(CORPUS.values()))
    scores = index.scores("reward")
    assert [index.weight("reward", p) for p in range(4)] == [float(s) for s in scores]


def test_terms_or_text_give_the_same_scores_and_knowledge():
    index = _index(list(CORPUS.values()))
    terms = index.tokenize("quantized finetuning")
    np.testing.assert_array_equal(index.scores(terms), index.scores("quantized finetuning"))
    assert index.knows_any(terms) and not index.knows_any(["zzzz"]) and not index.knows_any("zzzz")


def test_shared_terms_are_content_words_as_written():
    texts = ["Low-rank adapters for large language models", "Quantized adapters for language models"]
    index = _index(texts)
    shared = index.shared_terms(0, 1, texts[0], texts[1])
    assert "adapters" in shared and "for" not in shared


def test_weak_words_are_not_offered_as_shared():
    """The half "fine" of "fine-tuning", the parts of links and "outperforms" are shared by
    many texts and say nothing of what connects two (issue 21)."""
    texts = ["Fine-tuning adapters outperforms thousands of baselines, code at https://github.com/a/b",
             "We fine-tune adapters; it outperforms thousands of them (https://github.com/c/d)",
             "Quantized language models", "Reward models for dialogue"]
    index = _index(texts)
    shared = index.shared_terms(0, 1, texts[0], texts[1], limit=20)
    assert "adapters" in shared
    assert not {w.casefold() for w in shared} & {"fine", "https", "github", "com", "outperforms",
                                                   "thousands"}, shared


@given(words=st.lists(st.sampled_from(["Fine-tuning", "fine", "tuning", "the", "LoRA", "colour",
                                       "low-rank-adapters", "ΟΔΟΣ", "a-b", "x", "models.", "(RLHF)",
                                       "state-of-the-art", "naïve", "42", "don\u2019t"]), max_size=12),
       spaces=st.lists(st.sampled_from([" ", "  ", "\n", "\t", "\u00a0", "\u2003"]), min_size=12,
                       max_size=12))
@settings(max_examples=300, deadline=None, derandomize=True)
def test_term_set_is_the_set_of_the_tokenizers_terms(words, spaces):
    """Snippets and highlights take a text's terms from a cache of each word's: the same set."""
    text = "".join(word + space for word, space in zip(words, spaces, strict=False))
    for version in (1, 2):
        tokenize = Tokenizer(default_stopwords(), version)
        assert tokenize.term_set(text) == set(tokenize(text))
        assert tokenize.term_set(text) == set(tokenize(text))  # from the cache this time
