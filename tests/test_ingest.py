"""Ingestion: only what is missing is fetched, failures keep everything else."""

import json

from paperscope.catalogue import parse_catalogue
from paperscope.index import IndexStore
from paperscope.ingest import catalogue_documents, ingest
from paperscope.sources.arxiv_api import ArxivApiSource, FetchResult

from .arxiv_server import ArxivStub
from .conftest import FIXTURES, SMALL_CATALOGUE, SMALL_CATALOGUE_PAGES

TWO_PAPERS = SMALL_CATALOGUE + """\
    - id: qlora
      title: "QLoRA: Efficient Finetuning of Quantized LLMs"
      url: https://arxiv.org/abs/2305.14314
      arxiv: "2305.14314"
"""


class CountingSource:
    batch_size = 1
    label = "arXiv"

    def __init__(self, inner, fail=()):
        self.inner, self.fail, self.asked = inner, set(fail), []

    def fetch(self, ids, progress=None):
        self.asked.extend(ids)
        if set(ids) & self.fail:
            return FetchResult(failures=dict.fromkeys(ids, "HTTP 503 from arXiv (after 5 tries)"))
        return self.inner.fetch(ids)


def test_ingest_fetches_only_missing_ids_then_nothing(tmp_path):
    catalogue = parse_catalogue(TWO_PAPERS)
    store = IndexStore(tmp_path / "index")
    with ArxivStub() as stub:
        api = CountingSource(ArxivApiSource(api_url=stub.url, delay_seconds=0))
        report = ingest(catalogue, store, source=api)
        assert sorted(report.fetched) == ["2106.09685", "2305.14314", *SMALL_CATALOGUE_PAGES]
        assert report.failures == {}
        again = ingest(catalogue, store, source=api)
        assert again.fetched == [] and again.cached == 4
        assert api.asked == ["2106.09685", "2305.14314"]
        refreshed = ingest(catalogue, store, source=api, refresh=True)
        assert len(refreshed.fetched) == 4 and len(stub.requests) == 4
    cache = json.loads((tmp_path / "index" / "records.json").read_text())
    assert cache["records"]["2305.14314"]["source"] == "arxiv-api"


def test_a_failure_keeps_what_was_fetched_and_the_next_run_resumes(tmp_path):
    catalogue = parse_catalogue(TWO_PAPERS)
    store = IndexStore(tmp_path / "index")
    with ArxivStub() as stub:
        flaky = CountingSource(ArxivApiSource(api_url=stub.url, delay_seconds=0), fail={"2305.14314"})
        report = ingest(catalogue, store, source=flaky)
        assert report.fetched == ["2106.09685", *SMALL_CATALOGUE_PAGES]
        assert report.failures == {"2305.14314": "HTTP 503 from arXiv (after 5 tries)"}
        assert set(store.read_records()) == {"2106.09685", *SMALL_CATALOGUE_PAGES}
        healthy = CountingSource(ArxivApiSource(api_url=stub.url, delay_seconds=0))
        resumed = ingest(catalogue, store, source=healthy)
        assert healthy.asked == ["2305.14314"] and resumed.failures == {}
    assert set(store.read_records()) == {"2106.09685", "2305.14314", *SMALL_CATALOGUE_PAGES}


def test_snapshot_import_needs_no_network_and_reports_what_it_lacks(tmp_path):
    catalogue = parse_catalogue(TWO_PAPERS.replace('"2305.14314"', '"2001.08361"'))
    store = IndexStore(tmp_path / "index")
    report = ingest(catalogue, store, snapshot=FIXTURES / "snapshot-sample.jsonl")
    assert report.fetched == ["2106.09685"]
    assert report.failures == {"2001.08361": "not in the snapshot snapshot-sample.jsonl"}
    assert store.read_records()["2106.09685"].source == "snapshot:snapshot-sample.jsonl"


def test_records_of_removed_entries_are_pruned(tmp_path):
    store = IndexStore(tmp_path / "index")
    ingest(parse_catalogue(TWO_PAPERS), store, snapshot=FIXTURES / "snapshot-sample.jsonl")
    report = ingest(parse_catalogue(SMALL_CATALOGUE), store, snapshot=FIXTURES / "snapshot-sample.jsonl")
    assert report.pruned == ["2305.14314"] and set(store.read_records()) == {"2106.09685"}


def test_documents_use_the_abstract_or_the_summary_and_list_what_is_missing(tmp_path):
    catalogue = parse_catalogue(TWO_PAPERS)
    store = IndexStore(tmp_path / "index")
    documents, missing = catalogue_documents(catalogue, {})
    assert [d.id for d in documents] == ["lora", "alpaca", "humaneval", "qlora"]
    assert [d.text for d in documents if d.id in ("lora", "qlora")] == ["", ""]  # by title, meanwhile
    assert [e.id for e in missing] == ["lora", "qlora"]
    ingest(catalogue, store, snapshot=FIXTURES / "snapshot-sample.jsonl")
    documents, missing = catalogue_documents(catalogue, store.read_records())
    lora = documents[0]
    assert lora.text.startswith("We propose Low-Rank Adaptation") and missing == []
    assert lora.meta == {"section": "Training Recipe", "kind": "paper",
                         "url": "https://arxiv.org/abs/2106.09685", "arxiv_id": "2106.09685",
                         "year": 2021, "authors": ["Edward J. Hu", "Yelong Shen"]}


def test_ingest_command_end_to_end_through_a_local_arxiv(small_library, monkeypatch):
    from typer.testing import CliRunner

    from paperscope.cli import app

    catalogue = small_library / "catalogue.yaml"
    catalogue.write_text(TWO_PAPERS + '    - id: ghost\n      title: Ghost\n      url: https://arxiv.org/abs/2001.00001\n'
                         '      arxiv: "2001.00001"\n')
    with ArxivStub() as stub:
        monkeypatch.setenv("PAPERSCOPE_ARXIV_API", stub.url)
        stub.script = [("ok",), ("status", 400)]  # the ghost is dropped, then its retry refused
        result = CliRunner().invoke(app, ["--library", str(small_library), "ingest"])
    assert result.exit_code == 8, result.output
    assert "Fetched 4 of 5 entries from arXiv and the web" in result.stderr
    assert "2001.00001: HTTP 400 from arXiv" in result.stderr
    assert "Run `paperscope ingest` again later" in result.stderr
    assert "Index built: 5 embedded" in result.stderr  # the one without abstract by its title
    assert set(IndexStore(small_library / "index").read_records()) == {"2106.09685", "2305.14314",
                                                                      *SMALL_CATALOGUE_PAGES}
