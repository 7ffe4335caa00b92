"""The light encoder and where its model folder comes from."""

import os
from pathlib import Path

from paperscope.embedding import resolve_model_dir


def make_snapshot(repo: Path, revision: str) -> Path:
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    return snapshot


def test_hub_cache_follows_refs_main(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--org--name"
    named = make_snapshot(repo, "aaaa")
    make_snapshot(repo, "ffff")  # alphabetically last and newest, but not the one refs/main names
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("aaaa\n")
    assert resolve_model_dir("org/name") == named
    (repo / "refs" / "main").write_text("0123")  # a ref to a snapshot that is not there
    assert resolve_model_dir("org/name") is None


def test_hub_cache_without_a_ref_takes_the_newest_snapshot(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--org--name"
    newest = make_snapshot(repo, "aaaa")
    older = make_snapshot(repo, "ffff")
    os.utime(older, (1_000_000, 1_000_000))
    assert resolve_model_dir("org/name") == newest
    assert resolve_model_dir("org/other") is None
