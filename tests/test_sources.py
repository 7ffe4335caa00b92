"""The PaperSource interface: qualified ids, the registry, compatible record-cache reads, and
each source's three operations (fetch by id, changed since a date, a local dump)."""

import json
import shutil
from datetime import date
from typing import ClassVar

import pytest

from paperscope import sources
from paperscope.catalogue import parse_catalogue
from paperscope.errors import FetchError, IndexCorruptError, UnsupportedBySourceError, UsageError
from paperscope.index import IndexStore
from paperscope.ingest import ingest
from paperscope.library import Library
from paperscope.records import PaperRecord
from paperscope.sources import fetch_ids, open_source, qualify, record_key, source_for, split_id
from paperscope.sources.arxiv_api import ArxivApiSource
from paperscope.sources.base import Deleted, FetchResult, PaperSource
from paperscope.sources.ids import local_id
from paperscope.sources.snapshot import SnapshotSource

from .arxiv_server import EMPTY_FEED, ArxivStub, feed_for
from .conftest import FIXTURE_LIBRARY, FIXTURES, SMALL_CATALOGUE, SMALL_CATALOGUE_PAGES

SAMPLE = FIXTURES / "snapshot-sample.jsonl"
LORA, QLORA = "2106.09685", "2305.14314"
ROOT = FIXTURES.parent.parent


def record(key: str, title: str = "A title", abstract: str = "An abstract.") -> PaperRecord:
    return PaperRecord(arxiv_id=key, title=title, abstract=abstract, authors=("A. Author",), year=2024,
                       categories=(), primary_category=None, source="fake", fetched_at="")


class FakeSource:
    """A source of `doi:` ids that holds two DOIs: what a new source needs to provide."""

    scheme = "doi"
    label = "the fake DOI service"
    batch_size = 1
    held: ClassVar[dict[str, str]] = {"10.1/a": "Paper A", "10.1/b:c": "Paper B"}  # a DOI may hold ":"
    says_why = True  # a service says why it has no record; a dump just does not have it
    asked: ClassVar[list[list[str]]] = []

    def fetch(self, ids, progress=None):
        FakeSource.asked.append(list(ids))
        found = {i: record(record_key(f"{self.scheme}:{i}"), self.held[i]) for i in ids if i in self.held}
        if progress:
            progress(len(ids))
        failures = {i: "unknown DOI" for i in ids if i not in self.held and self.says_why}
        return FetchResult(records=found, failures=failures)

    def work(self, ids):
        return len(ids), "papers"

    def changed_since(self, since, *, until=None, categories=()):
        yield record("doi:10.1/a")
        yield Deleted("doi:10.1/gone", "2024-05-01")

    def records(self):
        return iter([record(f"doi:{i}", title) for i, title in self.held.items()])


class FakeArxiv(FakeSource):
    """Stands in for the arXiv API: it knows LoRA and QLoRA, and asks no network."""

    scheme = "arxiv"
    label = "the fake arXiv"
    held: ClassVar[dict[str, str]] = {LORA: "LoRA", QLORA: "QLoRA"}
    says_why = False


@pytest.fixture
def registered(monkeypatch):
    """The fakes registered as a new source is: one line each in SOURCES."""
    FakeSource.asked = []
    monkeypatch.setitem(sources.SOURCES, "doi", "tests.test_sources:FakeSource")
    monkeypatch.setitem(sources.SOURCES, "arxiv", "tests.test_sources:FakeArxiv")


# -- qualified ids ------------------------------------------------------------------------

@pytest.mark.parametrize("given, qualified, key", [
    ("2106.09685", "arxiv:2106.09685", "2106.09685"),
    ("arxiv:2106.09685", "arxiv:2106.09685", "2106.09685"),
    ("arXiv:2106.09685", "arxiv:2106.09685", "2106.09685"),
    ("hep-th/9901001", "arxiv:hep-th/9901001", "hep-th/9901001"),
    ("math.GT/0309136", "arxiv:math.GT/0309136", "math.GT/0309136"),
    ("doi:10.18653/v1/2021.acl-long.353", "doi:10.18653/v1/2021.acl-long.353",
     "doi:10.18653/v1/2021.acl-long.353"),
    ("doi:10.1002/(SICI)1097-4636(199706)35:4<1::AID>", "doi:10.1002/(SICI)1097-4636(199706)35:4<1::AID>",
     "doi:10.1002/(SICI)1097-4636(199706)35:4<1::AID>"),
])
def test_ids_are_qualified_and_keyed_with_arxiv_the_default(given, qualified, key):
    assert qualify(given) == qualified
    assert record_key(given) == record_key(qualified) == key
    assert qualify(record_key(given)) == qualified


def test_split_and_local_ids():
    assert split_id("2106.09685") == ("arxiv", "2106.09685")
    assert split_id("doi:10.1/b:c") == ("doi", "10.1/b:c")
    assert qualify("10.1/x", scheme="doi") == "doi:10.1/x"  # a bare DOI, from a DOI service
    assert local_id("arxiv:2106.09685", "arxiv") == local_id("2106.09685", "arxiv") == "2106.09685"
    with pytest.raises(ValueError, match="is a doi id"):
        local_id("doi:10.1/x", "arxiv")


@pytest.mark.parametrize("bad", ["", " ", "arxiv:", "doi: "])
def test_an_empty_id_is_refused(bad):
    with pytest.raises(ValueError, match="not a paper id"):
        split_id(bad)


def test_a_record_knows_its_qualified_id_and_key():
    assert (record(LORA).id, record(LORA).key) == (f"arxiv:{LORA}", LORA)
    assert (record("doi:10.1/a").id, record("doi:10.1/a").key) == ("doi:10.1/a", "doi:10.1/a")
    assert record(f"arxiv:{LORA}").to_json()["arxiv_id"] == LORA  # never written qualified


# -- the record cache: today's files, read and written as they are --------------------------

@pytest.mark.parametrize("path", [ROOT / "index" / "records.json",
                                  FIXTURE_LIBRARY / "index" / "records.json"])
def test_committed_record_caches_read_and_write_back_byte_for_byte(tmp_path, path):
    if not path.is_file():
        pytest.skip(f"no {path}")
    shutil.copy(path, tmp_path / "records.json")
    store = IndexStore(tmp_path)
    records = store.read_records()
    assert records and all(key == r.arxiv_id and ":" not in key for key, r in records.items())
    store.write_records(records)
    assert (tmp_path / "records.json").read_bytes() == path.read_bytes()


def test_qualified_arxiv_keys_read_as_bare_and_other_sources_keep_their_scheme(tmp_path):
    lora = record(LORA).to_json()
    doi = record("doi:10.1/a").to_json()
    qualified = {**lora, "arxiv_id": f"arxiv:{LORA}"}
    (tmp_path / "records.json").write_text(json.dumps(
        {"format": 1, "records": {f"arxiv:{LORA}": qualified, "doi:10.1/a": doi}}))
    store = IndexStore(tmp_path)
    records = store.read_records()
    assert set(records) == {LORA, "doi:10.1/a"} and records[LORA].arxiv_id == LORA
    store.write_records(records)
    written = json.loads((tmp_path / "records.json").read_text())["records"]
    assert set(written) == {LORA, "doi:10.1/a"} and written[LORA]["arxiv_id"] == LORA


def test_a_record_under_another_key_is_still_damage(tmp_path):
    (tmp_path / "records.json").write_text(json.dumps(
        {"format": 1, "records": {"doi:10.1/a": record(LORA).to_json()}}))
    with pytest.raises(IndexCorruptError, match=r"holds arXiv 2106\.09685"):
        IndexStore(tmp_path).read_records()


# -- the registry ---------------------------------------------------------------------------

def test_every_registered_source_implements_the_interface(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERSCOPE_CACHE", str(tmp_path))  # no corpus: opening one is refused
    assert isinstance(open_source("arxiv"), PaperSource)
    assert isinstance(open_source("arxiv-snapshot", SAMPLE), PaperSource)
    with pytest.raises(Exception, match="No corpus named 'none'"):
        open_source("corpus", "none")
    assert isinstance(source_for(f"arxiv:{LORA}"), ArxivApiSource)


def test_unknown_sources_and_schemes_are_usage_errors():
    with pytest.raises(UsageError, match="No source named 'nope'"):
        open_source("nope")
    with pytest.raises(UsageError, match="No source fetches isbn: ids"):
        source_for("isbn:978-3-16-148410-0")
    with pytest.raises(UsageError, match="No source fetches isbn: ids"):
        fetch_ids([LORA, "isbn:978-3-16-148410-0"], FakeArxiv())  # before anything is asked


def test_a_registered_source_is_found_by_its_scheme(registered):
    assert isinstance(source_for("doi:10.1/a"), FakeSource)
    result = fetch_ids(["doi:10.1/a", LORA, "doi:10.1/b:c", "doi:10.1/z"])
    assert set(result.records) == {"doi:10.1/a", LORA, "doi:10.1/b:c"}
    assert result.records["doi:10.1/b:c"].title == "Paper B"
    assert result.failures == {"doi:10.1/z": "unknown DOI"}
    assert FakeSource.asked == [["10.1/a", "10.1/b:c", "10.1/z"], [LORA]]  # in each source's terms


def test_ingest_asks_the_source_registered_for_arxiv(registered, tmp_path):
    catalogue = parse_catalogue(SMALL_CATALOGUE)
    store = IndexStore(tmp_path / "index")
    planned, done = [], []
    report = ingest(catalogue, store, on_plan=lambda n, unit: planned.append((n, unit)), progress=done.append)
    assert report.fetched == [LORA, *SMALL_CATALOGUE_PAGES] and report.failures == {}  # and READMEs
    assert planned == [(3, "papers")] and done == [1, 1, 1]
    assert store.read_records()[LORA].title == "LoRA"


def test_add_asks_the_source_registered_for_arxiv(registered, small_library):
    library = Library.open(small_library)
    results, _ = library.add_many([QLORA], section="New", build=False)
    assert results[0].entry.title == "QLoRA" and library.records()[QLORA].title == "QLoRA"
    with pytest.raises(FetchError, match=r"arXiv 2001.08361: not in the fake arXiv"):
        library.add_many(["2001.08361"], section="New", build=False)


# -- the arXiv snapshot ---------------------------------------------------------------------

def test_the_snapshot_fetches_by_id_and_leaves_out_what_it_lacks():
    source = SnapshotSource(SAMPLE)
    read = []
    result = source.fetch([LORA, "2001.08361"], progress=read.append)
    assert set(result.records) == {LORA} and result.failures == {} and sum(read) == SAMPLE.stat().st_size
    assert result.records[LORA].source == "snapshot:snapshot-sample.jsonl"
    assert source.work([LORA]) == (SAMPLE.stat().st_size, "bytes") and source.batch_size is None


def test_the_snapshot_is_a_dump(tmp_path):
    assert [r.arxiv_id for r in SnapshotSource(SAMPLE).records()] == ["0704.0001", LORA, QLORA]
    noisy = tmp_path / "noisy.jsonl"
    noisy.write_text(SAMPLE.read_text() + '{"id": "1111.11111", broken json\n{"id": "2", "title": 1}\n')
    skipped = []
    assert len(list(SnapshotSource(noisy).records(on_skip=skipped.append))) == 3
    assert skipped == ["not JSON", "title or abstract missing or not text"]
    other = tmp_path / "other.txt"
    other.write_text("hello\n")
    with pytest.raises(Exception, match="not an arXiv metadata snapshot"):
        list(SnapshotSource(other).records())


def test_the_snapshot_lists_what_changed_since_a_date():
    source = SnapshotSource(SAMPLE)
    # 0704.0001 was updated 2008-11-13; LoRA has no update date, its last version is 2021-06-17;
    # QLoRA says neither, so it is never listed as changed
    assert [r.arxiv_id for r in source.changed_since(date(2008, 1, 1))] == ["0704.0001", LORA]
    assert [r.arxiv_id for r in source.changed_since(date(2008, 11, 14))] == [LORA]
    assert [r.arxiv_id for r in source.changed_since(date(2008, 1, 1), until=date(2008, 11, 13))] == ["0704.0001"]
    assert [r.arxiv_id for r in source.changed_since(date(2000, 1, 1), categories=["cs"])] == [LORA]
    assert [r.arxiv_id for r in source.changed_since(date(2000, 1, 1), categories=["hep-ph"])] == ["0704.0001"]


# -- the arXiv API --------------------------------------------------------------------------

def api(stub, **options):
    return ArxivApiSource(api_url=stub.url, delay_seconds=0, backoff_seconds=0, max_retries=1,
                          sleep=lambda s: None, **options)


def test_the_api_lists_changes_a_page_at_a_time():
    with ArxivStub() as stub:
        stub.script = [("body", feed_for([LORA], total=2)), ("body", feed_for([QLORA], total=2))]
        listed = list(api(stub, page_size=1).changed_since(date(2024, 5, 1), until=date(2024, 5, 3),
                                                           categories=["cs", "stat.ML"]))
    assert [r.arxiv_id for r in listed] == [LORA, QLORA]
    assert [(q["start"], q["max_results"]) for q in stub.requests] == [(["0"], ["1"]), (["1"], ["1"])]
    query = stub.requests[0]["search_query"][0]
    assert query == "(cat:cs.* OR cat:stat.ML) AND lastUpdatedDate:[202405010000 TO 202405032359]"
    assert stub.requests[0]["sortBy"] == ["lastUpdatedDate"]


def test_the_api_listing_is_bounded_and_stops_at_an_empty_page():
    with ArxivStub() as stub:
        stub.default = ("body", feed_for([LORA, QLORA], total=1000))
        assert len(list(api(stub, page_size=2, max_listed=4).changed_since(date(2024, 5, 1)))) == 4
        assert len(stub.requests) == 2
    with ArxivStub() as stub:
        stub.default = ("body", EMPTY_FEED.replace("totalResults>0<", "totalResults>50<"))
        assert list(api(stub).changed_since(date(2024, 5, 1))) == [] and len(stub.requests) == 1


def test_a_listing_that_cannot_be_had_is_a_fetch_error():
    with ArxivStub() as stub:
        stub.default = ("status", 503)
        with pytest.raises(FetchError, match=r"Could not list arXiv's changes: HTTP 503 from arXiv \(after 2 tries\)"):
            list(api(stub).changed_since(date(2024, 5, 1)))
        stub.default = ("status", 400)
        with pytest.raises(FetchError, match="HTTP 400 from arXiv"):
            list(api(stub).changed_since(date(2024, 5, 1)))


def test_the_api_is_no_dump():
    with pytest.raises(UnsupportedBySourceError, match="arXiv has no local dump"):
        ArxivApiSource().records()
