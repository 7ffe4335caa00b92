"""Incremental builds, atomic commits and damaged files (with a fake encoder)."""

import json

import numpy as np
import pytest

from paperscope import store as store_module
from paperscope.errors import IndexCorruptError, IndexMismatchError, IndexMissingError
from paperscope.indexer import build_index
from paperscope.records import Document
from paperscope.search import check_query, fuse, load_index, rank
from paperscope.store import IndexStore
from paperscope.text import passages


def docs(**texts):
    return [Document(id=key, title=key.upper(), text=text, meta={"section": "S", "kind": "paper"})
            for key, text in texts.items()]


CORPUS = dict(
    lora="low rank adaptation of large language models for finetuning",
    qlora="quantized low rank finetuning on one GPU",
    rlhf="reinforcement learning from human feedback with a reward model",
    codex="a language model trained on code evaluated on programming problems",
)


@pytest.fixture
def built(tmp_path, fake_encoder):
    store = IndexStore(tmp_path / "index")
    report = build_index(store, docs(**CORPUS), model="fake-model", encoder=fake_encoder)
    return store, report


def test_first_build_embeds_everything_and_writes_a_manifest(built):
    store, report = built
    assert report.embedded == ["lora", "qlora", "rlhf", "codex"] and report.reused == 0
    manifest = json.loads(store.manifest_path.read_text())
    assert manifest["model"] == "fake-model" and manifest["dimension"] == 32
    assert [d["id"] for d in manifest["documents"]] == list(CORPUS)
    assert set(manifest["files"]) == {"vectors", "documents", "lexical"}
    index = load_index(store)
    assert index.vectors.ntotal == 4 and index.documents[2].id == "rlhf"


def test_editing_one_text_embeds_exactly_that_one(built, fake_encoder):
    store, _ = built
    before = fake_encoder.embedded
    edited = dict(CORPUS, rlhf="preference learning with human feedback")
    report = build_index(store, docs(**edited), model="fake-model", encoder=fake_encoder)
    assert report.embedded == ["rlhf"] and report.reused == 3 and report.written
    assert fake_encoder.embedded - before == 1
    assert fake_encoder.calls[-1] == ["RLHF. preference learning with human feedback"]
    index = load_index(store)
    fresh = fake_encoder.encode(["RLHF. preference learning with human feedback"])[0]
    np.testing.assert_allclose(index.vector(2), fresh, atol=1e-6)


def test_an_unchanged_catalogue_writes_nothing(built, fake_encoder):
    store, _ = built
    stamp = store.manifest_path.stat().st_mtime_ns
    report = build_index(store, docs(**CORPUS), model="fake-model", encoder=fake_encoder)
    assert not report.written and report.embedded == [] and store.manifest_path.stat().st_mtime_ns == stamp


def test_removed_entries_leave_the_index_and_old_files_are_deleted(built, fake_encoder):
    store, _ = built
    smaller = {k: v for k, v in CORPUS.items() if k != "codex"}
    report = build_index(store, docs(**smaller), model="fake-model", encoder=fake_encoder)
    assert report.removed == ["codex"] and report.embedded == []
    assert len(load_index(store).documents) == 3
    data_files = sorted(p.name.split("-")[0] for p in store.directory.iterdir() if "-" in p.name)
    assert data_files == ["documents", "lexical", "vectors"]


def test_a_model_change_or_full_build_embeds_everything(built, fake_encoder):
    store, _ = built
    report = build_index(store, docs(**CORPUS), model="other-model", encoder=fake_encoder)
    assert len(report.embedded) == 4 and "model changed from fake-model to other-model" in report.reason
    report = build_index(store, docs(**CORPUS), model="other-model", encoder=fake_encoder, full=True)
    assert len(report.embedded) == 4


def test_a_change_of_passage_lengths_embeds_everything(built, fake_encoder, monkeypatch):
    store, _ = built
    assert json.loads(store.manifest_path.read_text())["passage_words"] == [90, 55, 35]
    for module in ("paperscope.indexer", "paperscope.settings"):
        monkeypatch.setattr(f"{module}.PASSAGE_WORDS", (60,))
    report = build_index(store, docs(**CORPUS), model="fake-model", encoder=fake_encoder)
    assert len(report.embedded) == 4
    assert report.reason == "the passage lengths changed from 90, 55 and 35 to 60 words"


def test_passages_cover_the_text_at_every_length_once():
    sentence = "Sentence {} has exactly eight words in it."
    long = Document(id="a", title="Title", text=" ".join(sentence.format(i) for i in range(20)))
    texts = passages(long)
    assert all(text.startswith("Title. Sentence") for text in texts) and len(set(texts)) == len(texts)
    sizes = [len(text.split()) - 1 for text in texts]  # minus the title
    assert sizes == [88, 72] + [48] * 3 + [16] + [32] * 5
    assert passages(long, (90,)) == texts[:2]
    short = Document(id="b", title="Short", text="One sentence only.")
    assert passages(short) == ["Short. One sentence only."]


def test_a_crash_before_the_manifest_keeps_the_old_index(built, fake_encoder, monkeypatch):
    store, _ = built
    real_write = store_module.atomic_write_bytes

    def crash_on_manifest(path, data):
        if path.name == "manifest.json":
            raise KeyboardInterrupt("killed")
        real_write(path, data)

    monkeypatch.setattr(store_module, "atomic_write_bytes", crash_on_manifest)
    with pytest.raises(KeyboardInterrupt):
        build_index(store, docs(**dict(CORPUS, lora="changed")), model="fake-model", encoder=fake_encoder)
    monkeypatch.undo()
    index = load_index(store)
    assert index.documents[0].text == CORPUS["lora"]
    assert not list(store.directory.glob("*.tmp"))


@pytest.mark.parametrize("damage, error, words", [
    (lambda s: _data_file(s, "vectors").write_bytes(b"\0" * 10), IndexCorruptError, "is damaged"),
    (lambda s: _data_file(s, "lexical").unlink(), IndexMissingError, "is missing"),
    (lambda s: s.manifest_path.write_text("{not json"), IndexCorruptError, "manifest"),
    (lambda s: s.manifest_path.unlink(), IndexMissingError, "No index"),
])
def test_damaged_files_are_named_with_the_repair_command(built, damage, error, words):
    store, _ = built
    damage(store)
    with pytest.raises(error) as caught:
        load_index(store)
    assert words in caught.value.message
    assert "paperscope build" in caught.value.hint


def test_rows_that_disagree_with_the_manifest_are_caught(built):
    store, _ = built
    manifest = json.loads(store.manifest_path.read_text())
    manifest["documents"] = manifest["documents"][:3]
    store.manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match="disagree with its manifest"):
        load_index(store)
    manifest["format"] = 99
    store.manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatchError, match="format 99"):
        load_index(store)


def test_a_vector_file_that_is_not_a_flat_index_is_refused(built):
    import faiss

    store, _ = built
    other = faiss.serialize_index(faiss.IndexHNSWFlat(32, 8)).tobytes()
    _data_file(store, "vectors").write_bytes(other)
    manifest = json.loads(store.manifest_path.read_text())
    manifest["files"]["vectors"].update(sha256=store_module.sha256_bytes(other), bytes=len(other))
    store.manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match="vector index .* cannot be read"):
        load_index(store)


def _data_file(store, name):
    manifest = json.loads(store.manifest_path.read_text())
    return store.directory / manifest["files"][name]["file"]


def test_ranking_modes_and_filters(built, fake_encoder):
    store, _ = built
    index = load_index(store)
    query = "low rank finetuning"
    vector = fake_encoder.encode([query])[0]
    lexical = rank(index, query_text=query, query_vector=None, mode="lexical", k=10)
    assert [index.documents[i].id for i, _ in lexical] == ["qlora", "lora"]  # no other matches
    hybrid = rank(index, query_text=query, query_vector=vector, mode="hybrid", k=2)
    assert {index.documents[i].id for i, _ in hybrid} == {"lora", "qlora"}
    only_rlhf = np.array([False, False, True, False])
    filtered = rank(index, query_text=query, query_vector=vector, mode="dense", k=5, allowed=only_rlhf)
    assert [index.documents[i].id for i, _ in filtered] == ["rlhf"]
    excluded = rank(index, query_text=query, query_vector=vector, mode="dense", k=5, exclude=0)
    assert 0 not in [i for i, _ in excluded] and len(excluded) == 3


def test_fusion_ignores_a_ranker_without_signal():
    dense = np.array([0.2, 0.9, 0.5], dtype=np.float32)
    mask = np.ones(3, dtype=bool)
    fused = fuse(dense, np.zeros(3, dtype=np.float32), mask)
    assert list(np.argsort(-fused)) == [1, 2, 0]


@pytest.mark.parametrize("raw, cleaned", [
    ("  LoRA\tadapters\n", "LoRA adapters"),
    ("rl\x00hf\x1b[31m", "rl hf [31m"),
    ("x" * 100_000, "x" * 2000),
    ("注意力机制", "注意力机制"),
])
def test_queries_are_cleaned_and_bounded(raw, cleaned):
    assert check_query(raw) == cleaned


@pytest.mark.parametrize("raw", ["", "   ", "\x00\x01"])
def test_empty_queries_are_refused(raw):
    from paperscope.errors import UsageError

    with pytest.raises(UsageError, match="empty"):
        check_query(raw)


def test_lexical_scores_equal_bm25s_own_scoring():
    import bm25s

    from paperscope.lexical import LexicalIndex, Tokenizer, default_stopwords

    texts = [f"{key} {text}" for key, text in CORPUS.items()] + ["fine-tuning of a model", ""]
    index = LexicalIndex.build(texts)
    index = LexicalIndex.from_bytes(index.to_bytes())
    tokenize = Tokenizer(default_stopwords())
    reference = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    reference.index([tokenize(t) for t in texts], show_progress=False)
    for query in ["low rank finetuning", "fine-tuning", "the model of models", "unknownword"]:
        known = [t for t in tokenize(query) if t in reference.vocab_dict]
        expected = reference.get_scores(known) if known else np.zeros(len(texts))
        np.testing.assert_allclose(index.scores(query), expected, rtol=1e-6)
    assert index.scores("finetuning")[4] > 0  # the hyphenated form is indexed joined too


def test_document_names_come_from_id_title_head_and_parentheses():
    from paperscope.search import document_names

    doc = Document(id="illustrating-rlhf", title="Illustrating Reinforcement Learning from Human Feedback (RLHF)",
                   text="")
    assert {"rlhf", "illustrating rlhf"} <= document_names(doc)
    lora = Document(id="lora", title="LoRA: Low-Rank Adaptation of Large Language Models", text="")
    assert "lora" in document_names(lora) and "low rank adaptation" not in document_names(lora)


def test_the_lexical_index_is_the_same_bytes_in_every_process():
    import os
    import subprocess
    import sys

    probe = ("import hashlib; from paperscope.lexical import LexicalIndex; "
             f"print(hashlib.sha256(LexicalIndex.build({list(CORPUS.values())!r}).to_bytes()).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2", "3")}
    assert len(digests) == 1
