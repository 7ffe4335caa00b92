"""Retrieval quality on the catalogue's judged questions, through the same eval code as
`paperscope eval`: hybrid must be at least as good as either ranker alone. Measured on the
frozen test library (tests/fixtures/library/), so editing the live reading list leaves it be."""

import json

import pytest
from typer.testing import CliRunner

from paperscope import Library
from paperscope.beir import read_qrels, read_queries
from paperscope.cli import app
from paperscope.evaluate import evaluate, ndcg, recall, reciprocal_rank

from .conftest import REPO, copy_fixture_library

QUESTIONS = REPO / "evaluation" / "catalogue"
RELATED = REPO / "evaluation" / "related"


@pytest.fixture(scope="module")
def fixture_collection(tmp_path_factory):
    """The frozen test library's index (tests/fixtures/library/), read from a copy."""
    return Library.open(copy_fixture_library(tmp_path_factory.mktemp("quality") / "library")).collection


@pytest.fixture(scope="module")
def scores(fixture_collection):
    results = evaluate(fixture_collection, read_queries(QUESTIONS), read_qrels(QUESTIONS, "test"))
    return {s.mode: s for s in results}


@pytest.mark.slow  # evaluates every judged question in three modes (minutes on a busy machine)
def test_there_are_at_least_twenty_judged_questions(scores):
    assert scores["hybrid"].queries >= 20


@pytest.mark.slow
def test_hybrid_is_at_least_as_good_as_either_ranker(scores):
    best_single = max(scores["dense"].ndcg_at_10, scores["lexical"].ndcg_at_10)
    assert scores["hybrid"].ndcg_at_10 >= best_single
    assert scores["hybrid"].ndcg_at_10 > 0.85 and scores["hybrid"].recall_at_100 == 1.0


@pytest.fixture(scope="module")
def related_scores(fixture_collection):
    results = evaluate(fixture_collection, {}, read_qrels(RELATED, "test"), related=True)
    return {s.mode: s for s in results}


def test_related_hybrid_is_at_least_as_good_as_either_ranker(related_scores):
    assert related_scores["hybrid"].queries >= 30
    best_single = max(related_scores["dense"].ndcg_at_10, related_scores["lexical"].ndcg_at_10)
    assert related_scores["hybrid"].ndcg_at_10 >= best_single > 0.7


@pytest.mark.parametrize("entry, expected", [
    ("lora", {"qlora"}),
    ("qlora", {"lora"}),
    ("codegen", {"codegen2"}),
    ("trl", {"trlx"}),
    ("constitutional-ai", {"helpful-harmless-assistant"}),
    ("megatron-lm", {"deepspeed", "gpt-neox"}),
])
def test_related_entries_come_first(library_dir, entry, expected):
    result = CliRunner().invoke(app, ["--library", str(library_dir), "related", entry, "--json",
                                      "-k", str(len(expected))])
    assert {hit["id"] for hit in json.loads(result.stdout)} == expected


def test_eval_related_through_the_cli(library_dir):
    result = CliRunner().invoke(app, ["--library", str(library_dir), "eval", str(RELATED), "--related",
                                      "--mode", "lexical", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [m["mode"] for m in report["modes"]] == ["lexical"]
    assert report["modes"][0]["queries"] == len(read_qrels(RELATED, "test"))


@pytest.mark.parametrize("query, expected_first", [
    ("finetune a 65B model on a single GPU", "qlora"),
    ("natural language questions to SQL queries over databases", "bird-text-to-sql"),
    ("implement GPT from scratch", "gpt-in-60-lines-of-numpy"),
    ("AI feedback instead of human labels for harmlessness", "constitutional-ai"),
    ("KV cache memory bandwidth and latency estimates", "transformer-inference-arithmetic"),
])
def test_judged_questions_rank_their_best_entry_first(library_dir, query, expected_first):
    result = CliRunner().invoke(app, ["--library", str(library_dir), "search", query, "--json", "-k", "3"])
    assert json.loads(result.stdout)[0]["id"] == expected_first


def test_metrics_on_hand_computed_cases():
    judged = {"a": 2, "b": 1}
    assert ndcg(["a", "b"], judged) == pytest.approx(1.0)
    assert ndcg(["x", "a"], judged) == pytest.approx((2 / 1.5849625) / (2 + 1 / 1.5849625))
    assert recall(["x", "b"], judged) == 0.5 and reciprocal_rank(["x", "b"], judged) == 0.5
    assert ndcg([], judged) == 0.0 and reciprocal_rank(["x"], judged) == 0.0


def test_eval_command_on_a_tiny_beir_corpus(tmp_path):
    data = tmp_path / "tiny"
    (data / "qrels").mkdir(parents=True)
    docs = [("d1", "Vitamin D", "Vitamin D supplements improve bone density in older adults."),
            ("d2", "Sleep", "Short sleep raises the risk of obesity in children."),
            ("d3", "Aspirin", "Daily aspirin lowers the risk of heart attack.")]
    (data / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in docs))
    (data / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "bone density vitamin"}) + "\n"
                                        + json.dumps({"_id": "q2", "text": "heart attack prevention"}) + "\n")
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\n")
    result = CliRunner().invoke(app, ["eval", str(data), "--index-dir", str(tmp_path / "idx"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["documents"] == 3 and [m["mode"] for m in report["modes"]] == ["hybrid", "dense", "lexical"]
    assert all(m["ndcg_at_10"] == 1.0 and m["queries"] == 2 for m in report["modes"])
    hits = json.loads(CliRunner().invoke(app, ["search", "aspirin", "--index-dir", str(tmp_path / "idx"),
                                               "--json"]).stdout)
    assert hits[0]["id"] == "d3"
    again = CliRunner().invoke(app, ["build", "--corpus", str(data), "--index-dir", str(tmp_path / "idx")])
    assert "already up to date (3 documents)" in again.stderr
    missing = CliRunner().invoke(app, ["eval", str(data), "--split", "dev"])
    assert missing.exit_code == 2 and "Splits there: test" in missing.stderr


def test_the_table_fits_the_terminal_and_highlights_query_words(library_dir):
    from rich.console import Console

    from paperscope.lexical import DISPLAY_STOPWORDS, Tokenizer
    from paperscope.render import hits_for_terminal

    hits = Library.open(library_dir).search("quantized finetuning", k=3).hits
    console = Console(width=200, record=True, color_system="truecolor", force_terminal=True)
    console.print(hits_for_terminal(hits, Tokenizer(DISPLAY_STOPWORDS), "quantized finetuning", 200))
    text = console.export_text(clear=False)
    assert all(len(line) <= 200 for line in text.splitlines())
    assert "QLoRA" in text and "why it matched" in text
    assert "bold" in console.export_html() or "font-weight: bold" in console.export_html()
