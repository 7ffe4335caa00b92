"""The arXiv client against a local HTTP server with recorded responses and faults."""

import pytest

from paperscope.sources.arxiv_api import ArxivApiSource

from .arxiv_server import EMPTY_FEED, RECORDED, ArxivStub

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
    assert lora.abstract.startswith("We propose Low-Rank Adaptation, or LoRA, which freezes the pre-trained model weights")
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
    assert api.client.delay_seconds == 3.0 and api.client.num_retries == 0
    assert api.client.query_url_format.startswith("https://export.arxiv.org/api/query?")
