"""The arXiv client against a local HTTP server with recorded responses and faults."""

import time
import tracemalloc

import pytest
from typer.testing import CliRunner

from paperscope.catalogue import parse_catalogue
from paperscope.cli import app
from paperscope.index import IndexStore
from paperscope.ingest import ingest
from paperscope.sources.arxiv_api import ArxivApiSource

from .arxiv_server import EMPTY_FEED, RECORDED, ArxivStub, closed_port_url, gzip_zeros
from .conftest import SMALL_CATALOGUE, SMALL_CATALOGUE_PAGES

LORA, QLORA = "2106.09685", "2305.14314"


@pytest.fixture
def stub():
    with ArxivStub() as server:
        yield server


def source(stub, sleeps=None, **options):
    options = {"delay_seconds": 0, "backoff_seconds": 1, "max_retries": 2, "timeout": 2, **options}
    return ArxivApiSource(api_url=stub.url, sleep=(sleeps.append if sleeps is not None else lambda s: None),
                          **options)


def test_a_batch_is_one_id_list_request_and_records_are_parsed(stub):
    result = source(stub).fetch([LORA, QLORA])
    assert result.failures == {}
    assert len(stub.requests) == 1 and stub.requests[0]["id_list"] == [f"{LORA},{QLORA}"]
    lora = result.records[LORA]
    assert lora.title == "LoRA: Low-Rank Adaptation of Large Language Models"
    assert lora.abstract.startswith(
        "We propose Low-Rank Adaptation, or LoRA, which freezes the pre-trained model weights")
    assert "\n" not in lora.abstract
    assert lora.authors == ("Edward J. Hu", "Yelong Shen")
    assert (lora.year, lora.primary_category, lora.source) == (2021, "cs.CL", "arxiv-api")
    assert lora.categories == ("cs.CL", "cs.AI", "cs.LG")


def test_batches_respect_the_batch_size(stub):
    source(stub, batch_size=1).fetch([LORA, QLORA])
    assert [r["id_list"] for r in stub.requests] == [[LORA], [QLORA]]


def test_503_then_success_is_retried_with_backoff(stub):
    stub.script = [("status", 503)]
    sleeps = []
    result = source(stub, sleeps).fetch([LORA])
    assert LORA in result.records and result.failures == {}
    assert len(stub.requests) == 2 and sleeps == [1]


def test_permanent_failure_is_reported_per_id_after_bounded_retries(stub):
    stub.script = [("status", 503)] * 10
    sleeps = []
    result = source(stub, sleeps).fetch([LORA, QLORA])
    assert result.records == {}
    assert result.failures[LORA] == "HTTP 503 from arXiv (after 3 tries)"
    assert set(result.failures) == {LORA, QLORA}
    assert len(stub.requests) == 3 and sleeps == [1, 2]


def test_client_errors_are_not_retried(stub):
    stub.script = [("status", 400)]
    result = source(stub).fetch([LORA])
    assert result.failures == {LORA: "HTTP 400 from arXiv"} and len(stub.requests) == 1


def test_retry_after_is_honoured_and_bounded(stub):
    stub.script = [("status", 429, {"Retry-After": "7"}), ("status", 429, {"Retry-After": "9999"})]
    sleeps = []
    result = source(stub, sleeps, max_backoff_seconds=30).fetch([LORA])
    assert LORA in result.records
    assert sleeps == [7.0, 30]


def test_timeouts_and_connection_resets_are_retried(stub):
    stub.script = [("sleep", 1.5), ("reset",)]
    result = source(stub, timeout=0.5).fetch([LORA])
    assert LORA in result.records and len(stub.requests) == 3


def test_a_dropped_id_is_reported_and_the_rest_kept(stub):
    result = source(stub).fetch([LORA, "2106.99999"])
    assert LORA in result.records
    assert result.failures == {"2106.99999": "arXiv returned no record for this id (after 3 tries)"}


def test_truncated_and_empty_pages_are_retried_then_reported(stub):
    stub.script = [("body", RECORDED[: len(RECORDED) // 2]), ("body", EMPTY_FEED), ("body", "not xml")]
    result = source(stub).fetch([QLORA])
    assert result.records == {} and QLORA in result.failures
    stub.script = [("body", RECORDED[: len(RECORDED) // 2])]
    assert QLORA in source(stub).fetch([QLORA]).records


def test_a_record_for_another_id_is_not_stored_under_the_asked_one(stub):
    stub.script = [("body", RECORDED)] * 3  # answers LoRA and QLoRA whatever was asked
    result = source(stub).fetch(["2001.08361"])
    assert result.records == {} and "2001.08361" in result.failures


def test_default_client_keeps_arxivs_rate_limit():
    api = ArxivApiSource()
    assert api.delay_seconds == 3.0 and api.api_url == "https://export.arxiv.org/api/query"


def test_requests_are_spaced_by_the_rate_limit(stub):
    sleeps = []
    source(stub, sleeps, batch_size=1, delay_seconds=60).fetch([LORA, QLORA])
    assert len(sleeps) == 1 and 59 < sleeps[0] <= 60


def test_the_api_address_comes_from_the_environment(stub, monkeypatch):
    monkeypatch.setenv("PAPERSCOPE_ARXIV_API", stub.url)
    assert LORA in ArxivApiSource(delay_seconds=0).fetch([LORA]).records


def timed_fetch(stub, ids=(LORA,), **options):
    started = time.monotonic()
    result = source(stub, **{"max_retries": 0, **options}).fetch(list(ids))
    return result, time.monotonic() - started


@pytest.mark.parametrize("where", ["body", "headers"])
def test_a_slow_drip_ends_at_the_whole_request_deadline(stub, where):
    # A byte every 0.2 s never trips the 2 s read timeout; the headers alone take 20 s and the
    # body longer. Ending well before that is the deadline's doing, however busy the machine.
    stub.script = [("drip", 0.2, where)]
    result, elapsed = timed_fetch(stub, deadline=1)
    assert result.failures == {LORA: "arXiv did not answer within 1 s (after 1 tries)"}
    assert elapsed < 10


# The size cap is what these test, not the clock: their timeouts are generous, so that a busy
# machine cannot end them at a deadline first (the failure names the cap).
GENEROUS = {"timeout": 60, "deadline": 120}


def test_a_gzip_bomb_stops_at_the_size_cap_in_little_memory(stub):
    gzip_zeros(64 << 20)  # made before the fetch (cached): the stub answers at once
    stub.script = [("gzip_bomb", 64 << 20)]
    tracemalloc.start()
    try:
        result, _ = timed_fetch(stub, max_bytes=1 << 20, **GENEROUS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.failures == {LORA: "arXiv's answer is larger than 1,048,576 bytes"}
    assert peak < 16 << 20


def test_an_endless_body_stops_at_the_size_cap(stub):
    stub.script = [("endless",)]
    result, _ = timed_fetch(stub, max_bytes=1 << 20, **GENEROUS)
    assert result.failures == {LORA: "arXiv's answer is larger than 1,048,576 bytes"}


def test_an_oversized_plain_body_is_refused(stub):
    stub.script = [("body", RECORDED + " " * 5000)]
    result, _ = timed_fetch(stub, max_bytes=4096)
    assert result.failures == {LORA: "arXiv's answer is larger than 4,096 bytes"}


def test_a_redirect_loop_is_a_typed_failure_without_retries(stub):
    stub.script = [("redirect",)] * 20
    result, _ = timed_fetch(stub, max_redirects=3, max_retries=2)
    assert result.failures == {LORA: "arXiv redirected more than 3 times"}
    assert len(stub.requests) == 4


def test_one_redirect_is_followed(stub):
    stub.script = [("redirect",)]
    assert LORA in source(stub).fetch([LORA]).records


def test_a_server_that_ignores_start_costs_one_request_per_try(stub):
    stub.default = ("ignore_start",)
    result, _ = timed_fetch(stub, ids=(LORA, QLORA), max_retries=2)
    assert LORA in result.records and QLORA in result.records
    assert len(stub.requests) == 2 and all(r.get("start", ["0"]) == ["0"] for r in stub.requests)
    stub.requests.clear()
    result, _ = timed_fetch(stub, ids=(LORA, QLORA, "2001.08361"), max_retries=2)
    assert "2001.08361" in result.failures and len(stub.requests) == 3


@pytest.mark.parametrize("summary, reason", [
    ("&nbsp;", "arXiv sent a page that cannot be read (undefined entity"),
    ("  ", "arXiv's record has no abstract"),
    ("x" * 30_000, "arXiv's record has an abstract of 30,000 characters"),
])
def test_a_record_without_usable_text_is_a_failure_for_its_id(stub, summary, reason):
    stub.script = [("summary", summary)]
    result = source(stub, max_retries=0).fetch([LORA])
    assert result.records == {} and result.failures[LORA].startswith(reason)


def test_a_record_without_a_title_is_a_failure_and_not_retried(stub):
    stub.script = [("body", RECORDED.replace("<title>QLoRA: Efficient Finetuning of Quantized LLMs</title>",
                                             "<title/>"))]
    result = source(stub, max_retries=3).fetch([LORA, QLORA])
    assert LORA in result.records and result.failures == {QLORA: "arXiv's record has no title"}
    assert len(stub.requests) == 1


def test_refresh_against_empty_abstracts_keeps_the_good_ones(stub, tmp_path):
    catalogue, store = parse_catalogue(SMALL_CATALOGUE), IndexStore(tmp_path / "index")
    ingest(catalogue, store, source=source(stub))
    good = store.read_records()[LORA].abstract
    stub.default = ("summary", "&nbsp;")
    report = ingest(catalogue, store, source=source(stub), refresh=True)
    assert report.fetched == SMALL_CATALOGUE_PAGES and LORA in report.failures
    stub.default = ("summary", "")
    ingest(catalogue, store, source=source(stub), refresh=True)
    assert store.read_records()[LORA].abstract == good


def test_each_retry_is_reported_through_on_retry(stub):
    stub.script = [("status", 503), ("status", 429, {"Retry-After": "2"})]
    retries = []
    result = source(stub, on_retry=lambda reason, delay: retries.append((reason, delay))).fetch([LORA])
    assert LORA in result.records
    assert retries == [("HTTP 503 from arXiv", 1), ("HTTP 429 from arXiv", 2.0)]


def test_an_unreachable_arxiv_fails_fast_without_retries():
    sleeps, retries = [], []
    api = ArxivApiSource(api_url=closed_port_url(), batch_size=1, delay_seconds=0, sleep=sleeps.append,
                         on_retry=lambda *args: retries.append(args))
    started = time.monotonic()
    result = api.fetch([LORA, QLORA])
    assert time.monotonic() - started < 2 and sleeps == [] and retries == []
    assert result.unreachable == "arXiv cannot be reached (connection refused)"
    assert result.failures == {LORA: result.unreachable, QLORA: result.unreachable}


def test_ingest_stops_at_an_unreachable_arxiv(tmp_path):
    catalogue = parse_catalogue(SMALL_CATALOGUE + """    - id: qlora
      title: QLoRA
      url: https://arxiv.org/abs/2305.14314
      arxiv: "2305.14314"
""")
    api = ArxivApiSource(api_url=closed_port_url(), batch_size=1, delay_seconds=0)
    report = ingest(catalogue, IndexStore(tmp_path / "index"), source=api)
    assert report.unreachable == "arXiv cannot be reached (connection refused)"
    assert report.failures == {LORA: report.unreachable, QLORA: report.unreachable}



def test_cli_ingest_offline_fails_within_seconds_and_suggests_a_snapshot(small_library, monkeypatch):
    monkeypatch.setenv("PAPERSCOPE_ARXIV_API", closed_port_url())
    started = time.monotonic()
    result = CliRunner().invoke(app, ["--library", str(small_library), "ingest", "--no-build"])
    assert time.monotonic() - started < 5 and result.exit_code == 8
    assert "error: arXiv cannot be reached (connection refused): 1 paper was not fetched" in result.stderr
    assert "paperscope ingest --from-snapshot FILE" in result.stderr
    assert "Run `paperscope ingest` again" not in result.stderr


def test_cli_add_offline_suggests_a_snapshot_or_a_summary_and_takes_one(small_library, monkeypatch):
    monkeypatch.setenv("PAPERSCOPE_ARXIV_API", closed_port_url())
    cli = ["--library", str(small_library), "add", "2203.15556", "--section", "Scaling"]
    before = (small_library / "catalogue.yaml").read_text()
    started = time.monotonic()
    result = CliRunner().invoke(app, cli)
    assert time.monotonic() - started < 5 and result.exit_code == 8
    assert "arXiv cannot be reached (connection refused)" in result.stderr
    assert "--from-snapshot FILE" in result.stderr and "--title and --summary" in result.stderr
    assert (small_library / "catalogue.yaml").read_text() == before
    result = CliRunner().invoke(app, [*cli, "--title", "Chinchilla", "--summary", "Compute-optimal training."])
    assert result.exit_code == 0, result.stderr
    assert 'arxiv: "2203.15556"' in (small_library / "catalogue.yaml").read_text()


def test_cli_reports_each_retry_on_stderr(small_library, monkeypatch, stub):
    monkeypatch.setenv("PAPERSCOPE_ARXIV_API", stub.url)

    class Quick(ArxivApiSource):
        def __init__(self, **options):
            super().__init__(**{**options, "delay_seconds": 0, "backoff_seconds": 0})

    monkeypatch.setattr("paperscope.sources.arxiv_api.ArxivApiSource", Quick)
    stub.script = [("status", 503)]
    result = CliRunner().invoke(app, ["--library", str(small_library), "ingest", "--no-build"])
    assert result.exit_code == 0, result.stderr
    assert "arXiv: HTTP 503 from arXiv; trying again in 0 s" in result.stderr


def test_records_agree_with_the_arxiv_package_on_the_same_responses(stub):
    """The `arxiv` package (lukasschwab/arxiv.py) is the reference reading of the API: on the
    same recorded responses, our bounded client must find the same papers and fields."""
    import arxiv

    reference = arxiv.Client(page_size=10, delay_seconds=0, num_retries=0)
    reference.query_url_format = stub.url + "?{}"
    expected = {r.get_short_id().split("v")[0]: r
                for r in reference.results(arxiv.Search(id_list=[LORA, QLORA]))}
    ours = source(stub).fetch([LORA, QLORA]).records
    assert set(ours) == set(expected) == {LORA, QLORA}
    for arxiv_id, record in ours.items():
        want = expected[arxiv_id]
        assert record.title == " ".join(want.title.split())
        assert record.abstract == " ".join(want.summary.split())
        assert record.authors == tuple(author.name for author in want.authors)
        assert record.primary_category == want.primary_category
        assert record.categories == tuple(want.categories)
        assert record.year == want.published.year


def _utf16_entity_page(title_refs: int) -> bytes:
    page = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE feed [<!ENTITY a "' + "A" * 400 + '">]>'
            '<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>http://arxiv.org/abs/2106.09685v1</id>'
            "<title>" + "&a;" * title_refs + "</title><summary>S.</summary></entry></feed>")
    return page.encode("utf-16")


@pytest.mark.parametrize("step, reason", [
    # A DOCTYPE in UTF-16 is no byte string "<!DOCTYPE": its entities would expand 100-fold.
    (("raw", 200, {}, _utf16_entity_page(100_000)), "arXiv sent a page that is not an Atom feed"),
    (("raw", 200, {"Content-Encoding": "gzip"}, b"not gzip"), "arXiv sent a gzip page that cannot be inflated"),
    (("raw", 200, {"Content-Encoding": "deflate"}, b"\x00\x01broken"), "cannot be inflated"),
    (("raw", 302, {"Location": "http://[::1"}, b""), "arXiv sent an answer that cannot be read"),
    (("raw", 302, {"Location": "file:///etc/passwd"}, b""), "arXiv redirected to a file: address"),
])
def test_hostile_answers_are_typed_failures_at_once(stub, step, reason):
    stub.script = [step] * 5
    started = time.monotonic()
    result = source(stub, max_retries=2).fetch([LORA])
    assert LORA not in result.records and reason in result.failures[LORA]
    assert time.monotonic() - started < 5


def test_titles_and_author_lists_from_arxiv_are_capped(stub):
    authors = "".join(f"<author><name>Author {i}</name></author>" for i in range(12_000))
    page = RECORDED.replace("<title>QLoRA: Efficient Finetuning of Quantized LLMs</title>",
                            "<title>" + "T" * 50_000 + "</title>" + authors)
    stub.script = [("body", page)]
    record = source(stub).fetch([QLORA]).records[QLORA]
    assert len(record.title) == 1_000 and len(record.authors) == 10_000


def test_a_later_copy_of_an_entry_does_not_replace_a_good_one(stub):
    start, end = RECORDED.index("<entry>"), RECORDED.index("</entry>") + len("</entry>")
    entry = RECORDED[start:end]
    empty = entry.replace(entry[entry.index("<summary>"):entry.index("</summary>")], "<summary>")
    stub.script = [("body", RECORDED[:end] + empty + RECORDED[end:])]
    assert set(source(stub).fetch([LORA, QLORA]).records) == {LORA, QLORA}
