"""Papers by DOI: the OpenAlex and Crossref client against a local server with recorded JSON
works and faults, and DOIs in the catalogue, `add` and `ingest`."""

import json
import time

import pytest

from paperscope.sources import SOURCES, fetch_ids, open_source
from paperscope.sources.doi import DoiSource, abstract_from_inverted_index, strip_jats
from paperscope.sources.ids import parse_doi

from .arxiv_server import closed_port_url
from .conftest import SMALL_CATALOGUE_PAGES
from .doi_server import DoiStub

DAPT = "10.18653/v1/2020.acl-main.740"  # OpenAlex has the abstract
PARROTS = "10.1145/3442188.3445922"  # OpenAlex has no abstract, Crossref has (JATS)
PANEL = "10.1145/3458817.3476209"  # neither has an abstract
UNKNOWN = "10.9999/nothing.here"  # neither has a record


@pytest.fixture
def stub():
    with DoiStub() as server:
        yield server


def source(stub, sleeps=None, **options):
    options = {"delay_seconds": 0, "backoff_seconds": 1, "max_retries": 2, "timeout": 2, **options}
    return DoiSource(openalex_url=stub.url("openalex"), crossref_url=stub.url("crossref"),
                     sleep=(sleeps.append if sleeps is not None else lambda s: None), **options)


def test_a_doi_with_an_abstract_in_openalex_is_read_from_openalex_alone(stub):
    result = source(stub).fetch([DAPT])
    assert result.failures == {} and result.unreachable is None
    record = result.records[DAPT]
    assert record.key == f"doi:{DAPT}" and record.doi == DAPT
    assert record.title == "Don\u2019t Stop Pretraining: Adapt Language Models to Domains and Tasks"
    assert record.authors[0] == "Suchin Gururangan" and record.authors[-1] == "Noah A. Smith"
    assert len(record.authors) == 7 and record.year == 2020
    assert record.journal_ref == ("Proceedings of the 58th Annual Meeting of the Association for "
                                  "Computational Linguistics")
    assert record.abstract.startswith("Language models pretrained on text from a wide variety")
    assert record.abstract.endswith("offers large gains in task performance.")
    assert "(domain-adaptive pretraining) leads to performance gains" in record.abstract
    assert record.source == "openalex" and stub.asked("crossref") == []


def test_openalex_without_an_abstract_falls_back_to_crossref(stub):
    record = source(stub).fetch([PARROTS]).records[PARROTS]
    assert record.source == "openalex+crossref"
    assert record.title == "On the Dangers of Stochastic Parrots" and record.year == 2021
    assert record.authors == ("Emily M. Bender", "Timnit Gebru", "Angelina McMillan-Major",
                              "Shmargaret Shmitchell")
    assert record.journal_ref == ("Proceedings of the 2021 ACM Conference on Fairness, "
                                  "Accountability, and Transparency")
    assert record.abstract.startswith("The past 3 years of work in NLP")  # no "Abstract" heading
    assert "<" not in record.abstract and "jats" not in record.abstract
    assert stub.asked("openalex") == [PARROTS] and stub.asked("crossref") == [PARROTS]


def test_a_doi_openalex_does_not_know_is_read_from_crossref(stub):
    stub.script["openalex"] = [("status", 404)]
    record = source(stub).fetch([PARROTS]).records[PARROTS]
    assert record.source == "crossref" and record.title == "On the Dangers of Stochastic Parrots"
    assert record.journal_ref.startswith("Proceedings of the 2021 ACM Conference")


def test_a_doi_without_an_abstract_anywhere_is_a_failure_for_its_id(stub):
    result = source(stub).fetch([PANEL, DAPT])
    assert result.failures == {PANEL: "no record with an abstract (OpenAlex: no abstract; "
                                      "Crossref: no abstract)"}
    assert list(result.records) == [DAPT]


def test_a_doi_neither_knows_is_a_404_failure_without_retries(stub):
    sleeps = []
    result = source(stub, sleeps).fetch([UNKNOWN])
    assert result.failures == {UNKNOWN: "no record of this DOI in OpenAlex or Crossref"}
    assert sleeps == [] and len(stub.requests) == 2


def test_a_redirect_loop_is_a_typed_failure_and_crossref_is_asked(stub):
    stub.script["openalex"] = [("redirect",)] * 20
    result = source(stub, max_redirects=3).fetch([DAPT])
    assert result.failures == {DAPT: "no record with an abstract (OpenAlex: OpenAlex redirected "
                                     "more than 3 times; Crossref: no record)"}
    assert len(stub.asked("openalex")) == 4


def test_one_redirect_is_followed(stub):
    stub.script["openalex"] = [("redirect",)]
    assert DAPT in source(stub).fetch([DAPT]).records


def test_an_oversized_body_is_refused(stub):
    stub.script["openalex"] = [("big", 10_000)]
    stub.script["crossref"] = [("big", 10_000)]
    result = source(stub, max_bytes=4096).fetch([PARROTS])
    assert result.failures == {PARROTS: "no record with an abstract (OpenAlex: OpenAlex's answer is "
                                        "larger than 4,096 bytes; Crossref: Crossref's answer is "
                                        "larger than 4,096 bytes)"}


def test_a_slow_server_stops_at_the_whole_request_deadline(stub):
    stub.script["openalex"] = [("drip", 0.05)]
    stub.script["crossref"] = [("drip", 0.05)]
    started = time.monotonic()
    result = source(stub, max_retries=0, deadline=1).fetch([PARROTS])
    assert time.monotonic() - started < 4
    assert result.failures == {PARROTS: "no record with an abstract (OpenAlex: OpenAlex did not "
                                        "answer within 1 s (after 1 tries); Crossref: Crossref did "
                                        "not answer within 1 s (after 1 tries))"}


def test_malformed_json_is_retried_then_reported(stub):
    sleeps = []
    stub.script["openalex"] = [("body", b'{"title": "cut sh')] * 3
    stub.script["crossref"] = [("body", b"<html>busy</html>")] * 3
    result = source(stub, sleeps).fetch([DAPT])
    assert result.failures == {DAPT: "no record with an abstract (OpenAlex: OpenAlex sent an answer "
                                     "that is not JSON (after 3 tries); Crossref: Crossref sent an "
                                     "answer that is not JSON (after 3 tries))"}
    assert sleeps == [1, 2, 1, 2]


def test_json_of_the_wrong_shape_is_a_failure_not_a_traceback(stub):
    stub.script["openalex"] = [("body", json.dumps(
        {"title": ["not text"], "authorships": "none", "publication_year": "soon",
         "abstract_inverted_index": {"word": ["x"]}}).encode())]
    stub.script["crossref"] = [("body", b'[1, 2, 3]')]
    result = source(stub).fetch([DAPT])
    assert result.failures == {DAPT: "no record with an abstract (OpenAlex: no abstract; Crossref: "
                                     "Crossref sent an answer that is not a work)"}


def test_a_503_with_retry_after_is_retried_and_reported(stub):
    sleeps, retries = [], []
    stub.script["openalex"] = [("status", 503, {"Retry-After": "7"})]
    result = source(stub, sleeps, on_retry=lambda *args: retries.append(args)).fetch([DAPT])
    assert DAPT in result.records
    assert retries == [("HTTP 503 from OpenAlex", 7)] and sleeps == [7]


def test_requests_name_the_client_and_the_contact_address(stub):
    source(stub, mailto="someone@example.org").fetch([PARROTS])
    for _, _, query, agent in stub.requests:
        assert query["mailto"] == ["someone@example.org"]
        assert agent.startswith("paperscope/") and "mailto:someone@example.org" in agent
    assert "abstract_inverted_index" in stub.requests[0][2]["select"][0]


def test_requests_to_one_service_are_spaced(stub):
    sleeps = []
    source(stub, sleeps, delay_seconds=5).fetch([DAPT, PARROTS])
    assert len(sleeps) == 1 and 4 < sleeps[0] <= 5  # the second OpenAlex request; Crossref's first


def test_the_endpoints_come_from_the_environment(stub, monkeypatch):
    monkeypatch.setenv("PAPERSCOPE_OPENALEX_URL", stub.url("openalex"))
    monkeypatch.setenv("PAPERSCOPE_CROSSREF_URL", stub.url("crossref"))
    assert DAPT in DoiSource(delay_seconds=0).fetch([DAPT]).records


def test_unreachable_services_fail_fast_and_nothing_more_is_asked():
    sleeps = []
    doi = DoiSource(openalex_url=closed_port_url(), crossref_url=closed_port_url(), delay_seconds=0,
                    sleep=sleeps.append)
    started = time.monotonic()
    result = doi.fetch([DAPT, PARROTS])
    assert time.monotonic() - started < 3 and sleeps == []
    assert result.unreachable == ("OpenAlex cannot be reached (connection refused); "
                                  "Crossref cannot be reached (connection refused)")
    assert result.failures[PARROTS] == result.unreachable


def test_the_doi_source_is_registered_and_fetch_ids_keys_records_by_doi(stub):
    assert "doi" in SOURCES and isinstance(open_source("doi"), DoiSource)
    result = fetch_ids([f"doi:{DAPT}"], source(stub))
    assert list(result.records) == [f"doi:{DAPT}"]


@pytest.mark.parametrize("text", [DAPT, f"doi:{DAPT}", f"DOI: {DAPT}", f"https://doi.org/{DAPT}",
                                  f"http://dx.doi.org/{DAPT}", "https://doi.org/10.18653%2Fv1%2F2020.acl-main.740",
                                  DAPT.upper()])
def test_dois_are_recognised_in_the_ways_people_write_them(text):
    assert parse_doi(text) == DAPT


@pytest.mark.parametrize("text", ["2106.09685", "10.1/x", "https://example.org/10.1234/x",
                                  "10.1234/", "10.1234/a b", "doi:", ""])
def test_other_text_is_not_a_doi(text):
    assert parse_doi(text) is None


def test_an_inverted_index_is_put_back_in_order():
    assert abstract_from_inverted_index({"b": [1, 3], "a": [0], "c": [2]}) == "a b c b"
    assert abstract_from_inverted_index(None) == ""
    assert abstract_from_inverted_index({"a": [True]}) == ""
    assert abstract_from_inverted_index({"a": [10**9]}) == ""


def test_jats_is_stripped_without_gluing_words():
    jats = ("<jats:sec><jats:title>Abstract</jats:title><jats:p>We study <jats:italic>H</jats:italic>"
            "<jats:sub>2</jats:sub> &amp; more.</jats:p><jats:p>Second.</jats:p></jats:sec>")
    assert strip_jats(jats) == "We study H2 & more. Second."


# -- DOIs in the catalogue, `add`, `ingest`, `show` and `cite` ------------------------------------

@pytest.fixture
def doi_env(stub, monkeypatch):
    """The DOI source, as the library opens it, asks the local stub and never waits."""
    monkeypatch.setenv("PAPERSCOPE_OPENALEX_URL", stub.url("openalex"))
    monkeypatch.setenv("PAPERSCOPE_CROSSREF_URL", stub.url("crossref"))
    monkeypatch.setattr(DoiSource, "__init__", _quick_init(DoiSource.__init__))
    return stub


def _quick_init(init):
    def quick(self, *args, **options):
        init(self, *args, **{"delay_seconds": 0, "backoff_seconds": 0, **options})
    return quick


def _cli(library, *args):
    from typer.testing import CliRunner

    from paperscope.cli import app

    return CliRunner().invoke(app, ["--library", str(library), *args])


def test_add_a_doi_link_writes_a_doi_entry_and_caches_its_record(small_library, doi_env):
    from paperscope import Library
    from paperscope.index import IndexStore

    result = Library.open(small_library).add(f"https://doi.org/{DAPT}", section="Training Recipe",
                                             build=False)
    entry = result.entry
    assert entry.doi == DAPT and entry.arxiv_id is None and entry.kind == "paper"
    assert entry.url == f"https://doi.org/{DAPT}" and entry.id == "don-t-stop-pretraining"
    text = (small_library / "catalogue.yaml").read_text()
    assert f'doi: "{DAPT}"' in text and "# a small catalogue for tests" in text
    records = IndexStore(small_library / "index").read_records()
    assert records[f"doi:{DAPT}"].abstract.startswith("Language models pretrained")
    again = Library.open(small_library).add(DAPT, build=False)
    assert again.already and again.entry.id == entry.id


def test_cli_add_show_and_cite_a_doi(small_library, doi_env):
    result = _cli(small_library, "add", DAPT, "--section", "Training Recipe", "--no-build")
    assert result.exit_code == 0, result.stderr
    shown = _cli(small_library, "show", f"doi:{DAPT}", "--json")
    assert shown.exit_code == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["doi"] == DAPT and data["abstract"].startswith("Language models pretrained")
    assert data["authors"][0] == "Suchin Gururangan" and data["year"] == 2020
    assert data["venue"].startswith("Proceedings of the 58th Annual Meeting")
    cited = _cli(small_library, "cite", "don-t-stop-pretraining")
    assert cited.exit_code == 0, cited.stderr
    assert f"doi = {{{DAPT}}}" in cited.stdout and "author = {Suchin Gururangan and" in cited.stdout


def test_adding_a_doi_nobody_knows_changes_nothing(small_library, doi_env):
    before = (small_library / "catalogue.yaml").read_text()
    result = _cli(small_library, "add", UNKNOWN, "--section", "Training Recipe", "--no-build")
    assert result.exit_code == 8 and "Traceback" not in result.stderr
    assert f"DOI {UNKNOWN}: no record of this DOI in OpenAlex or Crossref" in result.stderr
    assert (small_library / "catalogue.yaml").read_text() == before


def test_a_doi_without_an_abstract_is_added_with_a_summary(small_library, doi_env):
    result = _cli(small_library, "add", PANEL, "--section", "Training Recipe", "--no-build")
    assert result.exit_code == 8 and "--title and --summary" in result.stderr
    result = _cli(small_library, "add", PANEL, "--section", "Training Recipe", "--no-build",
                  "--title", "A panel", "--summary", "Sustainability in teaching computing.")
    assert result.exit_code == 0, result.stderr
    assert f'doi: "{PANEL}"' in (small_library / "catalogue.yaml").read_text()


def test_ingest_fetches_missing_doi_records_then_nothing(small_library, doi_env, monkeypatch):
    from paperscope import Library
    from paperscope.index import IndexStore
    from paperscope.sources.arxiv_api import ArxivApiSource

    from .arxiv_server import ArxivStub

    text = (small_library / "catalogue.yaml").read_text() + f"""\
    - id: parrots
      title: On the Dangers of Stochastic Parrots
      url: https://doi.org/{PARROTS}
      doi: "{PARROTS.upper()}"
"""
    (small_library / "catalogue.yaml").write_text(text)
    library = Library.open(small_library)
    assert library.entry("parrots").doi == PARROTS and library.entry(f"https://doi.org/{PARROTS}").id == "parrots"
    with ArxivStub() as arxiv:
        report = library.ingest(source=ArxivApiSource(api_url=arxiv.url, delay_seconds=0))
    assert report.failures == {} and sorted(report.fetched) == ["2106.09685", f"doi:{PARROTS}",
                                                                *SMALL_CATALOGUE_PAGES]
    records = IndexStore(small_library / "index").read_records()
    assert records[f"doi:{PARROTS}"].abstract.startswith("The past 3 years")
    asked = len(doi_env.requests)
    report = Library.open(small_library).ingest(source=ArxivApiSource(api_url=closed_port_url()))
    assert report.fetched == [] and report.cached == 4 and len(doi_env.requests) == asked
    documents, missing = Library.open(small_library).documents()
    parrots = next(d for d in documents if d.id == "parrots")
    assert parrots.text.startswith("The past 3 years") and missing == []


@pytest.mark.parametrize("field, message", [
    ('doi: "2106.09685"', "doi '2106.09685' of 'x' is not a DOI"),
    ("doi: [10.1234/x]", "`doi` must be"),
])
def test_a_catalogue_doi_is_validated(field, message):
    from paperscope.catalogue import parse_catalogue
    from paperscope.errors import CatalogueError

    with pytest.raises(CatalogueError, match=message.replace("[", "\\[")):
        parse_catalogue(f"- section: S\n  entries:\n    - id: x\n      title: X\n"
                        f"      url: https://example.org/x\n      {field}\n")


def test_two_entries_with_one_doi_are_refused():
    from paperscope.catalogue import parse_catalogue
    from paperscope.errors import CatalogueError

    entry = "    - id: {}\n      title: X\n      url: https://example.org/x\n      doi: {}\n"
    with pytest.raises(CatalogueError, match=f"DOI {DAPT} is already the entry 'a'"):
        parse_catalogue("- section: S\n  entries:\n" + entry.format("a", DAPT)
                        + entry.format("b", f"https://doi.org/{DAPT.upper()}"))


def test_cli_reports_each_doi_retry_on_stderr(small_library, doi_env):
    doi_env.script["openalex"] = [("status", 503)]
    result = _cli(small_library, "add", DAPT, "--section", "Training Recipe", "--no-build")
    assert result.exit_code == 0, result.stderr
    assert "DOI: HTTP 503 from OpenAlex; trying again in 0 s" in result.stderr


def test_cli_add_with_unreachable_services_fails_fast_and_takes_a_summary(small_library, monkeypatch):
    monkeypatch.setenv("PAPERSCOPE_OPENALEX_URL", closed_port_url())
    monkeypatch.setenv("PAPERSCOPE_CROSSREF_URL", closed_port_url())
    before = (small_library / "catalogue.yaml").read_text()
    started = time.monotonic()
    result = _cli(small_library, "add", DAPT, "--section", "Training Recipe", "--no-build")
    assert time.monotonic() - started < 5 and result.exit_code == 8
    assert "OpenAlex cannot be reached" in result.stderr and "Traceback" not in result.stderr
    assert "--title and --summary" in result.stderr and "--from-snapshot" not in result.stderr
    assert (small_library / "catalogue.yaml").read_text() == before
    result = _cli(small_library, "add", DAPT, "--section", "Training Recipe", "--no-build",
                  "--title", "DAPT", "--summary", "Pretraining again on the domain helps.")
    assert result.exit_code == 0, result.stderr
    assert f'doi: "{DAPT}"' in (small_library / "catalogue.yaml").read_text()


def test_ingest_keeps_what_it_got_when_a_doi_fails(small_library, doi_env):
    from paperscope import Library
    from paperscope.index import IndexStore
    from paperscope.sources.arxiv_api import ArxivApiSource

    from .arxiv_server import ArxivStub

    text = (small_library / "catalogue.yaml").read_text() + "".join(f"""\
    - id: {name}
      title: {name}
      url: https://doi.org/{doi}
      doi: "{doi}"
""" for name, doi in (("panel", PANEL), ("parrots", PARROTS), ("unknown", UNKNOWN)))
    (small_library / "catalogue.yaml").write_text(text)
    doi_env.script["openalex"] = [("status", 503)] * 4  # all four tries for PANEL: then Crossref
    with ArxivStub() as arxiv:
        report = Library.open(small_library).ingest(source=ArxivApiSource(api_url=arxiv.url, delay_seconds=0))
    assert report.failures == {
        f"doi:{PANEL}": "no record with an abstract (OpenAlex: HTTP 503 from OpenAlex (after 4 tries); "
                        "Crossref: no abstract)",
        f"doi:{UNKNOWN}": "no record of this DOI in OpenAlex or Crossref"}
    assert sorted(report.fetched) == ["2106.09685", f"doi:{PARROTS}", *SMALL_CATALOGUE_PAGES]
    assert sorted(IndexStore(small_library / "index").read_records()) == sorted(report.fetched)
    assert (small_library / "catalogue.yaml").read_text() == text
