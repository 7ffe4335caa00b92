"""Embedding on Ray (issue 19): a local Ray cluster and a tiny random model over a few hundred
documents give the vectors a single-process build gives, and a job stopped half-way resumes (on
Ray or without it) from its finished chunks without embedding them again.

Ray binds every interface whatever it is asked, so the cluster runs inside a network namespace
of its own (`unshare -n`, as root, which CI is), where it binds 127.0.0.1."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from paperscope.index import IndexStore
from paperscope.indexer import build_index
from paperscope.records import Document

ROOT = Path(__file__).resolve().parent.parent


def documents(count: int = 300) -> list[Document]:
    words = ["adapter", "quantized", "reward", "code", "vision", "speech", "graph", "protein", "model"]
    return [Document(id=f"d{i}", title=f"Paper {i} on {words[i % 9]}", text=" ".join(
        f"The {words[(i * j) % 9]} study {j} finds that {words[(i + j) % 9]} helps." for j in range(10)),
        meta={"year": 2020 + i % 5}) for i in range(count)]


def _isolated() -> str:
    """Why Ray cannot be run here in a network namespace of its own ("" when it can)."""
    if importlib.util.find_spec("ray") is None:
        return 'ray is not installed (pip install "paperscope[ray]")'
    if not (shutil.which("unshare") and shutil.which("ip")):
        return "unshare or ip is missing"
    probe = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True)
    if probe.returncode:
        return "unshare -n is not permitted here (it needs root), and Ray must not bind the network"
    return ""


@pytest.mark.slow
def test_ray_build_matches_one_process_and_resumes_after_a_stop(tmp_path, monkeypatch):
    reason = _isolated()
    if reason:
        pytest.skip(reason)
    from tests.test_light_encoder import build_model

    model = str(build_model(tmp_path / "tiny-model"))
    # An exact encoder on both sides: int8 ONNX quantises each batch's activations, so its
    # vectors depend (by about 5e-5) on how ranges and chunks batch the passages.
    monkeypatch.setenv("PAPERSCOPE_BUILD_ENCODER", "onnx-fp32")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
           "OMP_NUM_THREADS": "1", "HOME": str(tmp_path)}  # Ray's token goes to HOME/.ray
    job = subprocess.run(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
                          sys.executable, str(ROOT / "tests" / "ray_job.py"), model, str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert job.returncode == 0, job.stderr[-4000:]
    summary = json.loads(job.stdout.strip().splitlines()[-1])
    assert summary["address"].startswith("127.0.0.1:")
    # Stopped after three ranges had come back: those three are committed, nothing else lost.
    assert summary["ray"]["stopped"] and summary["stopped"]["stopped"]
    assert summary["ray"]["chunked"] == summary["stopped"]["chunked"] == 75
    resumed = summary["resumed"]
    assert resumed["resumed"] == summary["ray"]["chunked"]
    assert resumed["embedded"] == 300 - summary["ray"]["chunked"]  # the finished ones not again
    assert "1 actor of 2 CPUs" in summary["notes"][0]

    corpus = documents()
    single = IndexStore(tmp_path / "single")
    build_index(single, corpus, model=model, scheme="multi-scale")
    expected = np.asarray(single.open().vectors)
    on_ray = np.asarray(IndexStore(tmp_path / "ray").open().vectors)
    assert on_ray.shape == expected.shape
    np.testing.assert_allclose(on_ray, expected, atol=1e-5)
    # The other stopped job resumes without Ray, from the chunks Ray's driver committed.
    report = build_index(IndexStore(tmp_path / "stopped"), corpus, model=model, scheme="multi-scale")
    assert report.resumed == summary["stopped"]["chunked"]
    assert len(report.embedded) == 300 - report.resumed
    np.testing.assert_allclose(np.asarray(IndexStore(tmp_path / "stopped").open().vectors), expected,
                               atol=1e-5)


def test_a_local_cluster_off_loopback_is_said_plainly():
    from paperscope.distributed import _warn_unless_loopback

    notes: list[str] = []
    _warn_unless_loopback("127.0.0.1:6379", notes.append)
    _warn_unless_loopback("[::1]:6379", notes.append)
    assert notes == []
    _warn_unless_loopback("10.0.3.7:6379", notes.append)
    assert len(notes) == 1 and "10.0.3.7" in notes[0] and "CVE-2023-48022" in notes[0]


def test_ranges_hold_under_a_minute_of_an_actor_and_share_the_work(tmp_path):
    from paperscope.distributed import RANGE_CHARACTERS_PER_CPU, Cluster, _range_size
    from paperscope.indexer import BuildReport, EmbeddingJob, plan_embedding

    corpus = documents(10_000)
    plan = plan_embedding(IndexStore(tmp_path / "index"), corpus, model="m", scheme="whole")
    job = EmbeddingJob(IndexStore(tmp_path / "index"), corpus, plan, BuildReport())
    size = _range_size(job, Cluster("local", 1, 0, 2, True))
    characters = sum(len(doc.embedding_text) for doc in corpus[:size])
    assert 0.8 * 2 * RANGE_CHARACTERS_PER_CPU <= characters <= 1.2 * 2 * RANGE_CHARACTERS_PER_CPU
    assert _range_size(job, Cluster("local", 50, 0, 1, True)) == 10_000 // 100  # two ranges an actor


def test_without_ray_installed_the_error_says_what_to_install(monkeypatch):
    from paperscope.distributed import _import_ray
    from paperscope.errors import UsageError

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UsageError) as raised:
        _import_ray()
    assert "paperscope[ray]" in raised.value.hint
