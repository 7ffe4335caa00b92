"""Ranking on its own (search.py): modes, filters, fusion, the exact-name rule, snippets and
query cleaning, over small indexes built with the fake encoder."""

import json

import numpy as np
import pytest

from paperscope.errors import UsageError
from paperscope.index import IndexStore
from paperscope.indexer import build_index
from paperscope.search import (
    MAX_QUERY_CHARS,
    Searcher,
    best_sentence,
    check_query,
    fuse,
    hits,
    rank,
)

from .conftest import docs, many_docs


def test_approximate_search_finds_what_exact_search_finds(tmp_path, fake_encoder):
    corpus = many_docs(3000)
    exact, approximate = IndexStore(tmp_path / "exact"), IndexStore(tmp_path / "ann")
    build_index(exact, corpus, model="fake-model", encoder=fake_encoder, search="exact")
    report = build_index(approximate, corpus, model="fake-model", encoder=fake_encoder,
                         search="approximate")
    assert report.search == "ivf-sq4"
    method = json.loads(approximate.manifest_path.read_text())["search"]
    assert method["kind"] == "ivf-sq4" and method["lists"] >= 1
    a, b = exact.open(), approximate.open()
    assert b.ann is not None and a.ann is None
    overlap = []
    for query in ["adapter study", "quantized reward", "protein graph study 17", "speech vision"]:
        vector = fake_encoder.encode([query])[0]
        top_a = {i for i, _ in rank(a, query_text=query, query_vector=vector, mode="dense", k=10)}
        top_b = {i for i, _ in rank(b, query_text=query, query_vector=vector, mode="dense", k=10)}
        overlap.append(len(top_a & top_b) / 10)
        hybrid = rank(b, query_text=query, query_vector=vector, mode="hybrid", k=10)
        assert len(hybrid) == 10
    assert np.mean(overlap) >= 0.9
    years = np.asarray(b.facets)[:, 0]
    assert set(years) == {2020, 2021, 2022, 2023, 2024}


def test_ranking_modes_and_filters(built, fake_encoder):
    store, _ = built
    index = store.open()
    query = "low rank finetuning"
    vector = fake_encoder.encode([query])[0]
    lexical = rank(index, query_text=query, query_vector=None, mode="lexical", k=10)
    assert [index.ids()[i] for i, _ in lexical] == ["qlora", "lora"]  # no other matches
    hybrid = rank(index, query_text=query, query_vector=vector, mode="hybrid", k=2)
    assert {index.ids()[i] for i, _ in hybrid} == {"lora", "qlora"}
    only_rlhf = np.array([False, False, True, False])
    filtered = rank(index, query_text=query, query_vector=vector, mode="dense", k=5, allowed=only_rlhf)
    assert [index.ids()[i] for i, _ in filtered] == ["rlhf"]
    excluded = rank(index, query_text=query, query_vector=vector, mode="dense", k=5, exclude=0)
    assert 0 not in [i for i, _ in excluded] and len(excluded) == 3


def test_fusion_ignores_a_ranker_without_signal():
    dense = np.array([0.2, 0.9, 0.5], dtype=np.float32)
    mask = np.ones(3, dtype=bool)
    fused = fuse(dense, np.zeros(3, dtype=np.float32), mask)
    assert list(np.argsort(-fused)) == [1, 2, 0]


@pytest.mark.parametrize("raw, cleaned", [
    ("  LoRA\tadapters\n", "LoRA adapters"),
    ("rl\x00hf\x1b[31m", "rl hf [31m"),
    ("x" * MAX_QUERY_CHARS, "x" * MAX_QUERY_CHARS),
    ("注意力机制", "注意力机制"),
])
def test_queries_are_cleaned_and_bounded(raw, cleaned):
    assert check_query(raw) == cleaned


def test_a_query_over_the_one_limit_is_refused_not_cut():
    with pytest.raises(UsageError, match="the most is 1,000"):
        check_query("x" * 100_000)


@pytest.mark.parametrize("raw", ["", "   ", "\x00\x01"])
def test_empty_queries_are_refused(raw):
    with pytest.raises(UsageError, match="empty"):
        check_query(raw)


def test_a_query_naming_a_document_puts_it_first_at_one(built, fake_encoder):
    store, _ = built
    index = store.open()
    ranked = rank(index, query_text="rlhf", query_vector=fake_encoder.encode(["rlhf"])[0],
                  mode="hybrid", k=3)
    assert index.ids()[ranked[0][0]] == "rlhf" and ranked[0][1] == 1.0


def test_scores_are_within_zero_and_one_in_every_mode(built, fake_encoder):
    store, _ = built
    index = store.open()
    vector = fake_encoder.encode(["language model"])[0]
    for mode in ("hybrid", "dense", "lexical"):
        scores = [score for _, score in rank(index, query_text="language model", query_vector=vector,
                                             mode=mode, k=10)]
        assert scores and all(0 <= s <= 1 for s in scores), mode  # calibrated: not always sorted


def test_an_unknown_mode_is_a_usage_error(built):
    store, _ = built
    with pytest.raises(UsageError, match="Unknown mode"):
        rank(store.open(), query_text="x", query_vector=None, mode="fuzzy", k=1)


def test_terms_given_rank_as_the_text_would(built, fake_encoder):
    store, _ = built
    index = store.open()
    query = "reward model feedback"
    vector = fake_encoder.encode([query])[0]
    assert rank(index, query_text=query, query_vector=vector, mode="hybrid", k=4) == \
        rank(index, query_text=query, query_vector=vector, mode="hybrid", k=4,
             query_terms=index.lexical.tokenize(query))


def test_the_searcher_gives_hits_with_the_best_matching_sentence(tmp_path, fake_encoder):
    store = IndexStore(tmp_path / "index")
    build_index(store, docs(a="Cats sleep a lot. Rewards shape the policy of the agent. Dogs bark."),
                model="fake-model", encoder=fake_encoder)
    found = Searcher(store.open(), fake_encoder).search("policy rewards", k=1)
    assert found[0].rank == 1 and found[0].snippet == "Rewards shape the policy of the agent."


def test_best_sentence_prefers_the_first_of_equals_and_cuts_long_ones(built):
    store, _ = built
    tokenize = store.open().lexical.tokenize
    wanted = set(tokenize("model"))
    terms = tokenize.term_set
    assert best_sentence("A model here. Another model there.", wanted, terms) == "A model here."
    long = "model " * 100
    cut = best_sentence(long, wanted, terms, limit=50)
    assert len(cut) <= 50 and cut.endswith("model…")  # between words
    assert best_sentence("", wanted, terms) == ""


def test_hits_keep_the_ranked_order(built):
    store, _ = built
    index = store.open()
    found = hits(index, [(2, 0.9), (0, 0.5)], ["reward"])
    assert [(h.rank, h.document.id, h.score) for h in found] == [(1, "rlhf", 0.9), (2, "lora", 0.5)]


def test_warm_searches_load_the_query_encoder_once(library_dir, monkeypatch):
    # A new Searcher per search loaded the model's files again each time: tens of ms a query.
    from paperscope import search as search_module
    from paperscope.library import Library

    loaded = []
    real = search_module.load_encoder
    monkeypatch.setattr(search_module, "load_encoder", lambda *args, **kw: loaded.append(args) or real(*args, **kw))
    library = Library.open(library_dir)
    first = library.search("low-rank adaptation", k=3).hits
    assert library.search("low-rank adaptation", k=3).hits == first
    library.search("reward model", k=3)
    assert len(loaded) == 1
