"""Building an index incrementally: documents whose text is unchanged keep their
vectors; only new or edited ones are embedded. The result is written through
the store's atomic commit."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from . import __version__
from .embedding import Encoder, load_encoder, model_fingerprint, resolve_model_dir
from .errors import IndexMismatchError, PaperscopeError
from .lexical import BM25_PARAMS, LexicalIndex
from .records import Document
from .search import FORMAT_VERSION, load_index
from .settings import settings_change
from .store import IndexStore, sha256_bytes
from .text import PASSAGE_WORDS, passages

# Up to this many new passages are embedded by the light NumPy encoder (instant start, 24
# passages/s here); more go through sentence-transformers (7 s to start, then 55 passages/s
# here, and CUDA where there is one). The two take the same time at about 300 passages.
LIGHT_ENCODER_LIMIT = 300


@dataclass
class BuildReport:
    """What a build did."""

    embedded: list[str] = field(default_factory=list)
    reused: int = 0
    removed: list[str] = field(default_factory=list)
    total: int = 0
    model: str = ""
    reason: str = ""  # why everything was embedded again, when it was
    device: str = "cpu"
    written: bool = False  # False when the index was already up to date


def previous_vectors(store: IndexStore, model: str) -> tuple[dict[str, np.ndarray], str]:
    """Vectors of the current index by content hash, if they can be reused with `model`;
    else ({}, the reason they cannot)."""
    if store.read_manifest() is None:
        return {}, ""
    try:
        index = load_index(store)
    except PaperscopeError as err:
        return {}, f"the old index could not be read ({err.message})"
    reason = settings_change(index.manifest, model)
    if reason:
        return {}, reason
    if index.vectors.ntotal == 0:
        return {}, ""
    matrix = index.vectors.reconstruct_n(0, index.vectors.ntotal)
    return {entry["hash"]: rows for entry, rows in
            zip(index.manifest["documents"], np.split(matrix, index.bounds[1:-1]))}, ""


def build_index(store: IndexStore, documents: Sequence[Document], *, model: str,
                full: bool = False, encoder: Encoder | None = None,
                on_encoder: Callable[[str, int, str], None] | None = None,
                progress: Callable[[int], None] | None = None) -> BuildReport:
    """Embed what changed and commit a new index of `documents` to `store`.

    `on_encoder(kind, count, reason)` is told which encoder embeds how many documents, and why
    everything is embedded again when it is, before the encoder loads."""
    import faiss

    report = BuildReport(total=len(documents), model=model)
    reusable, reason = ({}, "--full was asked for") if full else previous_vectors(store, model)
    report.reason = reason
    old_manifest = store.read_manifest() or {}
    old_ids = [entry["id"] for entry in old_manifest.get("documents", [])]
    new_ids = {doc.id for doc in documents}
    report.removed = [doc_id for doc_id in old_ids if doc_id not in new_ids]

    hashes = [doc.content_hash for doc in documents]
    todo = [i for i, h in enumerate(hashes) if h not in reusable]
    report.embedded = [documents[i].id for i in todo]
    report.reused = len(documents) - len(todo)
    documents_json = json.dumps([doc.to_json() for doc in documents], ensure_ascii=False,
                                separators=(",", ":")).encode("utf-8")
    unchanged = (not todo and not reason and old_manifest
                 and old_manifest["files"].get("documents", {}).get("sha256") == sha256_bytes(documents_json))
    if unchanged:
        return report

    vectors: dict[int, np.ndarray] = {i: reusable[h] for i, h in enumerate(hashes) if h in reusable}
    if todo:
        texts = {i: passages(documents[i]) for i in todo}
        flat = [text for i in todo for text in texts[i]]
        if encoder is None:
            light = len(flat) <= LIGHT_ENCODER_LIMIT
            if on_encoder:
                on_encoder("light" if light else "sentence-transformers", len(todo), reason)
            encoder = load_encoder(model, light=light)
        report.device = getattr(encoder, "device", "cpu")
        fresh = encoder.encode(flat, progress=_per_document(progress, [len(texts[i]) for i in todo]))
        start = 0
        for i in todo:
            vectors[i] = fresh[start:start + len(texts[i])]
            start += len(texts[i])
    dimension = encoder.dimension if encoder else (
        next(iter(vectors.values())).shape[1] if vectors else old_manifest.get("dimension", 0))
    matrix = np.vstack([vectors[i] for i in range(len(documents))]).astype(np.float32) \
        if documents else np.zeros((0, dimension), dtype=np.float32)
    if matrix.shape[1] != dimension:
        raise IndexMismatchError(f"The model {model} gives vectors of dimension {matrix.shape[1]}, "
                                 f"expected {dimension}.")
    flat_index = faiss.IndexFlatIP(dimension)
    flat_index.add(matrix)
    lexical = LexicalIndex.build([doc.embedding_text for doc in documents])
    model_dir = resolve_model_dir(model)
    manifest = {
        "format": FORMAT_VERSION,
        "model": model,
        "model_fingerprint": model_fingerprint(model_dir) if model_dir else None,
        "dimension": dimension,
        "built_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "count": len(documents),
        "lexical": {"library": "bm25s", "stemmer": "english", **BM25_PARAMS},
        "versions": _versions(),
        "passage_words": list(PASSAGE_WORDS),
        "documents": [{"id": doc.id, "hash": h, "passages": len(vectors[i])}
                      for i, (doc, h) in enumerate(zip(documents, hashes))],
    }
    store.commit({
        "vectors": ("faiss", faiss.serialize_index(flat_index).tobytes()),
        "documents": ("json", documents_json),
        "lexical": ("npz", lexical.to_bytes()),
    }, manifest)
    report.written = True
    return report


def _per_document(progress: Callable[[int], None] | None, sizes: list[int]):
    """Turn the encoder's progress in passages into progress in documents."""
    if progress is None:
        return None
    bounds = np.cumsum(sizes)
    state = {"passages": 0, "documents": 0}

    def advance(count: int) -> None:
        state["passages"] += count
        done = int(np.searchsorted(bounds, state["passages"], side="right"))
        if done > state["documents"]:
            progress(done - state["documents"])
            state["documents"] = done

    return advance


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"paperscope": __version__}
    for package in ("faiss-cpu", "bm25s", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found
