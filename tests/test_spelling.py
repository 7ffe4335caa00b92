"""British and American spellings meet in the lexical index (issue 21, finding 4), tested both
ways; an index built before the tokenizer knew spellings keeps its own tokenizer until rebuilt."""

import contextlib
import json

import pytest

from paperscope.index import IndexStore
from paperscope.indexer import build_index
from paperscope.lexical import (
    TOKENIZER_VERSION,
    LexicalIndex,
    Tokenizer,
    build_lexical,
    default_stopwords,
)
from paperscope.records import Document
from paperscope.spelling import american

BRITISH_AMERICAN = [
    ("quantisation", "quantization"), ("quantised", "quantized"), ("optimisation", "optimization"),
    ("optimiser", "optimizer"), ("optimising", "optimizing"), ("normalises", "normalizes"),
    ("characterisation", "characterization"), ("tokeniser", "tokenizer"), ("analysed", "analyzed"),
    ("behaviour", "behavior"), ("behavioural", "behavioral"), ("colours", "colors"),
    ("favourite", "favorite"), ("neighbourhood", "neighborhood"), ("tumour", "tumor"),
    ("centre", "center"), ("catalogue", "catalog"), ("modelling", "modeling"),
]


@pytest.mark.parametrize("british, american_form", BRITISH_AMERICAN)
def test_british_and_american_spellings_give_the_same_term(british, american_form):
    tokenize = Tokenizer(default_stopwords())
    assert tokenize(british) == tokenize(american_form)


@pytest.mark.parametrize("word", [
    "supervised", "noise", "denoising", "pairwise", "promising", "exercise", "precise", "raise",
    "advertising", "surprising", "expertise", "postexercise", "four", "hour", "contour", "size",
])
def test_words_that_only_look_british_are_kept(word):
    assert american(word) == word


def test_supervised_still_meets_supervision():
    tokenize = Tokenizer(default_stopwords())
    assert tokenize("supervised") == tokenize("supervision")


def _lexical(texts):
    return LexicalIndex.from_arrays(build_lexical(texts, default_stopwords()), default_stopwords())


@pytest.mark.parametrize("document, query", [
    ("post-training quantisation of large models", "quantization"),
    ("post-training quantization of large models", "quantisation"),
    ("the optimiser state is sharded", "optimizer states"),
    ("the optimizer state is sharded", "optimiser states"),
    ("the behaviour of agents", "behavior"),
    ("the behavior of agents", "behaviour"),
])
def test_a_query_finds_the_other_spelling(document, query):
    lexical = _lexical([document, "an unrelated text about something else"])
    scores = lexical.scores(query)
    assert scores[0] > 0 and scores[1] == 0


def test_hyphenated_words_meet_across_spellings():
    tokenize = Tokenizer(default_stopwords())
    assert set(tokenize("quantisation-aware")) >= set(tokenize("quantizationaware"))


def test_the_old_tokenizer_is_kept_for_old_indexes():
    old = Tokenizer(default_stopwords(), version=1)
    assert old("quantisation") != old("quantization")


def _docs(**texts):
    return [Document(id=key, title=key.upper(), text=text, meta={"section": "S", "kind": "paper"})
            for key, text in texts.items()]


CORPUS = {"gptq": "post-training quantisation of generative transformers",
          "lora": "low rank adaptation of large language models"}


def _drop_tokenizer_record(store):
    """Make the manifest read like one written before tokenizer versions existed."""
    path = store.directory / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["lexical"]["tokenizer"]
    path.write_text(json.dumps(manifest))


def test_an_index_built_before_spellings_is_queried_the_old_way_until_rebuilt(
        tmp_path, fake_encoder, monkeypatch):
    import paperscope.indexer

    store = IndexStore(tmp_path / "index")
    with monkeypatch.context() as patch:  # an index as the previous paperscope built it
        patch.setattr(paperscope.indexer, "TOKENIZER_VERSION", 1)
        build_index(store, _docs(**CORPUS), model="fake-model", encoder=fake_encoder)
    _drop_tokenizer_record(store)
    with contextlib.closing(store.open()) as index:
        assert index.lexical.tokenize.version == 1
        assert index.lexical.scores("quantisation")[0] > 0  # its own spelling still matches
        assert index.lexical.scores("quantization")[0] == 0  # as before: no mixed vocabulary
    report = build_index(store, _docs(**CORPUS), model="fake-model", encoder=fake_encoder)
    assert report.written and report.embedded == [] and report.reused == len(CORPUS)
    assert store.read_manifest().tokenizer == TOKENIZER_VERSION
    with contextlib.closing(store.open()) as index:
        assert index.lexical.scores("quantization")[0] > 0
    assert not build_index(store, _docs(**CORPUS), model="fake-model", encoder=fake_encoder).written


def test_an_unknown_tokenizer_version_asks_for_a_rebuild(tmp_path, fake_encoder):
    from paperscope.errors import IndexMismatchError

    store = IndexStore(tmp_path / "index")
    build_index(store, _docs(**CORPUS), model="fake-model", encoder=fake_encoder)
    manifest_path = store.directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["lexical"]["tokenizer"] = 99
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatchError, match="tokenizer version 99"):
        store.open()
