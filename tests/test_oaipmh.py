"""Harvesting arXiv's OAI-PMH interface against recorded pages served on 127.0.0.1."""

from datetime import date
from pathlib import Path

import pytest

from paperscope.errors import FetchError
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
