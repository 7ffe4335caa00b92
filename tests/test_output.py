"""What people read: terminal layouts at 80 and 200 columns and through a pipe, scores,
shared words, filters, status, closed pipes and the Python API (issue 12)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from paperscope import render
from paperscope.cli import app

from .conftest import REPO

runner = CliRunner()
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(library, *args, env=None):
    return runner.invoke(app, ["--library", str(library), *args], env=env)


def terminal(library, columns, *args):
    """The command's stdout as a terminal of `columns` columns shows it, without colours."""
    result = run(library, *args, env={"FORCE_COLOR": "1", "COLUMNS": str(columns), "TTY_COMPATIBLE": "1"})
    assert result.exit_code == 0, result.output
    return ANSI.sub("", result.stdout)


# -- filters name the valid values ------------------------------------------------------

@pytest.mark.parametrize("option, value, listed", [("--section", "Nope", "Training Recipe"),
                                                   ("--kind", "papers", "paper")])
def test_unknown_section_or_kind_in_search_lists_the_valid_ones(library_dir, option, value, listed):
    result = run(library_dir, "search", "lora", "--mode", "lexical", option, value)
    assert result.exit_code == 2
    assert repr(value) in result.stderr and listed in result.stderr


def test_unknown_kind_in_a_corpus_index_lists_its_kinds(tmp_path, fake_encoder):
    from paperscope.index import IndexStore
    from paperscope.indexer import build_index
    from paperscope.records import Document

    store = IndexStore(tmp_path / "corpus")
    build_index(store, [Document("d1", "Adapters", "Small modules for finetuning.", {"kind": "paper"}),
                        Document("d2", "Pruning", "Removing weights after training.", {"kind": "paper"})],
                model="fake-model", encoder=fake_encoder)
    result = runner.invoke(app, ["search", "adapters", "--mode", "lexical", "--index-dir",
                                 str(store.directory), "--kind", "papers"])
    assert result.exit_code == 2 and "Kinds: paper" in result.stderr
    result = runner.invoke(app, ["search", "adapters", "--mode", "lexical", "--index-dir",
                                 str(store.directory), "--section", "Nope"])
    assert result.exit_code == 2 and "no sections" in result.stderr


# -- a closed pipe ----------------------------------------------------------------------

@pytest.mark.parametrize("command", [["cite"], ["list"], ["--help"], ["search", "--help"]])
def test_a_reader_that_stops_early_is_not_an_error(library_dir, command):
    child = subprocess.Popen([sys.executable, "-m", "paperscope", "--library", str(library_dir), *command],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    child.stdout.close()  # like `| head -1` having read its line
    stderr = child.stderr.read()
    assert child.wait(timeout=60) == 0, stderr
    assert stderr == b""


# -- the Python API ---------------------------------------------------------------------

def test_the_package_exports_the_api_and_cites(library_dir):
    import paperscope
    from paperscope import Collection, Filters, Library, UnknownEntryError, UsageError

    assert {"Library", "Filters", "Collection", "UsageError", "PaperscopeError"} <= set(paperscope.__all__)
    library = Library.open(library_dir)
    bibtex = library.cite(["lora"])
    assert bibtex.startswith("@misc{") and "eprint = {2106.09685}" in bibtex
    assert issubclass(UsageError, paperscope.PaperscopeError) and Collection and Filters
    with pytest.raises(UnknownEntryError):
        library.cite(["no-such-entry"])
    cli = run(library_dir, "cite", "lora")
    assert cli.exit_code == 0 and cli.stdout.strip() == bibtex.strip()


# -- examples and snapshots -------------------------------------------------------------

def test_examples_use_only_paths_a_user_has():
    text = (REPO / "README.md").read_text() + (REPO / "docs" / "cli.md").read_text()
    assert "../shared" not in text


def test_a_missing_snapshot_is_an_error_even_with_nothing_to_fetch(library_dir, tmp_path):
    result = run(library_dir, "ingest", "--from-snapshot", str(tmp_path / "missing.json"), "--no-build")
    assert result.exit_code == 2 and "not found" in result.stderr


# -- scores -----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["hybrid", "lexical", "dense"])
def test_scores_are_a_relevance_from_0_to_1_in_every_mode(library_dir, mode):
    result = run(library_dir, "search", "LoRA", "--mode", mode, "--json")
    hits = json.loads(result.stdout)
    scores = [hit["score"] for hit in hits]
    assert all(0.0 <= score <= 1.0 for score in scores), scores  # calibrated: see test_score.py
    if mode != "dense":
        assert hits[0]["id"] == "lora" and scores[0] == 1.0
    assert "0 to 1" in run(library_dir, "search", "--help").stdout


def test_lexical_relevance_keeps_the_bm25_order(library_dir):
    from paperscope import Library

    library = Library.open(library_dir)
    index, _ = library.index()
    raw = index.lexical.scores("adapter weights for finetuning")
    order = [i for i in raw.argsort()[::-1] if raw[i] > 0][:10]
    hits = library.search("adapter weights for finetuning", mode="lexical").hits
    assert [h.document.id for h in hits] == [index.document(int(i)).id for i in order]
    assert all(0.0 < hit.score < 1.0 for hit in hits)  # calibrated, not divided by the best


# -- related: what two entries share -----------------------------------------------------

FILLER = {"than", "greatly", "despite", "when", "while", "still", "several", "better", "best",
          "without", "even", "has", "number", "time", "paper", "results", "furthermore", "fine",
          "https", "com", "outperforms"}


@pytest.mark.parametrize("entry", ["lora", "qlora", "instructgpt", "codex", "humaneval"])
def test_related_shows_content_words_not_filler(library_dir, entry):
    hits = json.loads(run(library_dir, "related", entry, "--mode", "lexical", "--json").stdout)
    shown = {word.casefold() for hit in hits for word in hit.get("shared_terms", [])}
    assert shown and not shown & FILLER, shown & FILLER


def test_related_ranking_itself_is_unchanged(library_dir):
    from paperscope import Library

    library = Library.open(library_dir)
    index, _ = library.index()
    position = index.position("lora")
    raw = index.lexical.scores(index.document(position).embedding_text)
    raw[position] = 0
    expected = [index.document(int(i)).id for i in raw.argsort()[::-1][:5]]
    assert [h.document.id for h in library.related("lora", mode="lexical").hits] == expected


# -- status after a metadata-only edit ---------------------------------------------------

def test_status_names_the_entries_whose_metadata_changed(library_dir):
    catalogue = library_dir / "catalogue.yaml"
    text = catalogue.read_text()
    text = text.replace("url: https://arxiv.org/pdf/2106.09685.pdf\n      kind: paper\n",
                        "url: https://arxiv.org/abs/2106.09685\n      kind: paper\n      year: 2022\n")
    catalogue.write_text(text)
    result = run(library_dir, "status")
    assert "OUT OF DATE" in result.stdout
    assert re.search(r"metadata changed: lora$", result.stdout, re.M), result.stdout
    info = json.loads(run(library_dir, "status", "--json").stdout)
    assert info["metadata_changed"] == ["lora"] and info["stale"] == []


# -- terminal layouts -------------------------------------------------------------------

def urls(library, *ids):
    from paperscope import Library

    library = Library.open(library)
    return [library.entry(i).url for i in ids]


def test_search_at_80_columns_is_compact_blocks_with_whole_links(library_dir):
    out = terminal(library_dir, 80, "search", "the scaling laws in language models", "--mode", "lexical")
    hits = json.loads(run(library_dir, "search", "the scaling laws in language models", "--mode",
                          "lexical", "--json").stdout)
    assert "┃" not in out and "…/" not in out
    for hit in hits:
        assert hit["url"] in out.split()  # whole, never cut
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines if "https://" not in line)
    assert len(lines) <= 6 * len(hits)
    assert re.match(r" 1\. Scaling Laws", lines[0])


def test_search_at_200_columns_is_a_table_with_whole_links(library_dir):
    out = terminal(library_dir, 200, "search", "parameter-efficient finetuning", "--mode", "lexical")
    assert "┃" in out
    assert all(len(line) <= 200 for line in out.splitlines())
    hits = json.loads(run(library_dir, "search", "parameter-efficient finetuning", "--mode", "lexical",
                          "--json").stdout)
    for hit in hits:
        assert hit["url"] in out


def test_highlights_are_content_words_in_titles_and_snippets(library_dir):
    result = run(library_dir, "search", "the scaling laws in language models", "--mode", "lexical", "-k", "3",
                 env={"FORCE_COLOR": "1", "COLUMNS": "80"})
    highlighted = {word.casefold() for word in re.findall(r"\x1b\[1;33m([^\x1b]+)\x1b\[0m", result.stdout)}
    assert {"scaling", "laws", "language"} <= highlighted
    assert not highlighted & {"the", "in", "for", "of"}
    first_line = result.stdout.splitlines()[0]
    assert "\x1b[1;33mScaling" in first_line  # in the title too


def test_search_through_a_pipe_is_plain_lines_with_whole_links(library_dir):
    result = run(library_dir, "search", "parameter-efficient finetuning", "--mode", "lexical",
                 env={"FORCE_COLOR": None, "TTY_COMPATIBLE": None, "COLUMNS": "80"})
    assert "\x1b[" not in result.stdout and "┃" not in result.stdout
    for url in urls(library_dir, "lora", "qlora"):
        assert url in result.stdout


@pytest.mark.parametrize("columns", [80, 200])
def test_list_fits_the_terminal_without_breaking_words(library_dir, columns):
    out = terminal(library_dir, columns, "list")
    assert all(len(line) <= columns for line in out.splitlines())
    words = set(" ".join(out.split()).split())
    from paperscope import Library

    for entry in Library.open(library_dir).catalogue.entries:
        assert set(entry.title.split()) <= words, entry.title  # no word cut in two


def test_list_through_a_pipe_is_one_line_an_entry(library_dir):
    from paperscope import Library

    result = run(library_dir, "list", env={"FORCE_COLOR": None, "TTY_COMPATIBLE": None, "COLUMNS": "80"})
    entries = Library.open(library_dir).catalogue.entries
    assert sum(1 for line in result.stdout.splitlines() if line.startswith("  ")) == len(entries)


def test_show_wraps_joins_line_breaks_shortens_authors_and_cleans_latex(library_dir):
    out = terminal(library_dir, 80, "show", "pythia")
    assert all(len(line) <= 80 for line in out.splitlines())
    assert "\\textit" not in out and "Pythia, a suite" in out
    assert "and 10 others" in out
    every = terminal(library_dir, 80, "show", "pythia", "--all-authors")
    assert "others" not in every.split("\n\n")[0] and "Stella Biderman" in every
    abstract = json.loads(run(library_dir, "show", "pythia", "--json").stdout)["abstract"]
    assert "\\textit" not in abstract and "introduce Pythia, a suite" in abstract  # as shown
    stored = (library_dir / "index" / "records.json").read_text(encoding="utf-8")
    assert "\\\\textit{Pythia}" in stored  # the stored text is kept as written (JSON-escaped)


def test_display_text_shows_simple_latex_as_text():
    from paperscope.render import display_text

    assert display_text("We introduce \\textit{Pythia},\na suite") == "We introduce Pythia, a suite"
    assert display_text("achieves 40\\% pass@1, 10~times faster") == "achieves 40% pass@1, 10 times faster"
    assert display_text("at \\url{https://x.org/a}") == "at https://x.org/a"
    assert display_text("into Low Rank Adapters~(LoRA).") == "into Low Rank Adapters (LoRA)."


def test_display_text_shows_greek_letters_and_symbols_as_characters():
    from paperscope.render import display_text

    assert display_text("the update $\\Delta W = B A$ of rank $r \\ll d$") == "the update ΔW = B A of rank r ≪ d"
    assert display_text("$\\alpha$-scaling, $\\approx$ 3x, $n \\leq 8$, 10\\,GB") == \
        "\u03b1-scaling, ≈ 3x, n ≤ 8, 10 GB"
    assert display_text("\\frac{a}{b} and \\unknown stay") == "\\frac{a}{b} and \\unknown stay"
    assert display_text(display_text("$\\Delta W$ ~ 40\\%")) == "ΔW 40%"  # twice: the same


# -- one output path for every command -------------------------------------------------

@pytest.mark.parametrize("command", [["show", "lora"], ["status"]])
def test_show_and_status_take_the_shared_format_option(library_dir, command):
    as_json = json.loads(run(library_dir, *command, "--format", "json").stdout)
    lines = run(library_dir, *command, "--format", "jsonl").stdout.splitlines()
    assert len(lines) == 1 and json.loads(lines[0]) == as_json
    assert json.loads(run(library_dir, *command, "--json").stdout) == as_json


def test_eval_and_status_refuse_bibtex_and_eval_takes_jsonl(library_dir, tmp_path):
    assert run(library_dir, "status", "--format", "bibtex").exit_code == 2
    data = tmp_path / "qa"
    (data / "qrels").mkdir(parents=True)
    (data / "queries.jsonl").write_text('{"_id": "q1", "text": "low-rank adaptation"}\n')
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tlora\t1\n")
    result = run(library_dir, "eval", str(data), "--mode", "lexical", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["modes"][0]["mode"] == "lexical"


# -- threads ----------------------------------------------------------------------------

PROBE = """
import os, sys
from paperscope import cli, settings
seen = []
original = settings.single_threaded
settings.single_threaded = lambda: (seen.append("numpy" in sys.modules), original())
sys.argv = ["paperscope", "--library", sys.argv[1], "status", "--json"]
try:
    cli.main()
except SystemExit:
    pass
print("RESULT", seen, *(os.environ.get(name) for name in settings.THREAD_VARIABLES), settings.build_threads())
"""


@pytest.mark.parametrize("user, expected", [(None, ["1", "1", "1"]), ("3", ["3", "1", "1"])])
def test_commands_run_single_threaded_unless_the_user_chose(library_dir, user, expected):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env["PYTHONPATH"] = str(REPO / "src")
    if user:
        env["OMP_NUM_THREADS"] = user
    out = subprocess.run([sys.executable, "-c", PROBE, str(library_dir)], env=env, capture_output=True,
                         text=True, timeout=60).stdout
    seen, *values, build = out.split("RESULT ", 1)[1].split()
    assert seen == "[False]"  # set before NumPy was imported
    assert values == expected
    assert int(build) == (int(user) if user else os.cpu_count())


def test_counts_agree_with_their_nouns():
    from paperscope.text import counted

    assert [counted(n, "entry") for n in (0, 1, 2, 1200)] == ["0 entries", "1 entry", "2 entries",
                                                              "1,200 entries"]
    assert counted(1, "query") == "1 query" and counted(3, "query") == "3 queries"
    assert counted(2, "day") == "2 days" and counted(2, "paper") == "2 papers"


def test_status_fits_80_columns_however_many_entries_are_new(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    entries = "".join(f"    - id: a-rather-long-entry-name-number-{i}\n      title: T{i}\n"
                      f"      url: https://example.org/{i}\n      summary: Text {i}.\n" for i in range(30))
    (tmp_path / "catalogue.yaml").write_text("- section: S\n  entries:\n" + entries)
    result = CliRunner().invoke(app, ["--library", str(tmp_path), "status"])
    lines = result.stdout.splitlines()
    assert result.exit_code == 0 and max(map(len, lines)) <= 80, result.stdout
    assert "18 more (see --json)" in result.stdout


def test_verbose_logs_what_happens_to_stderr(library_dir):
    result = subprocess.run([sys.executable, "-m", "paperscope", "--library", str(library_dir), "-v",
                             "search", "LoRA", "--mode", "lexical", "--json"], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert result.returncode == 0 and json.loads(result.stdout)
    assert "INFO paperscope.index: opened" in result.stderr and "ranked" in result.stderr


def test_a_query_with_no_known_word_says_its_results_are_by_meaning_alone(library_dir):
    unknown = runner.invoke(app, ["--library", str(library_dir), "search", "zzzqqq", "-k", "2"])
    assert unknown.exit_code == 0 and "No word of the query occurs in any document" in unknown.stderr
    known = runner.invoke(app, ["--library", str(library_dir), "search", "low-rank adaptation"])
    assert "No word of the query" not in known.stderr


def test_list_keeps_its_columns_when_an_id_is_long():
    from paperscope.records import Entry
    from paperscope.render import entries_as_text

    entries = [Entry(id=name, title="A title long enough to wrap at eighty columns, once or twice",
                     url="https://example.org", section="S", kind="blog")
               for name in ("lora", "improving-language-understanding-by-generative")]
    lines = entries_as_text(entries, 80).splitlines()
    assert all(len(line) <= 80 for line in lines)
    alone = lines.index("  improving-language-understanding-by-generative")  # a line of its own
    assert lines[alone + 1].index("blog") == lines[1].index("blog")  # the columns stay


def test_discovered_papers_wrap_to_the_terminal_and_stay_one_line_each_in_a_pipe():
    paper = {"rank": 1, "score": 0.42, "entries": 25, "id": "2406.14088", "year": 2024,
             "title": "ReaL: Efficient RLHF Training of Large Language Models with Parameter Reallocation",
             "url": "https://arxiv.org/abs/2406.14088",
             "closest": [{"entry": "megatron-lm", "score": 0.42,
                          "shared_terms": ["Megatron", "parallelism", "LM", "GPUs", "pipeline", "tensor"]}]}
    wrapped = render.discoveries_as_text([paper, {**paper, "rank": 2}], width=60)
    assert all(len(line) <= 60 for line in wrapped.splitlines())
    assert "\n\n 2. ReaL" in wrapped and "close to 25 of the chosen entries" in " ".join(wrapped.split())
    piped = render.discoveries_as_text([paper], width=None).splitlines()
    assert piped[0] == f" 1. {paper['title']} (2024)  [2406.14088]  0.420" and len(piped) == 3
