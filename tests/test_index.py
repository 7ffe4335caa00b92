"""The index format and its builds: incremental builds, resumable chunks, atomic commits,
damaged and hostile files (with the fake encoder)."""

import json
import os

import numpy as np
import pytest

from paperscope import chunks
from paperscope import files as files_module
from paperscope.errors import IndexCorruptError, IndexMismatchError, IndexMissingError
from paperscope.index import IndexStore
from paperscope.indexer import build_index
from paperscope.records import Document
from paperscope.text import passages

from .conftest import CORPUS, docs, many_docs

DATA_FILES = ["bm25data", "bm25docs", "bm25ptr", "bounds", "documents", "facets", "vectors"]


def test_first_build_embeds_everything_and_writes_a_manifest(built):
    store, report = built
    assert report.embedded == ["lora", "qlora", "rlhf", "codex"] and report.reused == 0
    manifest = json.loads(store.manifest_path.read_text())
    assert manifest["model"] == "fake-model" and manifest["dimension"] == 32
    assert manifest["count"] == 4 and manifest["search"] == {"kind": "exact"}
    assert manifest["passages_scheme"] == {"name": "multi-scale", "words": [90, 55, 35]}
    assert sorted(manifest["files"]) == DATA_FILES
    index = store.open()
    assert index.vectors.shape == (4, 32) and index.ids()[2] == "rlhf"
    assert isinstance(index.vectors, np.memmap)  # read in place, not loaded
    assert not store.chunks_dir.exists()  # consumed chunks are removed


def test_editing_one_text_embeds_exactly_that_one(built, fake_encoder):
    store, _ = built
    before = fake_encoder.embedded
    edited = dict(CORPUS, rlhf="preference learning with human feedback")
    report = build_index(store, docs(**edited), model="fake-model", encoder=fake_encoder)
    assert report.embedded == ["rlhf"] and report.reused == 3 and report.written
    assert fake_encoder.embedded - before == 1
    assert fake_encoder.calls[-1] == ["RLHF. preference learning with human feedback"]
    index = store.open()
    fresh = fake_encoder.encode(["RLHF. preference learning with human feedback"])[0]
    np.testing.assert_allclose(index.document_vector(2), fresh, atol=1e-6)
    np.testing.assert_allclose(index.document_vector(0), fake_encoder.encode([f"LORA. {CORPUS['lora']}"])[0],
                               atol=1e-6)


def test_an_unchanged_catalogue_writes_nothing(built, fake_encoder):
    store, _ = built
    stamp = store.manifest_path.stat().st_mtime_ns
    report = build_index(store, docs(**CORPUS), model="fake-model", encoder=fake_encoder)
    assert not report.written and report.embedded == [] and store.manifest_path.stat().st_mtime_ns == stamp


def test_a_metadata_edit_rewrites_the_index_without_embedding(built, fake_encoder):
    store, _ = built
    moved = docs(**CORPUS)
    moved[0] = Document(moved[0].id, moved[0].title, moved[0].text, {"section": "Other", "kind": "paper"})
    report = build_index(store, moved, model="fake-model", encoder=fake_encoder)
    assert report.written and report.embedded == []
    assert store.open().document(0).meta["section"] == "Other"


def test_removed_entries_leave_the_index_and_old_files_are_deleted(built, fake_encoder):
    store, _ = built
    smaller = {k: v for k, v in CORPUS.items() if k != "codex"}
    report = build_index(store, docs(**smaller), model="fake-model", encoder=fake_encoder)
    assert report.removed == ["codex"] and report.embedded == []
    assert store.open().count == 3
    data_files = sorted(p.name.split("-")[0] for p in store.directory.iterdir() if "-" in p.name)
    assert data_files == DATA_FILES


def test_a_model_change_or_full_build_embeds_everything(built, fake_encoder):
    store, _ = built
    report = build_index(store, docs(**CORPUS), model="other-model", encoder=fake_encoder)
    assert len(report.embedded) == 4 and "model changed from fake-model to other-model" in report.reason
    report = build_index(store, docs(**CORPUS), model="other-model", encoder=fake_encoder, full=True)
    assert len(report.embedded) == 4


def test_a_change_of_passage_lengths_or_scheme_embeds_everything(built, fake_encoder, monkeypatch):
    store, _ = built
    monkeypatch.setitem(__import__("paperscope.text").text.SCHEMES, "multi-scale", (60,))
    report = build_index(store, docs(**CORPUS), model="fake-model", encoder=fake_encoder)
    assert len(report.embedded) == 4
    assert report.reason == "the passage lengths changed from 90, 55 and 35 to 60 words"
    report = build_index(store, docs(**CORPUS), model="fake-model", encoder=fake_encoder, scheme="whole")
    assert report.reason == "the passage scheme changed from multi-scale to whole"
    assert store.open().vectors.shape == (4, 32)  # one vector a document


def test_passages_cover_the_text_at_every_length_once():
    sentence = "Sentence {} has exactly eight words in it."
    long = Document(id="a", title="Title", text=" ".join(sentence.format(i) for i in range(20)))
    texts = passages(long)
    assert all(text.startswith("Title. Sentence") for text in texts) and len(set(texts)) == len(texts)
    sizes = [len(text.split()) - 1 for text in texts]  # minus the title
    assert sizes == [88, 72] + [48] * 3 + [16] + [32] * 5
    assert passages(long, (90,)) == texts[:2]
    assert passages(long, ()) == [long.embedding_text]
    short = Document(id="b", title="Short", text="One sentence only.")
    assert passages(short) == ["Short. One sentence only."]


class Interrupting:
    """Wraps an encoder and raises KeyboardInterrupt on its n-th call."""

    def __init__(self, encoder, calls):
        self.inner, self.left = encoder, calls
        self.model_name, self.dimension = encoder.model_name, encoder.dimension

    def encode(self, texts, progress=None):
        self.left -= 1
        if self.left < 0:
            raise KeyboardInterrupt
        return self.inner.encode(texts, progress)


def test_an_interrupted_build_resumes_from_its_committed_chunks(tmp_path, fake_encoder):
    store = IndexStore(tmp_path / "index")
    corpus = many_docs(50)
    with pytest.raises(KeyboardInterrupt):
        build_index(store, corpus, model="fake-model", encoder=Interrupting(fake_encoder, 3),
                    chunk_documents=10)
    assert store.read_manifest() is None  # nothing half-written
    assert len(list(chunks.chunk_files(store.chunks_dir))) == 3
    before = fake_encoder.embedded
    report = build_index(store, corpus, model="fake-model", encoder=fake_encoder, chunk_documents=10)
    assert report.resumed == 30 and len(report.embedded) == 20 and fake_encoder.embedded - before == 20
    index = store.open()
    assert index.count == 50 and not store.chunks_dir.exists()
    np.testing.assert_allclose(index.document_vector(7),
                               fake_encoder.encode([corpus[7].embedding_text])[0], atol=1e-6)


class Clocked:
    """Wraps an encoder: each passage takes `seconds` on a fake clock, the build's own."""

    def __init__(self, encoder, seconds, monkeypatch):
        from paperscope import indexer

        self.inner, self.seconds, self.now = encoder, seconds, 0.0
        self.model_name, self.dimension = encoder.model_name, encoder.dimension
        monkeypatch.setattr(indexer, "_clock", lambda: self.now)

    def encode(self, texts, progress=None):
        self.now += self.seconds * len(texts)
        return self.inner.encode(texts, progress)


def test_chunks_are_committed_by_time_as_well_as_by_count(tmp_path, fake_encoder, monkeypatch):
    """A kill loses at most about CHUNK_SECONDS of work, however slow the model: the chunks
    after the first hold what the speed measured so far embeds in that time (issue 19)."""
    from paperscope import indexer

    monkeypatch.setattr(indexer, "CHUNK_SECONDS", 10.0)
    monkeypatch.setattr(indexer, "FIRST_CHUNK_CHARACTERS", 100)
    slow = Clocked(fake_encoder, 0.5, monkeypatch)  # 20 passages in CHUNK_SECONDS
    corpus = many_docs(200)
    report = build_index(IndexStore(tmp_path / "index"), corpus, model="fake-model", encoder=slow,
                         scheme="whole")
    sizes = [len(call) for call in fake_encoder.calls]
    assert report.written and sum(sizes) == 200 and len(sizes) > 5
    assert sizes[0] < 20 and max(sizes) * 0.5 <= 10.0 + 0.5  # a chunk: under CHUNK_SECONDS (+ one document)
    assert max(sizes) >= 15  # sized by the measured speed, not one document at a time
    fast = build_index(IndexStore(tmp_path / "fast"), corpus, model="fake-model", encoder=fake_encoder,
                       scheme="whole", chunk_documents=50)
    quick = [len(call) for call in fake_encoder.calls[len(sizes):]]
    assert fast.written and sum(quick) == 200 and quick[1:4] == [50] * 3  # by count when fast


def long_docs(count):
    sentence = "The {} model improves {} results on a benchmark of many tasks."
    words = ["adapter", "quantized", "reward", "code", "vision", "speech", "graph", "protein"]
    return [Document(id=f"l{i}", title=f"Paper {i}", text=" ".join(
        sentence.format(words[(i + j) % 8], words[(i * j) % 8]) for j in range(14)), meta={})
        for i in range(count)]


def test_the_default_scheme_takes_the_time_it_would_take_into_account(tmp_path, fake_encoder,
                                                                       monkeypatch, caplog):
    """Multi-scale passages unless embedding them here would take over SCHEME_BUDGET_SECONDS at the
    speed measured on a sample; then whole abstracts, said with how to ask for passages."""
    from paperscope.indexer import SCHEME_BUDGET_SECONDS, WHOLE_SCHEME_FROM, default_scheme

    corpus = long_docs(600)
    per_passage = SCHEME_BUDGET_SECONDS / sum(len(passages(doc)) for doc in corpus)
    quick = Clocked(fake_encoder, per_passage / 2, monkeypatch)
    assert default_scheme(corpus, "fake-model", quick)[0] == "multi-scale"
    assert default_scheme(corpus[:100], "fake-model", Clocked(fake_encoder, 60.0, monkeypatch))[0] == \
        "multi-scale"  # too few passages to be long anywhere: not even measured
    slow = Clocked(fake_encoder, per_passage * 2, monkeypatch)
    report = build_index(IndexStore(tmp_path / "index"), corpus, model="fake-model", encoder=slow)
    assert report.scheme == "whole" and report.written
    assert "--passages multi-scale" in caplog.text and "about 20 min here" in caplog.text
    assert default_scheme(many_docs(WHOLE_SCHEME_FROM + 1), "fake-model", fake_encoder)[0] == "whole"


def test_plan_embedding_is_what_is_left(tmp_path, fake_encoder):
    """The plan a build (or a Ray driver) works from: the chunk files' documents are done."""
    from paperscope.indexer import plan_embedding

    store = IndexStore(tmp_path / "index")
    corpus = many_docs(30)
    with pytest.raises(KeyboardInterrupt):
        build_index(store, corpus, model="fake-model", encoder=Interrupting(fake_encoder, 2),
                    chunk_documents=10, scheme="whole")
    plan = plan_embedding(store, corpus, model="fake-model", scheme="whole")
    assert plan.todo == list(range(20, 30)) and plan.resumed == 20
    assert plan.ranges(4) == [[20, 21, 22, 23], [24, 25, 26, 27], [28, 29]]
    assert plan_embedding(store, corpus, model="fake-model", scheme="multi-scale").todo == list(range(30))


def test_chunks_made_elsewhere_are_used_when_they_match(tmp_path, fake_encoder):
    store = IndexStore(tmp_path / "index")
    corpus = many_docs(20)
    hashes = [d.content_hash for d in corpus[:10]]
    vectors = fake_encoder.encode([d.embedding_text for d in corpus[:10]])
    store.chunks_dir.mkdir(parents=True)
    for model in ("fake-model", "another-model"):
        chunks.write_chunk(store.chunks_dir, model=model, scheme="whole", source="gpu", start=0,
                           hashes=hashes, counts=[1] * 10, vectors=vectors.astype(np.float16),
                           dtype="float16")
    (store.chunks_dir / "chunk-000000000-000000010-000000000000.npz").write_bytes(b"garbage")
    before = fake_encoder.embedded
    report = build_index(store, corpus, model="fake-model", encoder=fake_encoder, scheme="whole")
    assert report.resumed == 10 and fake_encoder.embedded - before == 10
    np.testing.assert_allclose(store.open().document_vector(3), vectors[3], atol=1e-3)
    # the chunk of another model and the damaged file stay for whoever wants them
    assert len(list(store.chunks_dir.iterdir())) == 2


def test_a_crash_before_the_manifest_keeps_the_old_index(built, fake_encoder, monkeypatch):
    store, _ = built
    real_write = files_module.atomic_write_bytes

    def crash_on_manifest(path, data):
        if path.name == "manifest.json":
            raise KeyboardInterrupt("killed")
        real_write(path, data)

    monkeypatch.setattr(files_module, "atomic_write_bytes", crash_on_manifest)
    with pytest.raises(KeyboardInterrupt):
        build_index(store, docs(**dict(CORPUS, lora="changed")), model="fake-model", encoder=fake_encoder)
    monkeypatch.undo()
    index = store.open()
    assert index.document(0).text == CORPUS["lora"]
    assert not list(store.directory.glob(".*.tmp"))
    build_index(store, docs(**dict(CORPUS, lora="changed")), model="fake-model", encoder=fake_encoder)
    assert sorted(p.name.split("-")[0] for p in store.directory.iterdir() if "-" in p.name) == DATA_FILES


def _truncate(path):
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size - 8)


def _flip_middle_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _symlink(path):
    target = path.with_name("elsewhere.bin")
    target.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(target)


def _point_outside(store):
    manifest = json.loads(store.manifest_path.read_text())
    manifest["files"]["vectors"]["file"] = "../../etc/passwd"
    store.manifest_path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("damage, error, words", [
    (lambda s: _data_file(s, "vectors").write_bytes(b"\0" * 10), IndexCorruptError, "is damaged"),
    (lambda s: _truncate(_data_file(s, "bm25docs")), IndexCorruptError, "is damaged"),
    (lambda s: _symlink(_data_file(s, "vectors")), IndexCorruptError, "not a plain file"),
    (lambda s: _data_file(s, "documents").unlink(), IndexMissingError, "is missing"),
    (_point_outside, IndexCorruptError, "names no valid vectors file"),
    (lambda s: s.manifest_path.write_text("{not json"), IndexCorruptError, "manifest"),
    (lambda s: s.manifest_path.write_text("[" * 100_000), IndexCorruptError, "manifest"),
    (lambda s: s.manifest_path.unlink(), IndexMissingError, "No index"),
])
def test_damaged_files_are_named_with_the_repair_command(built, damage, error, words):
    store, _ = built
    damage(store)
    with pytest.raises(error) as caught:
        store.open()
    assert words in caught.value.message
    assert "paperscope build" in caught.value.hint


def test_a_changed_byte_in_the_middle_is_found_by_verify(tmp_path, fake_encoder):
    store = IndexStore(tmp_path / "index")
    build_index(store, many_docs(2000), model="fake-model", encoder=fake_encoder)
    _flip_middle_byte(_data_file(store, "vectors"))  # past the quick check's first and last 64 KiB
    store.open()  # the everyday check reads sizes and each file's ends only
    with pytest.raises(IndexCorruptError, match="is damaged"):
        store.verify()


def test_manifest_values_of_the_wrong_type_are_caught(built):
    store, _ = built
    manifest = json.loads(store.manifest_path.read_text())
    for key, value in (("count", "4"), ("count", 3), ("dimension", "32"), ("passages", None)):
        store.manifest_path.write_text(json.dumps({**manifest, key: value}))
        with pytest.raises(IndexCorruptError):
            store.open()
    store.manifest_path.write_text(json.dumps({**manifest, "format": 99}))
    with pytest.raises(IndexMismatchError, match="format 99"):
        store.open()


def test_an_index_of_format_2_asks_for_a_rebuild(built):
    store, _ = built
    manifest = json.loads(store.manifest_path.read_text())
    store.manifest_path.write_text(json.dumps({**manifest, "format": 2}))
    with pytest.raises(IndexMismatchError, match="format 2"):
        store.open()


def _data_file(store, name):
    manifest = json.loads(store.manifest_path.read_text())
    return store.directory / manifest["files"][name]["file"]


def test_document_names_come_from_id_title_head_and_parentheses():
    from paperscope.text import document_names

    doc = Document(id="illustrating-rlhf", title="Illustrating Reinforcement Learning from Human Feedback (RLHF)",
                   text="")
    assert {"rlhf", "illustrating rlhf"} <= document_names(doc)
    lora = Document(id="lora", title="LoRA: Low-Rank Adaptation of Large Language Models", text="")
    assert "lora" in document_names(lora) and "low rank adaptation" not in document_names(lora)


def test_undoing_an_edit_embeds_nothing_and_gives_the_same_index_bytes(built, fake_encoder):
    store, _ = built
    before = {p.name: p.read_bytes() for p in store.directory.iterdir() if p.is_file() and p.name != ".lock"}
    edited = build_index(store, docs(**dict(CORPUS, rlhf="preference learning")), model="fake-model",
                         encoder=fake_encoder)
    assert edited.embedded == ["rlhf"]
    undone = build_index(store, docs(**CORPUS), model="fake-model", encoder=fake_encoder)
    assert undone.embedded == [] and undone.resumed == 1
    after = {p.name: p.read_bytes() for p in store.directory.iterdir() if p.is_file() and p.name != ".lock"}
    assert after == before


def _resign(store):
    """Make the manifest match the files again, as a hostile repository would."""
    from paperscope.index import _hash_file, quick_check

    manifest = json.loads(store.manifest_path.read_text())
    for info in manifest["files"].values():
        path = store.directory / info["file"]
        size = path.stat().st_size
        info.update(bytes=size, check=quick_check(path, size), sha256=_hash_file(path))
    store.manifest_path.write_text(json.dumps(manifest))


def _sql(store, statement):
    import sqlite3

    with sqlite3.connect(_data_file(store, "documents")) as db:
        db.executescript(statement)


def _save_array(store, name, change):
    path = _data_file(store, name)
    values = np.load(path).copy()
    change(values)
    path.unlink()
    np.save(path, values)


ENDLESS_VIEW = ("ALTER TABLE documents RENAME TO d0; CREATE VIEW documents AS WITH RECURSIVE c(x) AS "
                "(SELECT 0 UNION ALL SELECT x + 1 FROM c) SELECT d.* FROM d0 d, c;")


@pytest.mark.parametrize("damage, words", [
    (lambda s: _sql(s, ENDLESS_VIEW), "holds more than a build writes"),
    (lambda s: _sql(s, "CREATE TRIGGER t AFTER INSERT ON names BEGIN SELECT 1; END;"), "a trigger"),
    (lambda s: _sql(s, "UPDATE documents SET meta = '{' WHERE id = 'lora'"), "metadata of the wrong type"),
    (lambda s: _sql(s, """UPDATE documents SET meta = '{"url": [1]}' WHERE id = 'lora'"""),
     "metadata of the wrong type"),
    (lambda s: _sql(s, """UPDATE documents SET meta = '{"year": "abc"}' WHERE id = 'lora'"""),
     "metadata of the wrong type"),
    (lambda s: _save_array(s, "bounds", lambda b: b.__setitem__(2, 10**9)), "in order"),
    (lambda s: _save_array(s, "bounds", lambda b: b.__setitem__(2, -100)), "in order"),
])
def test_a_hostile_index_whose_manifest_matches_is_refused_at_once(built, damage, words):
    store, _ = built
    damage(store)
    _resign(store)
    with pytest.raises(IndexCorruptError, match=words):
        index = store.open()
        [index.document(p) for p in range(index.count)]


def test_a_tag_list_that_is_text_is_a_damaged_manifest(built):
    store, _ = built
    manifest = json.loads(store.manifest_path.read_text())
    store.manifest_path.write_text(json.dumps({**manifest, "facets": {**manifest["facets"], "tags": "abc"}}))
    with pytest.raises(IndexCorruptError):
        store.open()


@pytest.mark.parametrize("name", ["manifest.json", "records.json"])
@pytest.mark.parametrize("make", ["devzero", "fifo"])
def test_small_index_files_that_are_devices_or_pipes_are_refused_without_reading(built, name, make):
    store, _ = built
    path = store.directory / name
    path.unlink(missing_ok=True)
    if make == "devzero":
        path.symlink_to("/dev/zero")
    else:
        os.mkfifo(path)  # opening it for reading would wait for a writer for ever
    with pytest.raises(IndexCorruptError, match="not a plain file"):
        store.read_manifest() if name == "manifest.json" else store.read_records()
