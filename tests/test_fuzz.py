"""Fuzzing what a cloned repository or a server can hand paperscope: the index manifest,
records.json, snapshot lines and Atom pages. Whatever arrives, only paperscope's typed errors
(or, inside the parsers, their own skip signals) come out. Bounded, so it runs in the quick loop."""

import contextlib
import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paperscope.errors import PaperscopeError
from paperscope.index import IndexStore
from paperscope.indexer import build_index
from paperscope.records import MAX_TEXT_CHARS, MAX_TITLE_CHARS, Document, PaperRecord
from paperscope.sources import arxiv_api
from paperscope.sources.snapshot import UnusableLine, parse_line

from .arxiv_server import RECORDED
from .conftest import FakeEncoder

FUZZ = settings(max_examples=200, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                max_size=4),
                    max_leaves=12)


def mutate(value, data):
    """`value` with one place in it (chosen by hypothesis) replaced, removed or kept."""
    if isinstance(value, dict) and value and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(value)))
        if data.draw(st.booleans()):
            return {k: v for k, v in value.items() if k != key}
        return {**value, key: mutate(value[key], data)}
    if isinstance(value, list) and value and data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(value) - 1))
        return [*value[:i], mutate(value[i], data), *value[i + 1:]]
    return data.draw(JSON) if data.draw(st.booleans()) else value


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    store = IndexStore(tmp_path_factory.mktemp("fuzz") / "index")
    documents = [Document(id=f"d{i}", title=f"T{i}", text=f"text number {i} about topic {i % 3}",
                          meta={"section": "S", "kind": "paper", "year": 2020 + i}) for i in range(5)]
    build_index(store, documents, model="fake-model", encoder=FakeEncoder())
    return store.directory


@FUZZ
@given(data=st.data())
def test_mutated_manifests_raise_only_typed_errors(index_dir, data):
    original = index_dir / "manifest.json.orig"
    if not original.exists():
        shutil.copy(index_dir / "manifest.json", original)
    manifest = json.loads(original.read_text())
    (index_dir / "manifest.json").write_text(json.dumps(mutate(manifest, data)))
    with contextlib.suppress(PaperscopeError):
        IndexStore(index_dir).open().close()


GOOD_RECORD = {"arxiv_id": "2106.09685", "title": "LoRA", "abstract": "Low-rank adaptation.",
               "authors": ["E. Hu"], "year": 2021, "categories": ["cs.CL"], "primary_category": "cs.CL",
               "source": "arxiv-api", "fetched_at": "2024-01-01T00:00:00+00:00", "doi": None,
               "journal_ref": None}


@FUZZ
@given(data=st.data())
def test_mutated_records_json_is_read_typed_or_refused(tmp_path, data):
    document = mutate({"format": 1, "records": {"2106.09685": GOOD_RECORD}}, data)
    (tmp_path / "records.json").write_text(json.dumps(document))
    try:
        records = IndexStore(tmp_path).read_records()
    except PaperscopeError:
        return
    for key, record in records.items():
        assert record.arxiv_id == key and isinstance(record.abstract, str)
        assert record.year is None or type(record.year) is int
        assert all(isinstance(a, str) for a in record.authors + record.categories)


SNAPSHOT_LINE = {"id": "2106.09685", "title": "LoRA", "abstract": "Low-rank adaptation.",
                 "authors": "E. Hu and Y. Shen", "authors_parsed": [["Hu", "Edward", ""]],
                 "categories": "cs.CL cs.LG", "versions": [{"created": "Thu, 17 Jun 2021 17:37:18 GMT"}],
                 "doi": "10.1/x", "journal-ref": "ICLR"}


@FUZZ
@given(data=st.data(), noise=st.binary(max_size=40))
def test_snapshot_lines_give_a_record_or_a_reason(data, noise):
    raw = json.dumps(mutate(SNAPSHOT_LINE, data)).encode()
    for line in (raw, noise, raw[:len(raw) // 2] + noise):
        try:
            record, _ = parse_line(line, expected_id="2106.09685")
        except UnusableLine:
            continue
        assert isinstance(record, PaperRecord) and record.arxiv_id == "2106.09685"
        assert 0 < len(record.title) <= MAX_TITLE_CHARS and 0 < len(record.abstract) <= MAX_TEXT_CHARS


@FUZZ
@given(start=st.integers(0, len(RECORDED)), length=st.integers(0, 200), text=st.text(max_size=60))
def test_atom_pages_give_records_reasons_or_a_typed_failure(start, length, text):
    body = (RECORDED[:start] + text + RECORDED[start + length:]).encode()
    try:
        parsed = arxiv_api._parse(body)
    except arxiv_api._TransientError:
        return
    assert all(isinstance(value, (PaperRecord, str)) for value in parsed.values())
