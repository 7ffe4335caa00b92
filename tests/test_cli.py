"""The command line end to end, with the real packaged model, on a copy of the frozen test
library (tests/fixtures/library/: the reading list and its built index)."""

import json
import re

import pytest
from typer.testing import CliRunner

from paperscope.cli import app

from .conftest import FIXTURE_ARXIV_ENTRIES, FIXTURE_ENTRIES

runner = CliRunner()


def run(library, *args):
    return runner.invoke(app, ["--library", str(library), *args])


def search_ids(library, query, *extra):
    result = run(library, "search", query, "--json", *extra)
    assert result.exit_code == 0, result.output
    return [hit["id"] for hit in json.loads(result.stdout)]


def test_parameter_efficient_finetuning_finds_lora_and_qlora(library_dir):
    top3 = search_ids(library_dir, "parameter-efficient finetuning", "-k", "3")
    assert {"lora", "qlora"} <= set(top3)


def test_rlhf_question_puts_an_rlhf_entry_first(library_dir):
    first = search_ids(library_dir, "reinforcement learning from human feedback")[0]
    assert first in {"illustrating-rlhf", "helpful-harmless-assistant", "instructgpt",
                     "finetuning-from-human-preferences", "stackllama"}


@pytest.mark.parametrize("query, expected", [
    ("LoRA", "lora"),
    ("RLHF", "illustrating-rlhf"),
    ("Codex", "codex"),
    ("InstructGPT", "instructgpt"),
    ("qlora", "qlora"),
    ("HumanEval", "humaneval"),
    ("StackLLaMA", "stackllama"),
    ("ZeRO optimizer partitioning", "deepspeed"),
    ("text-to-SQL benchmark", "bird-text-to-sql"),
])
def test_names_and_acronyms_find_their_entry_first(library_dir, query, expected):
    assert search_ids(library_dir, query)[0] == expected


def test_search_json_is_clean_and_complete(library_dir):
    result = run(library_dir, "search", "scaling laws", "--json", "-k", "2")
    hits = json.loads(result.stdout)
    assert len(hits) == 2 and hits[0]["rank"] == 1 and hits[0]["score"] >= hits[1]["score"]
    assert set(hits[0]) >= {"rank", "score", "id", "title", "section", "kind", "url", "arxiv_id", "year"}
    blog = json.loads(run(library_dir, "search", "blog post about attention", "--json", "--kind", "blog").stdout)
    assert blog and all(h["kind"] == "blog" and h["arxiv_id"] is None for h in blog)


def test_search_text_output_shows_rank_title_section_link_and_snippet(library_dir):
    result = run(library_dir, "search", "quantized finetuning", "-k", "1")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert re.match(r"^ 1\. QLoRA: Efficient Finetuning of Quantized LLMs  \[qlora\]  \d\.\d{3}$", lines[0])
    assert "Training Recipe · paper · 2023 · https://arxiv.org/pdf/2305.14314.pdf" in lines[1]
    assert "finetun" in lines[2].lower()


def test_related_lora_has_qlora_near_the_top_and_not_itself(library_dir):
    result = run(library_dir, "related", "lora", "--json", "-k", "3")
    ids = [h["id"] for h in json.loads(result.stdout)]
    assert "qlora" in ids and "lora" not in ids and len(ids) == 3


def test_related_accepts_an_arxiv_id(library_dir):
    result = run(library_dir, "related", "2305.14314", "--json", "-k", "3")
    assert result.exit_code == 0 and "lora" in [h["id"] for h in json.loads(result.stdout)]


def test_unknown_id_suggests_close_ones(library_dir):
    result = run(library_dir, "related", "qlroa")
    assert result.exit_code == 3
    assert "No entry with id 'qlroa'" in result.stderr and "qlora" in result.stderr
    assert "Traceback" not in result.output


def test_list_json_has_every_entry(library_dir):
    entries = json.loads(run(library_dir, "list", "--json").stdout)
    assert len(entries) == FIXTURE_ENTRIES
    assert len([e for e in entries if e["arxiv_id"]]) == FIXTURE_ARXIV_ENTRIES
    assert all(e["abstract"] for e in entries if e["arxiv_id"])
    section = json.loads(run(library_dir, "list", "--section", "rlhf for llm", "--json").stdout)
    assert [e["id"] for e in section] == ["illustrating-rlhf", "stackllama"]
    bad = run(library_dir, "list", "--section", "Nope")
    assert bad.exit_code == 2 and "Sections: Model Architecture" in bad.stderr


def test_show_prints_authors_year_link_and_abstract(library_dir):
    result = run(library_dir, "show", "qlora")
    assert result.exit_code == 0
    assert "Tim Dettmers" in result.stdout and "2023" in result.stdout
    assert "https://arxiv.org/pdf/2305.14314.pdf" in result.stdout and "We present QLoRA" in result.stdout


def test_a_broken_catalogue_is_reported_with_file_and_line(library_dir):
    path = library_dir / "catalogue.yaml"
    path.write_text(path.read_text().replace("      title: Attention? Attention!\n", "", 1))
    result = run(library_dir, "search", "attention")
    assert result.exit_code == 2
    assert re.search(r"catalogue.yaml:\d+: missing required field `title`", result.stderr)
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_a_deleted_index_file_names_the_repair(library_dir):
    manifest = json.loads((library_dir / "index" / "manifest.json").read_text())
    (library_dir / "index" / manifest["files"]["vectors"]["file"]).unlink()
    result = run(library_dir, "search", "attention")
    assert result.exit_code == 4
    assert "is missing" in result.stderr and "paperscope build --full" in result.stderr
    assert run(library_dir, "build", "--full").exit_code == 0
    assert run(library_dir, "search", "attention").exit_code == 0


def test_an_edited_summary_is_picked_up_by_the_next_search(library_dir):
    path = library_dir / "catalogue.yaml"
    text = path.read_text().replace(
        "A curated list of open datasets for training large language models",
        "A curated list of zebra-striped datasets for training large language models", 1)
    path.write_text(text)
    status = run(library_dir, "status", "--check")
    assert status.exit_code == 1 and "stale: llmdatahub" in status.stdout
    result = run(library_dir, "search", "zebra-striped datasets", "--json", "-k", "1")
    assert json.loads(result.stdout)[0]["id"] == "llmdatahub"
    assert "1 embedded" in result.stderr and "llmdatahub" in result.stderr
    assert run(library_dir, "status", "--check").exit_code == 0


def test_an_index_built_with_other_passage_lengths_is_searched_until_a_build(library_dir):
    manifest_path = library_dir / "index" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["passages_scheme"]["words"] = [90]  # as paperscope wrote it before three scales
    manifest_path.write_text(json.dumps(manifest))
    status = run(library_dir, "status", "--check")
    assert status.exit_code == 1
    assert "embedded again at the next build: the passage lengths changed from 90 to 90, 55 and 35" \
        in status.stdout
    path = library_dir / "catalogue.yaml"
    path.write_text(path.read_text().replace("A PyTorch library offering", "A PyTorch package offering", 1))
    result = run(library_dir, "search", "attention", "--json", "-k", "1")
    assert result.exit_code == 0 and json.loads(result.stdout)
    assert "run `paperscope build` (it embeds every entry again)" in result.stderr
    assert json.loads(manifest_path.read_text())["passages_scheme"]["words"] == [90]  # nothing rebuilt


def add_entry_without_abstract(library_dir):
    """Append an arXiv entry whose abstract was never fetched (chinchilla)."""
    path = library_dir / "catalogue.yaml"
    path.write_text(path.read_text() + (
        "    - id: chinchilla\n      title: Training Compute-Optimal Large Language Models\n"
        "      url: https://arxiv.org/abs/2203.15556\n      arxiv: \"2203.15556\"\n"))


def test_a_new_arxiv_entry_without_abstract_is_named_with_the_command_to_run(library_dir):
    add_entry_without_abstract(library_dir)
    result = run(library_dir, "search", "compute-optimal training", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)
    assert "1 entry waits for its arXiv abstract" in result.stderr and "chinchilla" in result.stderr
    assert "paperscope ingest" in result.stderr


def test_build_is_incremental_and_says_so(library_dir):
    result = run(library_dir, "build")
    assert result.exit_code == 0 and f"already up to date ({FIXTURE_ENTRIES} entries)" in result.stderr
    path = library_dir / "catalogue.yaml"
    path.write_text(path.read_text().replace("A PyTorch library offering", "A PyTorch package offering", 1))
    result = run(library_dir, "build")
    assert f"1 embedded, {FIXTURE_ENTRIES - 1} reused, 0 removed" in result.stderr


def test_status_reports_the_index(library_dir):
    info = json.loads(run(library_dir, "status", "--json").stdout)
    assert info["up_to_date"] and info["entries"] == FIXTURE_ENTRIES and info["indexed"] == FIXTURE_ENTRIES
    assert info["model"] == "sentence-transformers/all-MiniLM-L6-v2" and info["dimension"] == 384


def test_bad_arguments_are_usage_errors(library_dir):
    assert run(library_dir, "search", "   ").exit_code == 2
    assert run(library_dir, "search", "x", "-k", "0").exit_code == 2
    assert "Unknown mode 'fuzzy'" in run(library_dir, "search", "x", "--mode", "fuzzy").stderr


def test_outside_a_library_the_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PAPERSCOPE_LIBRARY", raising=False)
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 2 and "No catalogue.yaml found" in result.stderr


def test_an_entry_waiting_for_its_abstract_is_found_by_its_title(library_dir):
    add_entry_without_abstract(library_dir)
    result = run(library_dir, "search", "Training Compute-Optimal Large Language Models", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)[0]["id"] == "chinchilla"
    assert "1 entry waits for its arXiv abstract (searched by its title or summary until then): " \
        "chinchilla. Fetch it with: paperscope ingest" in result.stderr
    assert run(library_dir, "status", "--check").exit_code == 1  # still waiting for its abstract


def test_an_interrupted_build_says_what_is_kept_and_how_to_go_on(library_dir, monkeypatch):
    """Ctrl-C (or SIGTERM, made the same) in the middle of embedding: exit 130 and the way on."""
    from paperscope.library import Library

    def interrupted(self, *args, on_encoder=None, **kwargs):
        on_encoder("numpy", 40, "")
        raise KeyboardInterrupt

    monkeypatch.setattr(Library, "build", interrupted)
    result = run(library_dir, "build", "--full")
    assert result.exit_code == 130
    assert "entries embedded in finished chunks are kept" in result.stderr
    assert "run the same command again" in result.stderr and "Traceback" not in result.output


def test_list_of_an_empty_catalogue_says_how_to_add_one(tmp_path):
    (tmp_path / "catalogue.yaml").write_text("")
    result = run(tmp_path, "list")
    assert result.exit_code == 0 and result.stdout == ""
    assert "no entries yet" in result.stderr and "paperscope add" in result.stderr
