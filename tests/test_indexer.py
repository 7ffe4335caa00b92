"""Building on its own (indexer.py): schemes, the encoder chosen and recorded, the manifest it
commits, resuming, with the fake encoder."""

import pytest

from paperscope.errors import UsageError
from paperscope.index import IndexStore, Manifest
from paperscope.indexer import WHOLE_SCHEME_FROM, build_index, check_scheme, choose_scheme
from paperscope.text import DEFAULT_SCHEME

from .conftest import CORPUS, docs


def test_large_corpora_default_to_whole_documents():
    assert choose_scheme(WHOLE_SCHEME_FROM) == DEFAULT_SCHEME
    assert choose_scheme(WHOLE_SCHEME_FROM + 1) == "whole"


def test_an_unknown_scheme_or_search_method_is_a_usage_error(tmp_path, fake_encoder):
    with pytest.raises(UsageError, match="passage scheme"):
        check_scheme("paragraphs")
    with pytest.raises(UsageError, match="search method"):
        build_index(IndexStore(tmp_path), docs(**CORPUS), model="fake-model", encoder=fake_encoder,
                    search="fastest")


def test_the_manifest_records_what_made_the_index(built):
    store, report = built
    manifest = store.read_manifest()
    assert isinstance(manifest, Manifest)
    assert (manifest.model, manifest.dimension, manifest.count) == ("fake-model", 32, 4)
    assert manifest.encoder == report.encoder == "custom"  # an encoder passed in by the caller
    assert manifest.scheme == DEFAULT_SCHEME and manifest.search == "exact"
    assert Manifest.from_json(manifest.to_json(), store.manifest_path) == manifest


def test_a_build_that_embeds_nothing_keeps_the_encoder_it_recorded(built, fake_encoder):
    store, _ = built
    edited = docs(**{**CORPUS, "codex": CORPUS["codex"]}, extra="")
    report = build_index(store, edited[:4], model="fake-model", encoder=fake_encoder, search="auto")
    assert not report.written and report.encoder == "custom"


def test_an_empty_collection_builds_an_empty_index(tmp_path, fake_encoder):
    store = IndexStore(tmp_path / "index")
    report = build_index(store, [], model="fake-model", encoder=fake_encoder)
    index = store.open()
    assert report.written and index.count == 0 and index.manifest.passages == 0
