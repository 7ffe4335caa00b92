"""Harvesting arXiv's OAI-PMH interface against recorded pages served on 127.0.0.1."""

import json
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paperscope.cli import app
from paperscope.corpora import Corpus, SnapshotFilter, StagedDocuments
from paperscope.errors import FetchError, UsageError
from paperscope.sources import open_source
from paperscope.sources.base import Deleted, PaperSource
from paperscope.sources.oaipmh import OaiPmhSource, OaiRecord, oai_set

from .arxiv_server import ArxivStub, closed_port_url

OAI = Path(__file__).resolve().parent / "fixtures" / "oaipmh"
PAGE1, PAGE2, NO_RECORDS = ((OAI / n).read_text() for n in ("page1.xml", "page2.xml", "no-records.xml"))
SINCE = date(2026, 11, 1)


@pytest.fixture
def stub():
    with ArxivStub() as server:
        yield server


def source(stub, sleeps=None, **options):
    options = {"backoff_seconds": 1, "max_retries": 2, "timeout": 2, **options}
    return OaiPmhSource(stub.url, sleep=(sleeps.append if sleeps is not None else lambda s: None), **options)


def two_pages(stub):
    stub.script = [("body", PAGE1), ("body", PAGE2)]


def test_it_is_a_registered_paper_source(monkeypatch, stub):
    monkeypatch.setenv("PAPERSCOPE_ARXIV_OAI", stub.url)
    oai = open_source("arxiv-oai")
    assert isinstance(oai, PaperSource) and oai.url == stub.url


def test_sets_are_top_level_archives():
    assert [oai_set(c) for c in ("cs.CL", "cs", "math.AG", "astro-ph.GA", "hep-th", "stat.ML")] == [
        "cs", "cs", "math", "physics:astro-ph", "physics:hep-th", "stat"]


def test_two_pages_joined_by_a_resumption_token(stub):
    two_pages(stub)
    items = list(source(stub).changed_since(SINCE, until=date(2026, 11, 20), categories=["cs"]))
    assert [r["verb"] for r in stub.requests] == [["ListRecords"], ["ListRecords"]]
    first, second = stub.requests
    assert (first["metadataPrefix"], first["set"], first["from"], first["until"]) == (
        ["arXiv"], ["cs"], ["2026-11-01"], ["2026-11-20"])
    assert second == {"verb": ["ListRecords"], "resumptionToken": ["6960524|1001"]}
    keys = [i.key if isinstance(i, Deleted) else i.arxiv_id for i in items]
    assert keys == ["2611.00101", "2611.00102", "2106.09685", "2610.00999", "2611.00233"]


def test_records_are_parsed_from_the_arxiv_format(stub):
    two_pages(stub)
    items = {getattr(i, "arxiv_id", None) or i.key: i for i in source(stub).changed_since(SINCE)}
    new = items["2611.00101"]
    assert isinstance(new, OaiRecord)
    assert new.title == "Sparse Adapters for Multilingual Machine Translation"
    assert new.abstract.startswith("We train sparse adapters that route") and "\n" not in new.abstract
    assert new.authors == ("Maja Lindqvist", "Chinedu A. Okafor")
    assert (new.categories, new.primary_category, new.year) == (("cs.CL", "cs.LG"), "cs.CL", 2026)
    assert (new.created, new.updated, new.source) == ("2026-11-02", "", "arxiv-oai")
    changed = items["2106.09685"]
    assert (changed.created, changed.updated, changed.year) == ("2021-06-17", "2026-11-04", 2021)
    assert changed.abstract.endswith("(revised: results on more models).")
    assert items["2611.00233"].authors[1] == "Kenji Tanaka Jr" and items["2611.00233"].doi
    assert items["2610.00999"] == Deleted("2610.00999", "2026-11-06")


def test_a_category_is_harvested_from_its_archive_and_filtered_here(stub):
    two_pages(stub)
    items = list(source(stub).changed_since(SINCE, categories=["cs.CL"]))
    assert stub.requests[0]["set"] == ["cs"]
    kept = [i.key if isinstance(i, Deleted) else i.arxiv_id for i in items]
    assert "2611.00102" not in kept  # cs.CV: not in cs.CL
    assert kept == ["2611.00101", "2106.09685", "2610.00999", "2611.00233"]


def test_two_archives_are_two_sets_and_a_cross_list_comes_once(stub):
    stub.script = [("body", PAGE1), ("body", PAGE2), ("body", PAGE1.replace("6960524|1001", ""))]
    items = list(source(stub).changed_since(SINCE, categories=["cs.CL", "stat.ML", "cs.CV"]))
    assert [r.get("set") for r in stub.requests] == [["cs"], None, ["stat"]]
    assert len(items) == 5


def test_no_records_match_is_an_empty_harvest(stub):
    stub.script = [("body", NO_RECORDS)]
    assert list(source(stub).changed_since(SINCE)) == [] and len(stub.requests) == 1


def test_requests_keep_the_politeness_interval_without_sleeping(stub):
    two_pages(stub)
    sleeps: list[float] = []
    list(source(stub, sleeps, delay_seconds=3.0).changed_since(SINCE))
    assert len(sleeps) == 1 and 2.5 < sleeps[0] <= 3.0


def test_503_with_retry_after_is_honoured_and_reported(stub):
    stub.script = [("body", PAGE1), ("status", 503, {"Retry-After": "20"}), ("body", PAGE2)]
    sleeps: list[float] = []
    retries: list[tuple[str, float]] = []
    items = list(source(stub, sleeps, delay_seconds=0, on_retry=lambda why, s: retries.append((why, s)))
                 .changed_since(SINCE))
    assert len(items) == 5
    assert retries == [("HTTP 503 from arXiv", 20.0)] and 20.0 in sleeps
    assert stub.requests[1] == stub.requests[2]  # the same page asked again


def test_a_503_that_never_ends_is_a_typed_error(stub):
    stub.script = [("status", 503, {"Retry-After": "5"})] * 5
    with pytest.raises(FetchError, match=r"HTTP 503 from arXiv \(after 3 tries\)"):
        list(source(stub, delay_seconds=0).changed_since(SINCE))


def test_a_malformed_page_is_retried_then_a_typed_error(stub):
    stub.script = [("body", PAGE1[:700])] * 3
    with pytest.raises(FetchError, match="cannot be read"):
        list(source(stub, delay_seconds=0).changed_since(SINCE))
    assert len(stub.requests) == 3


def test_a_malformed_page_then_a_good_one(stub):
    stub.script = [("body", "<html>busy</html>"), ("body", PAGE1.replace("6960524|1001", ""))]
    assert len(list(source(stub, delay_seconds=0).changed_since(SINCE))) == 2


def test_a_doctype_is_refused(stub):
    evil = PAGE1.replace('<?xml version="1.0" encoding="UTF-8"?>',
                         '<?xml version="1.0"?><!DOCTYPE OAI-PMH [<!ENTITY a "aaaa">]>')
    stub.script = [("body", evil)] * 3
    with pytest.raises(FetchError, match="not an OAI-PMH answer"):
        list(source(stub, delay_seconds=0).changed_since(SINCE))


def test_a_page_that_never_ends_is_cut_at_the_size_cap(stub):
    stub.script = [("endless",)] * 3
    with pytest.raises(FetchError, match="larger than 100,000 bytes"):
        list(source(stub, delay_seconds=0, max_bytes=100_000).changed_since(SINCE))


def test_a_list_that_never_ends_is_stopped(stub):
    stub.default = ("body", PAGE1)  # the same token again and again
    with pytest.raises(FetchError, match="same resumptionToken twice"):
        list(source(stub, delay_seconds=0).changed_since(SINCE))
    assert len(stub.requests) == 2


def test_pages_are_capped(stub):
    stub.default = ("body", PAGE1)
    stub.script = [("body", PAGE1.replace("6960524|1001", f"t{i}")) for i in range(5)]
    with pytest.raises(FetchError, match="more than 3 pages"):
        list(source(stub, delay_seconds=0, max_pages=3).changed_since(SINCE))


def test_an_oai_error_is_a_typed_error(stub):
    stub.script = [("body", NO_RECORDS.replace("noRecordsMatch", "badArgument"))]
    with pytest.raises(FetchError, match="badArgument"):
        list(source(stub, delay_seconds=0).changed_since(SINCE))
    assert len(stub.requests) == 1


def test_an_unreachable_server_is_a_typed_error_at_once():
    oai = OaiPmhSource(closed_port_url(), delay_seconds=0, sleep=lambda s: None)
    with pytest.raises(FetchError, match="cannot be reached"):
        list(oai.changed_since(SINCE))


def test_fetch_by_id_asks_get_record(stub):
    page = PAGE1.replace("<ListRecords>", "<GetRecord>").replace("</ListRecords>", "</GetRecord>")
    stub.script = [("body", page), ("body", NO_RECORDS.replace("noRecordsMatch", "idDoesNotExist"))]
    result = source(stub, delay_seconds=0).fetch(["2611.00101", "2611.99999"])
    assert list(result.records) == ["2611.00101"] and result.failures == {}
    assert stub.requests[0]["identifier"] == ["oai:arXiv.org:2611.00101"]


# --- keeping a corpus up to date -------------------------------------------------------------

def snapshot_record(arxiv_id, title, abstract, created, categories="cs.CL"):
    return json.dumps({"id": arxiv_id, "title": title, "abstract": abstract, "categories": categories,
                       "authors": "A. Author", "authors_parsed": [["Author", "A.", ""]],
                       "versions": [{"version": "v1", "created": created}]})


@pytest.fixture
def snapshot(tmp_path, monkeypatch):
    """A snapshot of three cs.CL papers: LoRA (changed in page 2), a paper arXiv deletes in
    page 2, and one that no harvest touches."""
    monkeypatch.setenv("PAPERSCOPE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "snapshot.jsonl"
    path.write_text("\n".join([
        snapshot_record("2106.09685", "LoRA: Low-Rank Adaptation of Large Language Models",
                        "We propose Low-Rank Adaptation, or LoRA.", "Thu, 17 Jun 2021 17:37:18 GMT"),
        snapshot_record("2610.00999", "A paper withdrawn later", "Its abstract, soon gone.",
                        "Mon, 5 Oct 2026 10:00:00 GMT"),
        snapshot_record("2610.00500", "Tokenizers for code-switched speech transcripts",
                        "We compare tokenizers on code-switched transcripts.", "Tue, 20 Oct 2026 08:00:00 GMT"),
    ]) + "\n")
    return path


@pytest.fixture
def corpus(snapshot, fake_encoder):
    """The snapshot imported as a cs.CL corpus and built."""
    made = Corpus("cl", encoder=fake_encoder)
    made.import_snapshot(snapshot, SnapshotFilter(("cs.CL",), since="2021"))
    made.build()
    return made


def ids_in_order(corpus):
    documents = StagedDocuments(corpus.staged_path)
    try:
        return [documents[i].id for i in range(len(documents))]
    finally:
        documents.close()


AFTER = ["2106.09685", "2610.00500", "2611.00101", "2611.00233"]


def test_an_update_applies_new_changed_and_deleted_records_and_embeds_only_those(stub, corpus):
    two_pages(stub)
    report = corpus.update(source(stub, delay_seconds=0), today=date(2026, 11, 20))
    assert stub.requests[0]["from"] == ["2026-10-20"] and stub.requests[0]["set"] == ["cs"]
    assert (report.added, report.changed, report.deleted, report.unchanged, report.outside) == (2, 1, 1, 0, 1)
    assert ids_in_order(corpus) == AFTER  # changed in place, deleted gap closed, new appended
    assert corpus.document("2106.09685").text.endswith("(revised: results on more models).")
    assert corpus.document("2611.00233").meta["date"] == "2026-11-05"
    assert sorted(report.build.embedded) == ["2106.09685", "2611.00101", "2611.00233"]
    assert report.build.reused == 1
    about = corpus.about()
    assert (about["harvested"], about["documents"]) == ("2026-11-20", 4)
    assert [h.document.id for h in corpus.collection.search("sparse adapters translation", k=1).hits] == [
        "2611.00101"]


def test_an_update_run_twice_is_a_no_op(stub, corpus):
    two_pages(stub)
    corpus.update(source(stub, delay_seconds=0), today=date(2026, 11, 20))
    two_pages(stub)  # the same days asked again: the records come back unchanged
    again = corpus.update(source(stub, delay_seconds=0), today=date(2026, 11, 20))
    assert stub.requests[2]["from"] == ["2026-11-20"]
    assert (again.touched, again.unchanged) == (0, 3)
    assert again.build.embedded == [] and not again.build.written
    assert ids_in_order(corpus) == AFTER


def test_an_update_that_finds_nothing_asks_once_and_builds_nothing(stub, corpus):
    stub.script = [("body", NO_RECORDS)]
    report = corpus.update(source(stub, delay_seconds=0), today=date(2026, 11, 21))
    assert len(stub.requests) == 1 and report.harvested == 0 and not report.build.written


def test_an_update_killed_half_way_finishes_when_run_again(stub, corpus):
    stub.script = [("body", PAGE1)] + [("status", 503, {"Retry-After": "1"})] * 3
    batches = []
    with pytest.raises(FetchError):
        corpus.update(source(stub, delay_seconds=0), today=date(2026, 11, 20), batch=1,
                      on_batch=lambda r: batches.append(r.added))
    about = corpus.about()  # page 1 is in, the day harvested is not recorded
    assert batches and "harvested" not in about and about["harvesting"] == "2026-10-20"
    assert "2611.00101" in ids_in_order(corpus)
    two_pages(stub)
    report = corpus.update(source(stub, delay_seconds=0), today=date(2026, 11, 20))
    assert stub.requests[-2]["from"] == ["2026-10-20"]  # the same days again
    assert (report.added, report.changed, report.deleted, report.unchanged) == (1, 1, 1, 1)
    assert ids_in_order(corpus) == AFTER and corpus.about()["harvested"] == "2026-11-20"
    assert "harvesting" not in corpus.about()
    assert sorted(report.build.embedded) == ["2106.09685", "2611.00101", "2611.00233"]


def test_a_paper_that_leaves_the_selection_is_removed(stub, corpus):
    moved = PAGE2.replace("<categories>cs.CL cs.AI cs.LG</categories>", "<categories>cs.LG</categories>")
    stub.script = [("body", PAGE1), ("body", moved)]
    report = corpus.update(source(stub, delay_seconds=0), today=date(2026, 11, 20))
    assert "2106.09685" not in ids_in_order(corpus) and report.deleted == 2


def test_the_cli_updates_a_corpus_and_says_what_changed(stub, snapshot, library_dir, monkeypatch):
    monkeypatch.setenv("PAPERSCOPE_ARXIV_OAI", stub.url)

    def run(*args):
        return CliRunner().invoke(app, ["--library", str(library_dir), *args])

    assert run("corpus", "import", str(snapshot), "--name", "cl", "--category", "cs.CL").exit_code == 0
    stub.script = [("body", PAGE2.replace("6960524|1001", ""))]  # one page: no politeness wait
    result = run("corpus", "update", "cl")
    assert result.exit_code == 0, result.output
    assert "1 new, 1 changed, 1 removed, 0 unchanged" in result.output
    assert "Index built: 2 embedded, 1 reused" in result.output
    stub.script = [("body", NO_RECORDS)]
    again = run("corpus", "update", "cl")
    assert again.exit_code == 0 and "Index already up to date (3 papers)" in again.output
    assert stub.requests[-1]["from"] == [datetime.now(timezone.utc).date().isoformat()]  # the last harvest's day
    stub.script = [("body", NO_RECORDS.replace("noRecordsMatch", "badArgument"))]
    failed = run("corpus", "update", "cl")
    assert failed.exit_code == 8 and "badArgument" in failed.output and "Traceback" not in failed.output
    assert run("corpus", "update", "cl", "--since", "2026-13-01").exit_code == 2


# --- a corpus started from arXiv, with no snapshot -------------------------------------------

NEW_CL = SnapshotFilter(("cs.CL",), since="2026-11-01")


def test_a_corpus_starts_from_arxiv_then_updates(stub, tmp_path, monkeypatch, fake_encoder):
    monkeypatch.setenv("PAPERSCOPE_CACHE", str(tmp_path / "cache"))
    two_pages(stub)
    corpus = Corpus("new", encoder=fake_encoder)
    report = corpus.import_arxiv(NEW_CL, source(stub, delay_seconds=0), today=date(2026, 11, 20))
    assert stub.requests[0]["from"] == ["2026-11-01"] and stub.requests[0]["set"] == ["cs"]
    assert ids_in_order(corpus) == ["2611.00101", "2611.00233"]  # LoRA was first posted in 2021
    assert (report.added, report.outside) == (2, 2)
    about = corpus.about()
    assert (about["harvested"], about["documents"], about["filter"]["since"]) == ("2026-11-20", 2, "2026-11-01")
    assert len(corpus.build().embedded) == 2
    stub.script = [("body", NO_RECORDS)]
    again = corpus.update(source(stub, delay_seconds=0), today=date(2026, 11, 21))
    assert stub.requests[-1]["from"] == ["2026-11-20"] and not again.build.written


def test_an_import_from_arxiv_cut_short_is_finished_by_an_update(stub, tmp_path, monkeypatch, fake_encoder):
    monkeypatch.setenv("PAPERSCOPE_CACHE", str(tmp_path / "cache"))
    stub.script = [("body", PAGE1)] + [("status", 503)] * 3
    corpus = Corpus("new", encoder=fake_encoder)
    with pytest.raises(FetchError) as cut:
        corpus.import_arxiv(NEW_CL, source(stub, delay_seconds=0), today=date(2026, 11, 20))
    assert "paperscope corpus update new" in cut.value.hint
    assert ids_in_order(corpus) == ["2611.00101"]
    two_pages(stub)
    corpus.update(source(stub, delay_seconds=0), today=date(2026, 11, 20))
    assert stub.requests[-2]["from"] == ["2026-11-01"]
    assert ids_in_order(corpus) == ["2611.00101", "2611.00233"]


def test_an_import_from_arxiv_that_keeps_nothing_leaves_no_corpus(stub, tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERSCOPE_CACHE", str(tmp_path / "cache"))
    stub.script = [("body", NO_RECORDS)]
    corpus = Corpus("new")
    with pytest.raises(UsageError, match="No paper harvested"):
        corpus.import_arxiv(NEW_CL, source(stub, delay_seconds=0))
    assert not corpus.directory.exists()
    with pytest.raises(UsageError, match="needs --since"):
        corpus.import_arxiv(SnapshotFilter(("cs.CL",)), source(stub, delay_seconds=0))


def test_the_cli_imports_from_arxiv(stub, library_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERSCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PAPERSCOPE_ARXIV_OAI", stub.url)

    def run(*args):
        return CliRunner().invoke(app, ["--library", str(library_dir), *args])

    stub.script = [("body", PAGE2.replace("6960524|1001", ""))]
    result = run("corpus", "import", "--from-arxiv", "--category", "cs.CL", "--since", "2026-11-01",
                 "--name", "fresh")
    assert result.exit_code == 0, result.output
    assert "Imported 1 paper into corpus 'fresh'" in result.output and "Index built" in result.output
    found = run("search", "court rulings summaries", "--corpus", "fresh", "--json")
    assert found.exit_code == 0 and "2611.00233" in found.output
    assert run("corpus", "import", "--name", "x", "--category", "cs.CL").exit_code == 2
    assert run("corpus", "import", "--from-arxiv", "--name", "x", "--category", "cs.CL").exit_code == 2
    assert run("corpus", "import", "--from-arxiv", "--name", "fresh", "--since", "2026-11").exit_code == 2


def test_an_update_that_finds_nothing_reads_no_document_once_an_update_built_the_index(
        stub, corpus, monkeypatch):
    two_pages(stub)
    corpus.update(source(stub, delay_seconds=0), today=date(2026, 11, 20))
    builds = []
    real_build = corpus.collection.build
    monkeypatch.setattr(corpus.collection, "build", lambda **o: builds.append(o) or real_build(**o))
    stub.script = [("body", NO_RECORDS)]
    quiet = corpus.update(source(stub, delay_seconds=0), today=date(2026, 11, 21))
    assert builds == [] and not quiet.build.written and quiet.build.total == 4
    corpus.build(full=True)  # another build since: the next update checks the documents again
    stub.script = [("body", NO_RECORDS)]
    corpus.update(source(stub, delay_seconds=0), today=date(2026, 11, 22))
    assert len(builds) == 2  # the full build above, then the update's check
