"""The ONNX build encoder (issue 19) reproduces sentence-transformers in fp32, stays close in
int8, caches its graphs under paperscope's cache folder and rebuilds a damaged one.

The models are the tiny random BERTs of test_light_encoder (hidden size 32, 2 layers), made
locally; nothing is downloaded."""

import hashlib
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from paperscope import onnx_encoder
from paperscope.embedding import LightEncoder, SentenceTransformerEncoder
from paperscope.errors import ModelUnavailableError
from paperscope.onnx_encoder import OnnxEncoder

from .test_light_encoder import TEXTS, build_model, edit_json


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build_model(tmp_path_factory.mktemp("models") / "base")


def light_vectors(model_dir: Path) -> np.ndarray:
    return LightEncoder(str(model_dir), model_dir).encode(TEXTS)


def test_fp32_reproduces_the_reference_vectors(model, tmp_path):
    encoder = OnnxEncoder(str(model), variant="fp32", cache=tmp_path, threads=1)
    vectors = encoder.encode(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), encoder.dimension)
    assert np.abs(vectors - light_vectors(model)).max() <= 1e-5
    assert encoder.kind == "onnx-fp32" and encoder.model_name == str(model)


def test_int8_stays_close(model, tmp_path):
    encoder = OnnxEncoder(str(model), variant="int8", cache=tmp_path, threads=1)
    cosine = (encoder.encode(TEXTS) * light_vectors(model)).sum(axis=1)
    assert encoder.kind == "onnx-int8"
    assert cosine.min() > 0.97


def test_progress_counts_texts_and_order_is_kept(model, tmp_path):
    encoder = OnnxEncoder(str(model), variant="fp32", cache=tmp_path, threads=1, batch_size=2)
    done: list[int] = []
    vectors = encoder.encode(TEXTS, progress=done.append)
    assert sum(done) == len(TEXTS) and max(done) <= 2
    one_by_one = np.vstack([encoder.encode([text]) for text in TEXTS])
    assert np.abs(vectors - one_by_one).max() <= 1e-5
    assert encoder.encode([]).shape == (0, encoder.dimension)


def test_the_cache_is_reused(model, tmp_path, monkeypatch):
    first = OnnxEncoder(str(model), variant="int8", cache=tmp_path, threads=1)
    fp32 = OnnxEncoder(str(model), variant="fp32", cache=tmp_path, threads=1)
    assert fp32.path != first.path  # a file per variant, named by the model's fingerprint
    stamp = first.path.stat().st_mtime_ns

    def never(*args):
        raise AssertionError("the cached graph was made again")

    monkeypatch.setattr(onnx_encoder, "_graph_bytes", never)
    second = OnnxEncoder(str(model), variant="int8", cache=tmp_path, threads=1)
    assert second.path == first.path and second.path.stat().st_mtime_ns == stamp
    assert np.array_equal(second.encode(TEXTS), first.encode(TEXTS))


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "no-sidecar", "bad-sidecar"])
def test_a_damaged_cache_file_is_rebuilt(model, tmp_path, damage, caplog):
    good = OnnxEncoder(str(model), variant="fp32", cache=tmp_path, threads=1)
    expected = good.encode(TEXTS)
    path = good.path
    data = path.read_bytes()
    sidecar = path.with_suffix(".sha256")
    if damage == "flip":
        position = len(data) - 100  # inside a weight: the graph would still load
        path.write_bytes(data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1:])
    elif damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "no-sidecar":
        sidecar.unlink()
    else:
        sidecar.write_text("not a digest\n")
    with caplog.at_level(logging.WARNING, logger="paperscope.onnx_encoder"):
        again = OnnxEncoder(str(model), variant="fp32", cache=tmp_path, threads=1)
    assert "damaged" in caplog.text
    assert again.path.read_bytes() == data
    assert np.array_equal(again.encode(TEXTS), expected)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary file


def test_a_graph_the_runtime_rejects_is_rebuilt(model, tmp_path, monkeypatch):
    good = OnnxEncoder(str(model), variant="fp32", cache=tmp_path, threads=1)
    data = good.path.read_bytes()
    junk = b"not an onnx graph"
    good.path.write_bytes(junk)  # a file whose sidecar agrees, yet which the runtime rejects
    good.path.with_suffix(".sha256").write_text(hashlib.sha256(junk).hexdigest())
    again = OnnxEncoder(str(model), variant="fp32", cache=tmp_path, threads=1)
    assert again.path.read_bytes() == data


def test_truncation_names_the_variant(model, tmp_path):
    encoder = OnnxEncoder(str(model), variant="fp32", cache=tmp_path, threads=1, max_length=8)
    assert encoder.kind == "onnx-fp32-8"
    long = encoder.encode(["the model " * 20])
    short = encoder.encode(["the model the model the model"])  # [CLS] + 6 pieces + [SEP]
    assert np.abs(long - short).max() <= 1e-5
    with pytest.raises(ValueError, match="max_length"):
        OnnxEncoder(str(model), variant="fp32", cache=tmp_path, max_length=65)
    with pytest.raises(ValueError, match="variant"):
        OnnxEncoder(str(model), variant="fp16", cache=tmp_path)


def test_declines_a_model_it_cannot_run(model, tmp_path):
    other = Path(shutil.copytree(model, tmp_path / "other"))
    edit_json(other / "config.json", hidden_act="gelu_new")
    assert not OnnxEncoder.supports(other) and OnnxEncoder.supports(model)
    with pytest.raises(ModelUnavailableError):
        OnnxEncoder(str(other), cache=tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("options", [
    {"pooling": "mean"},
    {"pooling": "cls", "normalize": False},
    {"pooling": "max"},
    {"dtype": "float16"},
    {"prompts": {"query": "query: "}, "default_prompt_name": "query"},
])
def test_matches_sentence_transformers(tmp_path, options):
    folder = build_model(tmp_path / "model", **options)
    expected = SentenceTransformerEncoder(str(folder)).encode(TEXTS)
    fp32 = OnnxEncoder(str(folder), variant="fp32", cache=tmp_path / "cache", threads=1)
    assert np.abs(fp32.encode(TEXTS) - expected).max() <= 1e-5
    int8 = OnnxEncoder(str(folder), variant="int8", cache=tmp_path / "cache", threads=1)
    assert (int8.encode(TEXTS) * expected).sum(axis=1).min() > 0.97
