"""Named corpora: snapshot import with filters, builds, search, discovery and adding a
discovered paper offline."""

import gzip
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from paperscope.corpora import Corpus, SnapshotFilter
from paperscope.errors import SnapshotError, UnknownEntryError, UsageError
from paperscope.library import Filters

runner = CliRunner()

TOPICS = [
    ("cs.CL", "Low-rank adapters for parameter-efficient finetuning of language models",
     "We freeze the pretrained weights and train low-rank adapter matrices. Finetuning cost drops."),
    ("cs.CL", "Quantized adapters make finetuning of large models fit on one GPU",
     "Four-bit quantization with low-rank adapters preserves finetuning quality."),
    ("cs.CV", "Diffusion models for video generation", "A video diffusion model generates clips."),
    ("astro-ph.EP", "Transmission spectra of exoplanet atmospheres",
     "We observe transmission spectra of hot Jupiters with a ground-based spectrograph."),
    ("cs.LG cs.CL", "Reward models for reinforcement learning from human feedback",
     "Human preference data trains a reward model that guides policy optimisation."),
]


def snapshot_line(number: int, category: str, title: str, abstract: str, month: str) -> str:
    return json.dumps({"id": f"25{month}.{number:05d}", "title": title, "abstract": abstract,
                       "authors": "A. Author, B. Author", "categories": category, "versions": [],
                       "update_date": f"2025-{month}-15",
                       "authors_parsed": [["Author", "A.", ""], ["Author", "B.", ""]]})


@pytest.fixture
def snapshot(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERSCOPE_CACHE", str(tmp_path / "cache"))
    lines = [snapshot_line(n, *TOPICS[n % len(TOPICS)], month=f"{1 + n % 6:02d}") for n in range(30)]
    lines.insert(3, "{not json")
    lines.insert(7, json.dumps({"id": "2501.99999", "title": 42, "abstract": {"x": 1}}))
    lines.insert(9, lines[0])  # the same id twice
    path = tmp_path / "snapshot.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    return path


def test_import_filters_by_category_and_date_and_skips_bad_lines(snapshot):
    corpus = Corpus("cl")
    report = corpus.import_snapshot(snapshot, SnapshotFilter(("cs.CL",), since="2025-02"))
    assert report.read == 33 and report.duplicates == 0
    assert sum(report.skipped.values()) == 2  # the broken line and the one of the wrong types
    kept = Corpus("cl").about()["documents"]
    assert kept == report.kept and 0 < kept < 30
    everything = Corpus("all").import_snapshot(snapshot, SnapshotFilter(("cs", "astro-ph")))
    assert everything.kept == 30 and everything.duplicates == 1
    assert Corpus("astro").import_snapshot(snapshot, SnapshotFilter(("astro-ph",))).kept == 6


def test_bad_names_dates_and_files_are_usage_errors(snapshot, tmp_path):
    with pytest.raises(UsageError):
        Corpus("../escape")
    with pytest.raises(UsageError):
        SnapshotFilter(since="January")
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(SnapshotError, match="not an arXiv metadata snapshot"):
        Corpus("x").import_snapshot(tmp_path / "notes.txt", SnapshotFilter())
    with pytest.raises(UnknownEntryError, match="No corpus named 'nothing'"):
        Corpus.open("nothing")


def test_a_corpus_is_built_searched_and_filtered_through_the_same_facade(snapshot, fake_encoder):
    corpus = Corpus("all", encoder=fake_encoder)
    corpus.import_snapshot(snapshot, SnapshotFilter())
    report = corpus.build()
    assert report.written and len(report.embedded) == 30 and report.scheme == "multi-scale"
    collection = corpus.collection
    hits = collection.search("low-rank adapters finetuning", k=3).hits
    assert "adapter" in hits[0].document.title.lower()
    related = collection.related(hits[0].document.id, k=2).hits
    assert related and hits[0].document.id not in {h.document.id for h in related}
    filtered = collection.search("finetuning", k=30, filters=Filters(year_from=2026)).hits
    assert filtered == []
    again = corpus.build()
    assert not again.written  # nothing changed


@pytest.mark.slow  # imports, builds with the real model, searches, discovers and adds
def test_the_cli_imports_searches_discovers_and_adds_offline(snapshot, library_dir):
    def run(*args):
        return runner.invoke(__import__("paperscope.cli").cli.app, ["--library", str(library_dir), *args])

    result = run("corpus", "import", str(snapshot), "--name", "sample", "--category", "cs")
    assert result.exit_code == 0, result.output
    assert "Imported 24 papers" in result.stderr and "skipped 2 unusable" in result.stderr
    listed = json.loads(run("corpus", "list", "--json").stdout)
    assert listed[0]["name"] == "sample" and listed[0]["indexed"] == 24
    again = run("corpus", "import", str(snapshot), "--name", "sample", "--limit", "5", "--no-build")
    assert again.exit_code == 2 and "exists already" in again.stderr and "--replace" in again.stderr
    bad = run("corpus", "import", str(snapshot), "--name", "other", "--passages", "fancy")
    assert bad.exit_code == 2 and "Unknown passage scheme" in bad.stderr and "Imported" not in bad.stderr
    assert [c["name"] for c in json.loads(run("corpus", "list", "--json").stdout)] == ["sample"]
    found = run("search", "quantized low-rank adapters", "--corpus", "sample", "--json", "-k", "3")
    assert found.exit_code == 0, found.output
    assert "Quantized adapters" in json.loads(found.stdout)[0]["title"]
    discovered = run("discover", "--corpus", "sample", "--entry", "lora", "--json", "-k", "5")
    assert discovered.exit_code == 0, discovered.output
    papers = json.loads(discovered.stdout)
    assert "adapter" in papers[0]["title"].lower() and papers[0]["closest"][0]["entry"] == "lora"
    assert all(p["id"] != "2106.09685" for p in papers)
    added = run("add", papers[0]["id"], "--corpus", "sample", "--section", "Training Recipe")
    assert added.exit_code == 0, added.output
    assert papers[0]["id"] in (library_dir / "catalogue.yaml").read_text()
    again = json.loads(run("discover", "--corpus", "sample", "--entry", "lora", "--json").stdout)
    assert papers[0]["id"] not in [p["id"] for p in again]  # now in the catalogue
    missing = run("search", "x", "--corpus", "nope")
    assert missing.exit_code == 3 and "sample" in missing.stderr
    refused = run("corpus", "remove", "sample")  # not a terminal: hours of embedding need --yes
    assert refused.exit_code == 2 and "--yes" in refused.stderr and "24 papers" in refused.stderr
    assert [c["name"] for c in json.loads(run("corpus", "list", "--json").stdout)] == ["sample"]
    assert run("corpus", "remove", "sample", "--yes").exit_code == 0
    assert json.loads(run("corpus", "list", "--json").stdout) == []


def test_discovery_refuses_a_corpus_of_another_model(snapshot, library_dir, fake_encoder):
    from paperscope.discover import discover
    from paperscope.errors import IndexMismatchError
    from paperscope.library import Library

    corpus = Corpus("fake", encoder=fake_encoder)
    corpus.import_snapshot(snapshot, SnapshotFilter())
    corpus.build()
    library = Library.open(library_dir)
    with pytest.raises(IndexMismatchError, match="cannot be compared"):
        discover(library.index()[0], corpus.store.open(), library.catalogue.entries[:1],
                 known=library.catalogue.entries)


def test_discover_since_keeps_what_was_first_posted_since_and_makes_an_atom_feed(
        snapshot, library_dir, fake_encoder):
    import xml.etree.ElementTree as ET

    from paperscope import render
    from paperscope.discover import discover
    from paperscope.library import Library

    library = Library.open(library_dir, encoder=fake_encoder)
    library.build(full=True)
    corpus = Corpus("all", encoder=fake_encoder)
    corpus.import_snapshot(snapshot, SnapshotFilter())
    corpus.build()
    catalogue, papers = library.index()[0], corpus.collection.open()
    entries = library.catalogue.entries

    def find(since):
        return discover(catalogue, papers, entries, known=entries, k=30, since=since)

    everything, recent = find(None), find("2025-04-10")  # papers are dated by month: 2025-01 to -06
    assert recent and {d.document.meta["date"] for d in recent} <= {"2025-04", "2025-05", "2025-06"}
    assert {d.document.id for d in recent} < {d.document.id for d in everything}
    assert find("2026") == []
    feed = render.atom_feed([{"id": d.document.meta["url"], "title": d.document.title,
                              "url": d.document.meta["url"], "date": d.document.meta["date"],
                              "authors": d.document.meta["authors"], "summary": d.document.text}
                             for d in recent], title="New <near> the list", feed_id="urn:test")
    atom = "{http://www.w3.org/2005/Atom}"
    root = ET.fromstring(feed.split("\n", 1)[1])  # a standard XML parser reads it
    assert root.tag == f"{atom}feed" and root.find(f"{atom}title").text == "New <near> the list"
    first = root.findall(f"{atom}entry")[0]
    assert len(root.findall(f"{atom}entry")) == len(recent)
    assert first.find(f"{atom}id").text == recent[0].document.meta["url"]
    assert first.find(f"{atom}updated").text.endswith("-01T00:00:00Z")
    assert first.find(f"{atom}link").get("href") == recent[0].document.meta["url"]


def test_discover_refuses_a_date_that_is_not_one(library_dir):
    result = runner.invoke(__import__("paperscope.cli").cli.app,
                           ["--library", str(library_dir), "discover", "--corpus", "any", "--since", "2025-13"])
    assert result.exit_code == 2 and "is not a date" in result.stderr


def test_whole_abstract_scheme_gives_one_vector_per_paper(snapshot, fake_encoder):
    corpus = Corpus("whole", encoder=fake_encoder)
    corpus.import_snapshot(snapshot, SnapshotFilter())
    corpus.build(scheme="whole", search="approximate")
    index = corpus.store.open()
    assert index.vectors.shape == (30, fake_encoder.dimension)
    assert index.manifest.scheme == "whole"
    assert index.manifest.search == "ivf-sq4"
    assert np.allclose(np.linalg.norm(np.asarray(index.vectors), axis=1), 1, atol=1e-5)


@pytest.mark.slow
def test_kill_9_twice_during_a_corpus_build_then_build_resumes_from_its_chunks(tmp_path):
    """Each killed build keeps the chunks it committed and the next one starts from them (issue
    19: two kills in a row used to keep nothing); the last build embeds only the rest."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    from paperscope import chunks
    from tests.test_light_encoder import build_model

    model = build_model(tmp_path / "tiny-model")
    env = {**os.environ, "PAPERSCOPE_CACHE": str(tmp_path / "cache"), "PAPERSCOPE_MODEL": str(model),
           "OMP_NUM_THREADS": "1"}
    snapshot = tmp_path / "big.jsonl"
    topics = [(category, f"{title} {n}", abstract) for n, (category, title, abstract)
              in ((n, TOPICS[n % len(TOPICS)]) for n in range(20_000))]  # every text different
    snapshot.write_text("".join(snapshot_line(n, *topics[n], month="03") + "\n" for n in range(20_000)))

    def paperscope(*args):
        return [sys.executable, "-m", "paperscope", *args]

    subprocess.run(paperscope("corpus", "import", str(snapshot), "--name", "big", "--no-build"),
                   env=env, check=True, capture_output=True)
    chunk_dir = tmp_path / "cache" / "corpora" / "big" / "index" / "chunks"

    def chunked() -> int:
        """Documents in whole chunk files."""
        return sum(len(info.hashes) for info in map(chunks.read_chunk_info, chunks.chunk_files(chunk_dir))
                   if info is not None)

    def kill_after(more: int) -> int:
        before = len(list(chunks.chunk_files(chunk_dir)))
        builder = subprocess.Popen(paperscope("corpus", "build", "big", "--passages", "whole"), env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and len(list(chunks.chunk_files(chunk_dir))) < before + more:
            time.sleep(0.02)
        builder.send_signal(signal.SIGKILL)
        builder.wait()
        return chunked()

    first = kill_after(1)
    second = kill_after(2)
    assert 0 < first < second < 20_000, "each build should have been killed halfway, keeping its chunks"
    assert not (chunk_dir.parent / "manifest.json").exists()  # no half-written index
    resumed = subprocess.run(paperscope("corpus", "build", "big"), env=env, capture_output=True,
                             text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert int(re.search(r"([\d,]+) from earlier chunks", resumed.stderr).group(1).replace(",", "")) == second
    assert f"Index built: {20_000 - second:,} embedded" in resumed.stderr
    found = subprocess.run(paperscope("search", "transmission spectra", "--corpus", "big", "--json"),
                           env=env, capture_output=True, text=True)
    assert found.returncode == 0 and json.loads(found.stdout)


def test_impossible_dates_failed_imports_and_ids_beat_update_dates(snapshot, tmp_path, fake_encoder):
    from paperscope.corpora import corpora_dir

    with pytest.raises(UsageError, match="is not a date"):
        SnapshotFilter(since="2025-13")
    with pytest.raises(UsageError, match="No paper"):
        Corpus("none").import_snapshot(snapshot, SnapshotFilter(("q-bio",)))
    with pytest.raises(SnapshotError):
        Corpus("gone").import_snapshot(tmp_path / "missing.jsonl", SnapshotFilter())
    assert not (corpora_dir() / "none").exists() and not (corpora_dir() / "gone").exists()
    old = tmp_path / "old.jsonl"  # updated in 2025, first posted in 2023 (its id says so)
    old.write_text(json.dumps({"id": "2305.14314", "title": "QLoRA", "abstract": "Quantized adapters.",
                               "categories": "cs.LG", "update_date": "2025-06-04"}) + "\n")
    with pytest.raises(UsageError, match="No paper"):
        Corpus("recent").import_snapshot(old, SnapshotFilter(since="2025-01"))
    corpus = Corpus("all", encoder=fake_encoder)
    corpus.import_snapshot(snapshot, SnapshotFilter())
    assert corpus.document("2501.00000").title.startswith("Low-rank adapters")  # before any build
    from paperscope.errors import IndexMissingError

    with pytest.raises(IndexMissingError) as missing:
        corpus.collection.open()
    assert "paperscope corpus build all" in missing.value.hint


def test_discover_new_is_what_the_last_update_brought_in_every_format(tmp_path, monkeypatch, library_dir):
    import xml.etree.ElementTree as ET

    from .serve_helpers import NEW_PAPERS, PAPERS, update_corpus, write_snapshot

    monkeypatch.setenv("PAPERSCOPE_CACHE", str(tmp_path / "cache"))
    corpus = Corpus("recent")  # the packaged model, as the frozen library's index
    corpus.import_snapshot(write_snapshot(tmp_path / "papers.jsonl"), SnapshotFilter())
    corpus.build()

    def run(*args):
        return runner.invoke(__import__("paperscope.cli").cli.app,
                             ["--library", str(library_dir), "discover", "-c", "recent", *args])

    never = run("--new")
    assert never.exit_code == 2 and "never updated" in never.stderr and "--since" in never.stderr
    both = run("--new", "--since", "2025-01")
    assert both.exit_code == 2 and "not both" in both.stderr
    update_corpus("recent", None)
    new = json.loads(run("--new", "--json").stdout)
    assert {p["id"] for p in new} == {paper[0] for paper in NEW_PAPERS}
    every = json.loads(run("--json").stdout)
    assert len(every) == len(PAPERS) + len(NEW_PAPERS)
    markdown = run("--new", "--format", "markdown")
    assert markdown.exit_code == 0, markdown.output
    lines = markdown.stdout.splitlines()
    assert lines[0] == "# Papers of recent near the reading list, since 2026-11-20"
    assert len([line for line in lines if line[:1].isdigit()]) == 2 and "near `" in markdown.stdout
    assert "](https://arxiv.org/abs/2611.00006)" in markdown.stdout
    feed = ET.fromstring(run("--new", "--format", "atom").stdout.split("\n", 1)[1])
    assert len(feed.findall("{http://www.w3.org/2005/Atom}entry")) == 2
    older = ET.fromstring(run("--since", "2025-01-01", "--format", "atom").stdout.split("\n", 1)[1])
    feed_id = "{http://www.w3.org/2005/Atom}id"  # one feed, whatever day it starts from
    assert feed.find(feed_id).text == older.find(feed_id).text == "urn:paperscope:discover:recent"
    table = run("--new")
    assert table.exit_code == 0 and "2611.00006" in table.stdout and "close to" in table.stdout
    later = run("--since", "2030-01")
    assert later.exit_code == 0 and "the newest papers of recent are from 2026" in later.stderr
    assert "paperscope corpus update recent" in later.stderr
    for args, said in [(("--format", "xml"), "choose table, json, jsonl, markdown or atom"),
                       (("--format", "bibtex"), "use table, json, jsonl, markdown or atom"),
                       (("--format", "atom", "--json"), "give one of them")]:
        refused = run(*args)
        assert refused.exit_code == 2 and said in refused.stderr, refused.stderr


def test_a_paper_loosely_near_many_entries_never_passes_a_close_match_of_one():
    """Papers near several entries rise a little, not without bound: 23 entries at 0.21 once
    ranked above a paper at 0.50 for one entry (a new user's discover over the whole list)."""
    from paperscope.discover import ranking_score

    assert ranking_score([0.50]) > ranking_score([0.21] * 23)
    assert ranking_score([0.40, 0.30]) > ranking_score([0.40]) > ranking_score([0.39])
    assert ranking_score([0.40] * 3) == ranking_score([0.40] * 30)


def test_show_reads_a_corpus_paper_without_its_index(tmp_path, monkeypatch, library_dir):
    """A paper `discover` names can be read offline before it is added (only the import needed)."""
    from .serve_helpers import PAPERS, write_snapshot

    monkeypatch.setenv("PAPERSCOPE_CACHE", str(tmp_path / "cache"))
    Corpus("recent").import_snapshot(write_snapshot(tmp_path / "papers.jsonl"), SnapshotFilter())
    app = __import__("paperscope.cli").cli.app

    def show(*args):
        return runner.invoke(app, ["--library", str(library_dir), "show", *args])

    arxiv_id, _, title, abstract, _ = PAPERS[0]
    shown = show(arxiv_id, "--corpus", "recent")
    assert shown.exit_code == 0 and shown.stdout.startswith(title) and abstract in shown.stdout
    data = json.loads(show(f" {arxiv_id}", "-c", "recent", "--json").stdout)
    assert (data["id"], data["abstract"], data["section"], data["date"]) == (arxiv_id, abstract, None, "2025-01-06")
    unknown = show("2501.99999", "--corpus", "recent")
    assert unknown.exit_code == 3 and "arXiv ids" in unknown.stderr
    bibtex = show(arxiv_id, "--corpus", "recent", "--format", "bibtex")
    assert bibtex.exit_code == 2 and "catalogue entries" in bibtex.stderr
