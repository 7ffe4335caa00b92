"""What large indexes do differently (with the fake encoder, on small corpora): the BM25 matrix
built in sorted runs merged on disk, float16 vectors and BM25 weights, the document table's
texts compressed with a dictionary."""

import json
import sqlite3

import numpy as np
import pytest

from paperscope.errors import IndexCorruptError
from paperscope.index import IndexStore
from paperscope.indexer import build_index
from paperscope.lexical import build_lexical, build_lexical_streamed, default_stopwords
from paperscope.records import Document
from paperscope.search import best_passage_scores, rank

WORDS = ["adapter", "quantized", "reward", "code", "vision", "speech", "graph", "protein",
         "fine-tuning", "low-rank", "the", "of", "models"]


def corpus(count):
    return [Document(id=f"d{i}", title=f"Paper {i} on {WORDS[i % 13]}",
                     text=" ".join(WORDS[(i * k) % 13] for k in range(1, 2 + i % 7)) + f" study {i % 50}",
                     meta={"year": 2020 + i % 5, "authors": [f"Author {i % 11}"], "section": f"S{i % 3}",
                           "kind": "paper" if i % 4 else None})
            for i in range(count)]


@pytest.mark.parametrize("options", [{}, {"batch_documents": 7, "range_postings": 5},
                                     {"batch_documents": 1, "range_postings": 1}])
def test_the_streamed_bm25_build_gives_the_in_memory_arrays(tmp_path, options):
    texts = [doc.embedding_text for doc in corpus(120)] + ["", "the of", "fine-tuning fine-tuning"]
    expected = build_lexical(texts, default_stopwords())
    streamed = build_lexical_streamed(texts, default_stopwords(), tmp_path, **options)
    assert streamed.terms == expected.terms and streamed.num_docs == expected.num_docs
    for got, want in ((streamed.data, expected.data), (streamed.indices, expected.indices),
                      (streamed.indptr, expected.indptr)):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("version", [1, 2])
def test_the_streamed_bm25_build_spells_and_joins_words_as_the_tokenizer_does(tmp_path, version):
    # British spellings are made American (version 2), in hyphenated words too; words that are
    # stop words only once spelled the American way, and three-part hyphenated words.
    texts = ["The behaviour of colour-coded quantisation", "quantization behavior color-coded",
             "state-of-the-art self-supervised optimisation-based centre", "modelling modeling",
             "catalogue-centre fine-tuning fine-tuned", "grey-box analysed analyzed"] * 3
    expected = build_lexical(texts, default_stopwords(), version)
    streamed = build_lexical_streamed(texts, default_stopwords(), tmp_path, version=version,
                                      batch_documents=4, range_postings=3)
    assert streamed.terms == expected.terms
    for got, want in ((streamed.data, expected.data), (streamed.indices, expected.indices),
                      (streamed.indptr, expected.indptr)):
        np.testing.assert_array_equal(got, want)


def test_a_manifest_with_an_unknown_array_type_is_refused(both):
    _, _, compact = both
    raw = json.loads(compact.manifest_path.read_text())
    compact.manifest_path.write_text(json.dumps({**raw, "vectors_dtype": "float64"}))
    with pytest.raises(IndexCorruptError, match="wrong type"):
        compact.open()


def test_streamed_bm25_of_nothing_and_float16_weights(tmp_path):
    empty = build_lexical_streamed([], default_stopwords(), tmp_path / "a")
    assert empty.terms == [] and list(empty.indptr) == [0] and len(empty.data) == 0
    texts = [doc.embedding_text for doc in corpus(40)]
    half = build_lexical_streamed(texts, default_stopwords(), tmp_path / "b", weights_dtype=np.float16)
    full = build_lexical(texts, default_stopwords())
    assert half.data.dtype == np.float16
    np.testing.assert_array_equal(half.data, full.data.astype(np.float16))


@pytest.fixture
def both(tmp_path, fake_encoder):
    """The same corpus as an exact index and as an approximate (compact) one."""
    documents = corpus(600)
    exact, compact = IndexStore(tmp_path / "exact"), IndexStore(tmp_path / "compact")
    build_index(exact, documents, model="fake-model", encoder=fake_encoder, search="exact")
    build_index(compact, documents, model="fake-model", encoder=fake_encoder, search="approximate")
    return documents, exact, compact


def test_an_approximate_index_is_compact_and_reads_back_the_same(both):
    documents, exact, compact = both
    raw = json.loads(compact.manifest_path.read_text())
    assert raw["format"] == 5 and raw["vectors_dtype"] == "float16"
    assert raw["lexical"]["weights_dtype"] == "float16" and "zdict" in raw["files"]
    plain = json.loads(exact.manifest_path.read_text())
    assert plain["format"] == 3 and "vectors_dtype" not in plain
    assert "weights_dtype" not in plain["lexical"] and "zdict" not in plain["files"]
    manifest, exact_manifest = compact.read_manifest(), exact.read_manifest()
    assert manifest.compact and not exact_manifest.compact
    assert manifest.to_json() == raw and exact_manifest.to_json() == plain
    a, b = exact.open(), compact.open()
    assert b.vectors.dtype == np.float16 and a.vectors.dtype == np.float32
    assert b.passage_vectors(3).dtype == np.float32
    np.testing.assert_allclose(b.document_vector(3), a.document_vector(3), atol=2e-3)
    assert list(b.all_documents()) == list(a.all_documents()) == documents
    assert b.documents([5, 3]) == [documents[5], documents[3]]
    assert compact.indexed_meta(manifest) == exact.indexed_meta(exact_manifest)
    assert compact.indexed_hashes(manifest) == exact.indexed_hashes(exact_manifest)
    np.testing.assert_array_equal(np.asarray(b.facets), np.asarray(a.facets))
    assert (manifest.sections, manifest.kinds, manifest.tags) == \
        (exact_manifest.sections, exact_manifest.kinds, exact_manifest.tags)
    with sqlite3.connect(compact.directory / manifest.files["documents"].file) as db:
        kinds = {row[0] for row in db.execute("SELECT typeof(title) FROM documents UNION "
                                              "SELECT typeof(text) FROM documents")}
        keys = {row[0] for row in db.execute("SELECT typeof(key) FROM names")}
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
    assert kinds == {"blob"} and keys == {"integer"} and page_size == 65536
    from paperscope.text import name_key

    for doc in documents[:50:7]:
        assert b.named(name_key(doc.title)) == a.named(name_key(doc.title)) != []
        assert b.named(name_key(doc.id)) == a.named(name_key(doc.id)) != []
    compact.verify()


def _re_sign(store):
    """The manifest signs the files as they now are, as a hostile or an older build would."""
    from paperscope.index import _hash_file, quick_check

    manifest = json.loads(store.manifest_path.read_text())
    for info in manifest["files"].values():
        path = store.directory / info["file"]
        info.update(bytes=path.stat().st_size, check=quick_check(path, path.stat().st_size),
                    sha256=_hash_file(path))
    store.manifest_path.write_text(json.dumps(manifest))


def test_a_name_lookup_never_takes_a_hash_collision_for_a_match(tmp_path, fake_encoder, monkeypatch):
    # Every name hashes to one of three keys: the names table proposes a third of the corpus,
    # and only the documents truly called so come back.
    from paperscope import index as index_module
    from paperscope.text import name_key

    monkeypatch.setattr(index_module, "name_hash", lambda key: len(key) % 3)
    documents = [*corpus(60), Document(id="twin", title="Paper 7 on protein", text="x", meta={})]
    store = IndexStore(tmp_path / "colliding")
    build_index(store, documents, model="fake-model", encoder=fake_encoder, search="approximate")
    opened = store.open()
    assert opened.manifest.hashed_names
    assert opened.named(name_key("Paper 7 on protein")) == [7, 60]
    assert opened.named("d12") == [12]
    assert opened.named("paper 7 on") == opened.named("nothing of the kind") == []


def test_a_format_4_index_with_its_names_as_text_still_opens_and_searches(both, fake_encoder):
    # What the build before format 5 wrote: the same files, titles as text and the names
    # table keyed by the names.
    from paperscope.text import document_names, name_key

    documents, exact, compact = both
    raw = json.loads(compact.manifest_path.read_text())
    with sqlite3.connect(compact.directory / raw["files"]["documents"]["file"]) as db:
        db.execute("DROP TABLE names")
        db.execute("CREATE TABLE names (key TEXT NOT NULL, position INTEGER NOT NULL, "
                   "PRIMARY KEY (key, position)) WITHOUT ROWID")
        db.executemany("INSERT INTO names VALUES (?, ?)", [
            (key, position) for position, doc in enumerate(documents) for key in document_names(doc)])
        db.executemany("UPDATE documents SET title = ? WHERE position = ?",
                       [(doc.title, position) for position, doc in enumerate(documents)])
    compact.manifest_path.write_text(json.dumps({**raw, "format": 4}))
    _re_sign(compact)
    manifest = compact.read_manifest()
    assert manifest.format == 4 and not manifest.hashed_names and manifest.compact
    assert manifest.to_json()["format"] == 4
    old, plain = compact.open(), exact.open()
    for doc in documents[:50:7]:
        assert old.named(name_key(doc.title)) == plain.named(name_key(doc.title)) != []
    assert old.named("no such paper") == []
    vector = fake_encoder.encode(["adapter study"])[0]
    top = rank(old, query_text=documents[9].title, query_vector=vector, mode="hybrid", k=5)
    assert top[0][0] == 9 and old.documents([9]) == [documents[9]]


def test_papers_dated_since_a_day_are_found_in_a_compact_index_too(tmp_path, fake_encoder):
    """The dates sit in compressed metadata in a compact index (they were once read by SQL's
    json_extract, which cannot see through the compression)."""
    dates = ["2024-03-01", "2024-11", "2023-12-31", "", "2025-01-02", "2024", None] * 10
    documents = [Document(d.id, d.title, d.text, {**d.meta, "year": int(date[:4]) if date else None,
                                                  **({"date": date} if date is not None else {})})
                 for d, date in zip(corpus(70), dates, strict=True)]
    found = {}
    for search in ("exact", "approximate"):
        store = IndexStore(tmp_path / search)
        build_index(store, documents, model="fake-model", encoder=fake_encoder, search=search)
        index = store.open()
        found[search] = {day: index.dated_since(day) for day in ("2024-11-15", "2024", "2025", "2026")}
    assert found["exact"] == found["approximate"]
    kept = {day: [i for i, date in enumerate(dates) if date in wanted]
            for day, wanted in [("2024-11-15", {"2024-11", "2025-01-02", "2024"}),  # the coarser precision
                                ("2024", {"2024-03-01", "2024-11", "2025-01-02", "2024"}),
                                ("2025", {"2025-01-02"}), ("2026", set())]}
    assert found["exact"] == kept


def test_float16_rescoring_keeps_the_ranking(both, fake_encoder):
    _, exact, compact = both
    a, b = exact.open(), compact.open()
    for query in ["adapter study", "quantized reward 7", "protein graph", "low-rank fine-tuning models"]:
        vector = fake_encoder.encode([query])[0]
        full, half = best_passage_scores(a, vector), best_passage_scores(b, vector)
        np.testing.assert_allclose(half, full, atol=2e-3)
        picked = np.arange(0, a.count, 3)
        np.testing.assert_allclose(best_passage_scores(b, vector, picked), full[picked], atol=2e-3)
        for mode in ("dense", "hybrid", "lexical"):
            top_a = [i for i, _ in rank(a, query_text=query, query_vector=vector, mode=mode, k=10)]
            top_b = [i for i, _ in rank(b, query_text=query, query_vector=vector, mode=mode, k=10)]
            assert len(set(top_a) & set(top_b)) >= 9, (query, mode)


def test_a_rebuild_reuses_the_float16_vectors(both, fake_encoder):
    documents, _, compact = both
    before = fake_encoder.embedded
    edited = [*documents[:-1], Document(id="new", title="A new paper", text="speech graph", meta={})]
    report = build_index(compact, edited, model="fake-model", encoder=fake_encoder, search="approximate")
    assert report.embedded == ["new"] and fake_encoder.embedded == before + 1
    assert compact.open().documents([len(edited) - 1])[0].id == "new"


def test_a_damaged_compressed_text_is_refused(both):
    _, _, compact = both
    manifest = json.loads(compact.manifest_path.read_text())
    with sqlite3.connect(compact.directory / manifest["files"]["documents"]["file"]) as db:
        db.execute("UPDATE documents SET text = x'00010203' WHERE position = 2")
    _re_sign(compact)
    index = compact.open()
    assert index.documents([1])[0].id == "d1"
    with pytest.raises(IndexCorruptError, match="disagree"):
        index.documents([2])


def test_a_scratch_folder_of_a_killed_build_is_removed(both):
    _, _, compact = both
    leftover = compact.directory / ".bm25.0123456789ab.tmp"
    leftover.mkdir()
    (leftover / "run-00000.bin").write_bytes(b"x" * 100)
    with compact.write_lock():
        pass
    assert not leftover.exists()


def test_a_rebuilt_catalogue_index_has_the_same_bytes(library_dir):
    # Only approximate indexes are compact: the catalogue's exact index, rebuilt from its own
    # vectors, is the committed one byte for byte, manifest included.
    from typer.testing import CliRunner

    from paperscope.cli import app

    index = library_dir / "index"
    before = {path.name: path.read_bytes() for path in index.iterdir()
              if path.is_file() and not path.name.startswith(".")}
    manifest = json.loads((index / "manifest.json").read_text())
    manifest["documents_digest"] = "0" * len(manifest["documents_digest"])  # forces a rewrite
    (index / "manifest.json").write_text(json.dumps(manifest, indent=2))
    built = CliRunner().invoke(app, ["--library", str(library_dir), "build"])
    assert built.exit_code == 0 and "0 embedded" in built.output
    after = {path.name: path.read_bytes() for path in index.iterdir()
              if path.is_file() and not path.name.startswith(".")}
    assert after.keys() == before.keys()
    assert [name for name in before if after[name] != before[name]] == []
