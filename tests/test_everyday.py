"""Everyday use: output formats, BibTeX, adding papers, filters, the Python API."""

import json
import subprocess
import sys

import bibtexparser
import pytest
from typer.testing import CliRunner

from paperscope import Library
from paperscope.cli import app

from .arxiv_server import ArxivStub
from .conftest import FIXTURE_ENTRIES, FIXTURES

runner = CliRunner()
SNAPSHOT = str(FIXTURES / "snapshot-sample.jsonl")


def run(library, *args):
    return runner.invoke(app, ["--library", str(library), *args])


def test_jsonl_and_json_agree_and_stdout_holds_only_data(library_dir):
    as_json = json.loads(run(library_dir, "search", "code generation", "--json", "-k", "4").stdout)
    lines = run(library_dir, "search", "code generation", "-f", "jsonl", "-k", "4").stdout.splitlines()
    assert [json.loads(line) for line in lines] == as_json
    assert len(json.loads(run(library_dir, "list", "-f", "json").stdout)) == FIXTURE_ENTRIES


def test_piped_table_output_is_plain_text(library_dir):
    out = subprocess.run([sys.executable, "-m", "paperscope", "--library", str(library_dir), "search",
                          "LoRA", "-k", "1"], capture_output=True, text=True, check=True).stdout
    assert out.startswith(" 1. LoRA: Low-Rank Adaptation of Large Language Models  [lora]")
    assert "\x1b[" not in out and "┃" not in out


def test_unknown_format_is_a_usage_error(library_dir):
    result = run(library_dir, "list", "-f", "xml")
    assert result.exit_code == 2 and "Unknown format 'xml'" in result.stderr


def test_bibtex_parses_with_a_standard_parser_and_keys_are_stable(library_dir):
    text = run(library_dir, "cite").stdout
    library = bibtexparser.parse_string(text)
    assert not library.failed_blocks
    entries = {e.key: e for e in library.entries}
    assert len(entries) == FIXTURE_ENTRIES
    lora = entries["hu2021lora"]
    assert lora["eprint"] == "2106.09685" and lora["archivePrefix"] == "arXiv"
    assert lora["primaryClass"] == "cs.CL" and lora["year"] == "2021"
    assert lora["author"].startswith("Edward J. Hu and Yelong Shen")
    blog = entries["lambert2022illustrating"]
    assert blog.entry_type == "misc" and "huggingface.co/blog/rlhf" in blog["howpublished"]
    assert entries["deepspeed"]["note"] == "Software repository"
    assert run(library_dir, "cite").stdout == text
    one = bibtexparser.parse_string(run(library_dir, "cite", "qlora", "2106.09685").stdout)
    assert [e.key for e in one.entries] == ["dettmers2023qlora", "hu2021lora"]
    found = bibtexparser.parse_string(run(library_dir, "search", "LoRA", "-k", "2", "-f", "bibtex").stdout)
    assert next(e.key for e in found.entries) == "hu2021lora"


def test_long_work_writes_plain_progress_lines_when_not_on_a_terminal(monkeypatch, capsys):
    from paperscope import cli

    monkeypatch.setattr(cli._Progress, "LINE_SECONDS", 0.0)
    bar = cli._Progress("Embedding")
    bar.start(4, "documents")
    bar.advance(1)  # the pace is measured from the first advance on (not from a model's loading)
    bar.advance(1)
    bar.advance(2)  # done: no line, the command reports the result itself
    bar.stop()
    assert capsys.readouterr().err.splitlines() == [
        "Embedding: 1/4 documents (25%), estimating the time left",
        "Embedding: 2/4 documents (50%), under a minute left"]


def test_plain_progress_lines_come_even_while_nothing_advances(monkeypatch, capsys):
    """A long batch, a model loading or a Ray job's first chunk: the line still comes."""
    import time

    from paperscope import cli

    monkeypatch.setattr(cli._Progress, "LINE_SECONDS", 0.05)
    monkeypatch.setattr(cli._Progress, "TICK_SECONDS", 0.01)
    bar = cli._Progress("Embedding")
    bar.start(10, "papers")
    deadline = time.monotonic() + 10
    lines: list[str] = []
    while time.monotonic() < deadline and not lines:
        time.sleep(0.02)
        lines = capsys.readouterr().err.splitlines()
    bar.stop()
    assert lines and lines[0] == "Embedding: 0/10 papers (0%), estimating the time left"


def test_filters_narrow_before_ranking(library_dir):
    hits = json.loads(run(library_dir, "search", "reinforcement learning from human feedback", "--json",
                          "--section", "LLM Evaluation", "-k", "3").stdout)
    assert len(hits) == 3 and {h["section"] for h in hits} == {"LLM Evaluation"}
    recent = json.loads(run(library_dir, "search", "language model", "--json", "--kind", "paper",
                            "--year-from", "2023", "-k", "20").stdout)
    assert recent and all(h["kind"] == "paper" and h["year"] >= 2023 for h in recent)
    assert {"qlora", "llama", "starcoder"} <= {h["id"] for h in recent}
    old = json.loads(run(library_dir, "related", "lora", "--json", "--year-to", "2020").stdout)
    assert old and all(h["year"] <= 2020 for h in old)


def test_related_says_what_connects_the_entries(library_dir):
    hits = json.loads(run(library_dir, "related", "stackllama", "--json", "-k", "3").stdout)
    shared = {term for hit in hits for term in hit["shared_terms"]}
    assert {"RLHF", "PPO"} <= shared


def test_add_from_a_snapshot_keeps_comments_and_layout(small_library):
    before = (small_library / "catalogue.yaml").read_text()
    result = run(small_library, "add", "2305.14314", "--from-snapshot", SNAPSHOT,
                 "--section", "Training Recipe")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "qlora"
    after = (small_library / "catalogue.yaml").read_text()
    assert after.startswith(before.split("- section: Evaluation")[0].rstrip("\n"))
    assert after.endswith(before.split("- section: Training Recipe")[1].split("- section: Evaluation")[1])
    assert "# a small catalogue for tests" in after
    assert '      arxiv: "2305.14314"' in after
    hits = json.loads(run(small_library, "search", "quantized finetuning", "--json").stdout)
    assert hits[0]["id"] == "qlora"
    again = run(small_library, "add", "https://arxiv.org/abs/2305.14314v1", "--from-snapshot", SNAPSHOT)
    assert again.exit_code == 0 and "Already in the catalogue as 'qlora'" in again.stderr
    assert (small_library / "catalogue.yaml").read_text() == after


def test_add_through_the_arxiv_api(small_library):
    from paperscope.sources.arxiv_api import ArxivApiSource

    library = Library.open(small_library)
    library.build()
    with ArxivStub() as stub:
        result = library.add("2305.14314", section="New", api=ArxivApiSource(api_url=stub.url,
                                                                            delay_seconds=0))
    assert not result.already and result.entry.section == "New"
    assert result.build.embedded == ["qlora"]
    assert Library.open(small_library).records()["2305.14314"].source == "arxiv-api"


def test_add_a_link_needs_title_and_summary(small_library):
    result = run(small_library, "add", "https://example.org/post")
    assert result.exit_code == 2 and "needs --title and --summary" in result.stderr
    ok = run(small_library, "add", "https://example.org/post", "-s", "evaluation",
             "--title", "Mixture of experts explained",
             "--summary", "A post on sparse mixture-of-experts layers and routing.")
    assert ok.exit_code == 0 and ok.stdout.strip() == "mixture-of-experts-explained"
    assert json.loads(run(small_library, "search", "mixture of experts routing", "--json").stdout)[0]["kind"] == "blog"


def test_add_of_an_unknown_paper_changes_nothing(small_library):
    before = (small_library / "catalogue.yaml").read_text()
    result = run(small_library, "add", "2001.08361", "--from-snapshot", SNAPSHOT, "-s", "Evaluation")
    assert result.exit_code == 8 and "not in the snapshot" in result.stderr
    assert (small_library / "catalogue.yaml").read_text() == before


def test_ingest_from_a_snapshot_without_a_paper_says_where_else_to_get_it(small_library):
    catalogue = small_library / "catalogue.yaml"
    catalogue.write_text(catalogue.read_text() + "    - id: scaling-laws\n      title: Scaling Laws\n"
                         "      url: https://arxiv.org/abs/2001.08361\n      arxiv: \"2001.08361\"\n")
    result = run(small_library, "ingest", "--from-snapshot", SNAPSHOT, "--no-build")
    assert result.exit_code == 8
    assert "1 paper could not be fetched" in result.stderr and "2001.08361" in result.stderr
    assert "Fetch it from arXiv with `paperscope ingest`, or from a snapshot that has it." in result.stderr
    assert "2001.08361: not in the snapshot snapshot-sample.jsonl" in result.stderr  # as `add` says


def test_python_api(small_library):
    library = Library.open(small_library)
    report, missing = library.build()
    assert [e.id for e in missing] == ["lora"] and sorted(report.embedded) == ["alpaca", "humaneval", "lora"]
    library.ingest(snapshot=FIXTURES / "snapshot-sample.jsonl")
    library.build()
    outcome = library.search("unit tests for generated Python code", k=2)
    assert outcome.hits[0].document.id == "humaneval" and outcome.notices == []
    assert library.related("lora", k=1).hits[0].document.id in {"alpaca", "humaneval"}
    assert library.status()["up_to_date"] is True


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("paperscope 0.")


def test_show_of_a_link_without_summary_says_to_write_one(small_library):
    catalogue = small_library / "catalogue.yaml"
    catalogue.write_text(catalogue.read_text() + "    - id: a-repo\n      title: A repo\n"
                         "      url: https://example.org/a.pdf\n      kind: paper\n      needs_summary: true\n")
    result = run(small_library, "show", "a-repo")
    assert result.exit_code == 0 and "No summary yet" in result.stderr and "ingest" not in result.stderr


def test_export_into_a_folder_that_does_not_exist_is_refused(small_library, tmp_path):
    result = run(small_library, "export", "markdown", "--output", str(tmp_path / "typo" / "list.md"))
    assert result.exit_code == 2 and "There is no folder" in result.stderr
    assert not (tmp_path / "typo").exists()


# -- one definition of "up to date" (issue 21, finding 2) ------------------------------


def test_every_command_tells_the_same_state_of_the_index(small_library):
    """lora waits for its abstract: build, status, status --check and search all say so,
    and none calls the index up to date until it is fetched."""
    before = run(small_library, "status", "--check")
    assert before.exit_code == 1 and "Index:     none yet." in before.stdout
    first = run(small_library, "search", "instruction following", "--json")
    assert first.exit_code == 0, first.output  # right after init: the index is built on the way
    assert "There was no index yet: built it now (3 embedded)" in first.stderr
    assert "1 entry waits for its arXiv abstract" in first.stderr and "lora" in first.stderr
    built = run(small_library, "build")
    assert "Index already up to date" not in built.stderr
    assert "Nothing to embed" in built.stderr and "waiting for abstracts" in built.stderr
    assert "lora. Fetch it with: paperscope ingest" in built.stderr
    status = run(small_library, "status", "--check")
    assert status.exit_code == 1 and "waiting for 1 abstract" in status.stdout
    assert "waiting for an abstract: lora" in status.stdout
    info = json.loads(run(small_library, "status", "--json").stdout)
    assert info["state"] == "waiting for abstracts" and info["missing_text"] == ["lora"]
    assert not info["up_to_date"]
    assert run(small_library, "ingest", "--from-snapshot", SNAPSHOT).exit_code == 0
    assert "Index already up to date (3 entries)." in run(small_library, "build").stderr
    done = run(small_library, "status", "--check")
    assert done.exit_code == 0 and "3 entries, up to date" in done.stdout


def test_an_arxiv_entry_added_offline_with_a_summary_still_waits_for_its_abstract(small_library):
    path = small_library / "catalogue.yaml"  # what `add ID --title … --summary …` writes offline
    path.write_text(path.read_text() + (
        "    - id: chinchilla\n      title: Training Compute-Optimal Large Language Models\n"
        "      url: https://arxiv.org/abs/2203.15556\n      arxiv: \"2203.15556\"\n"
        "      summary: Model size and training tokens should grow together.\n"))
    run(small_library, "ingest", "--from-snapshot", SNAPSHOT, "--no-build")
    built = run(small_library, "build")
    assert "Index built" in built.stderr and "chinchilla. Fetch it with: paperscope ingest" in built.stderr
    assert Library.open(small_library).freshness().waiting == ("chinchilla",)
    assert run(small_library, "status", "--check").exit_code == 1
    search = run(small_library, "search", "model size and training tokens", "--json")
    assert json.loads(search.stdout)[0]["id"] == "chinchilla"  # searched by its summary meanwhile
    assert "chinchilla" in search.stderr


def test_search_with_no_entries_and_no_index_names_what_to_do(tmp_path):
    (tmp_path / "catalogue.yaml").write_text("- section: Reading list\n  entries: []\n")
    result = run(tmp_path, "search", "anything")
    assert result.exit_code == 4 and "the catalogue has no entries yet" in result.stderr
    assert "paperscope add" in result.stderr


# -- messages and exit codes (issue 21, finding 5) -------------------------------------


def test_add_with_a_taken_id_says_so(small_library):
    before = (small_library / "catalogue.yaml").read_text()
    result = run(small_library, "add", "2305.14314", "--from-snapshot", SNAPSHOT, "--id", "lora",
                 "--section", "Training Recipe", "--no-build")
    assert result.exit_code == 2 and "The id 'lora' is already taken" in result.stderr
    assert "edit it by hand" not in result.stderr
    assert (small_library / "catalogue.yaml").read_text() == before


def test_add_refuses_a_year_in_the_future(small_library):
    result = run(small_library, "add", "https://example.org/x", "--title", "X", "--summary", "Y.",
                 "--section", "Evaluation", "--year", "3000", "--no-build")
    assert result.exit_code == 2 and "--year 3000" in result.stderr


def test_years_in_the_wrong_order_are_a_usage_error_everywhere(library_dir):
    for command in (["search", "attention"], ["related", "lora"]):
        result = run(library_dir, *command, "--year-from", "2023", "--year-to", "2020")
        assert result.exit_code == 2 and "--year-from 2023 is after --year-to 2020" in result.stderr
    from paperscope.errors import UsageError
    from paperscope.library import Filters

    with pytest.raises(UsageError):
        Library.open(library_dir).search("attention", filters=Filters(year_from=2023, year_to=2020))
    from fastapi.testclient import TestClient

    from paperscope.serve.resident import Resident
    from paperscope.serve.web import API, create_app

    client = TestClient(create_app(Resident(library_dir)))
    for path, params in (("/search", {"q": "attention"}), ("/related/lora", {})):
        answer = client.get(f"{API}{path}", params={**params, "year_from": 2023, "year_to": 2020})
        assert answer.status_code == 400 and "--year-from 2023 is after" in answer.json()["error"]["message"]


def test_automatic_ids_are_short():
    from paperscope.catalogue import slug

    assert slug("Uncertainty Quantification in Fine-tuned LLMs using LoRA Ensembles") == \
        "uncertainty-quantification"
    assert slug("Attention Is All You Need") == "attention-is-all-you-need"
    assert slug("Full Stack Optimization of Transformer Inference: a Survey") == "full-stack-optimization"
    assert slug("LoRA: Low-Rank Adaptation of Large Language Models") == "lora"
    assert slug("LoRA: Low-Rank", taken={"lora"}) == "lora-2"


def test_waiting_for_another_process_is_said_once_per_command(capsys):
    from paperscope import cli

    cli._State.said_waiting = False
    cli._waiting()
    cli._waiting()  # `add` waits for the lock twice: to edit, then to build
    assert capsys.readouterr().err.count("waiting for it to finish") == 1


def test_did_you_mean_suggests_close_ids_only(library_dir):
    llama = run(library_dir, "show", "llama2")
    assert llama.exit_code == 3 and "Did you mean: llama?" in llama.stderr  # not llmdatahub
    lora = run(library_dir, "show", "lroa")
    assert "Did you mean: lora, qlora?" in lora.stderr  # not llama
    assert "See the ids with: paperscope list" in run(library_dir, "show", "xyz").stderr


def test_snippets_are_cut_between_words():
    from paperscope.text import shorten

    assert shorten("Low-rank adapters make finetuning cheap", 24) == "Low-rank adapters make…"
    assert shorten("Low-rank adapters make finetuning cheap", 28) == "Low-rank adapters make…"
    assert shorten("short", 10) == "short" and shorten("abcdefghijkl", 5) == "abcd…"


def test_a_global_option_after_the_command_says_where_it_goes(library_dir):
    result = runner.invoke(app, ["search", "attention", "--library", str(library_dir)])
    assert result.exit_code == 2
    assert "--library is an option of paperscope itself" in result.output
    assert "No such option" not in result.output


def test_one_query_limit_for_the_cli_and_the_servers(library_dir):
    from paperscope.search import MAX_QUERY_CHARS
    from paperscope.serve import resident

    assert resident.MAX_QUERY_CHARS == MAX_QUERY_CHARS  # what the web API and MCP refuse beyond
    result = run(library_dir, "search", "x" * 100_000)
    assert result.exit_code == 2 and f"the most is {MAX_QUERY_CHARS:,}" in result.stderr
    assert run(library_dir, "search", "x " * (MAX_QUERY_CHARS // 2), "-k", "1").exit_code == 0
