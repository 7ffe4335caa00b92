"""A faster CPU encoder for builds: the model's BERT forward pass as an ONNX graph, run by
ONNX Runtime, optionally with int8 weights (issue 19).

The graph is written here, straight from the model folder's weights (the packaged
all-MiniLM-L6-v2 or any folder the NumPy `LightEncoder` reproduces), with ONNX Runtime's
fused CPU operators (Attention, SkipLayerNormalization, BiasGelu): no hub, no network, no
torch exporter. It uses the same tokenizer, prompt and pooling as `LightEncoder`, so its
vectors are those of sentence-transformers (fp32: to about 1e-6) and queries encoded by
`LightEncoder` stay compatible with them.

Variants (`kind`, which the manifest records):
- "onnx-fp32": the graph in float32;
- "onnx-int8": the same graph with int8 per-channel weights in its MatMul nodes (ONNX
  Runtime's dynamic quantisation; activations quantised per batch at run time). The
  attention projections (one fused Attention node), the embeddings and every LayerNorm stay
  float32. docs/experiments.md ("A faster CPU encoder") has the measurements.

The graph, and the quantised one, are cached under paperscope's cache folder, keyed by the
model's fingerprint, the variant and GRAPH_VERSION, written atomically with a sidecar holding
their SHA-256: a damaged or half-written file is rebuilt, never trusted.

onnx and onnxruntime are imported inside the functions that need them, so importing this
module costs nothing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from filelock import FileLock

from .embedding import (
    EncoderDeclined,
    LightEncoder,
    Progress,
    _light_spec,
    _LightSpec,
    _pool,
    model_fingerprint,
    padded_batches,
    resolve_model_dir,
)
from .errors import ModelUnavailableError
from .settings import build_threads

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

# Bump when the graph written by `_bert_graph` (or its quantisation) changes: old caches are
# then left alone and new files made.
GRAPH_VERSION = 1
VARIANTS = ("fp32", "int8")
# Texts tokenised and length-sorted together: padding stays small, memory bounded.
_SORT_CHUNK = 8192


class OnnxEncoder:
    """The build's CPU encoder: the model as an ONNX graph run by ONNX Runtime.

    `variant` is "fp32" or "int8" (see the module's docstring); `max_length` truncates texts at
    fewer word pieces than the model's own limit (None keeps it: vectors then match
    sentence-transformers'); `threads` is ONNX Runtime's intra-op thread count (default
    settings.build_threads()); `cache` is the folder for the graphs (default
    files.cache_dir() / "onnx")."""

    def __init__(self, model_name: str, *, variant: str = "int8", batch_size: int = 32,
                 max_length: int | None = None, threads: int | None = None,
                 cache: Path | None = None, model_dir: Path | None = None):
        if variant not in VARIANTS:
            raise ValueError(f"unknown ONNX variant {variant!r}: choose one of {', '.join(VARIANTS)}")
        model_dir = model_dir or resolve_model_dir(model_name)
        if model_dir is None:
            raise ModelUnavailableError(f"The ONNX encoder needs a local folder for {model_name!r}.")
        spec = _light_spec(model_dir)  # raises a ModelUnavailableError for a model it cannot run
        limit = int((spec.tokenizer.truncation or {}).get("max_length", 512))
        if max_length is not None:
            if not 0 < max_length <= limit:
                raise ValueError(f"max_length {max_length} is not within 1..{limit}")
            spec.tokenizer.enable_truncation(max_length=max_length)
        self.model_name = model_name
        self.dimension = spec.hidden_size
        self.batch_size = batch_size
        self.variant = variant
        self.max_length = max_length or limit
        self.kind = f"onnx-{variant}" + (f"-{max_length}" if max_length and max_length < limit else "")
        self.device = "cpu"
        self.precision = "float32" if variant == "fp32" else "int8 weights"
        self._spec = spec
        if threads is None:
            threads = build_threads()
        self.threads = threads
        folder = cache or _default_cache()
        self.path = cached_graph(model_dir, spec, variant, folder)
        self._session = _session(self.path, threads, model_dir, spec, variant, folder)

    @staticmethod
    def supports(model_dir: Path | None) -> bool:
        """Whether the folder holds a model this encoder runs (those LightEncoder reproduces)."""
        return LightEncoder.supports(model_dir)

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        prompt, tokenizer = self._spec.prompt, self._spec.tokenizer
        for first in range(0, len(texts), _SORT_CHUNK):
            chunk = range(first, min(first + _SORT_CHUNK, len(texts)))
            encodings = tokenizer.encode_batch([prompt + texts[i] for i in chunk])
            for rows, ids, mask in padded_batches(encodings, self.batch_size, np.int32):
                (hidden,) = self._session.run(None, {"input_ids": ids, "attention_mask": mask})
                pooled = _pool(hidden, mask.astype(np.float32), self._spec.pooling)
                norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
                out[[first + i for i in rows]] = pooled / norms
                if progress:
                    progress(len(rows))
        return out


def _default_cache() -> Path:
    from .files import cache_dir

    return cache_dir() / "onnx"


def cached_graph(model_dir: Path, spec: _LightSpec, variant: str, folder: Path,
                 rebuild: bool = False) -> Path:
    """The path of the model's graph in `variant`, made and cached if it is missing, damaged
    or `rebuild` is asked for. Builds of the same graph at once wait on one lock."""
    key = f"{model_fingerprint(model_dir)}-{variant}-g{GRAPH_VERSION}"
    path = folder / f"{key}.onnx"
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / f"{key}.lock")):
        if not rebuild and _intact(path):
            return path
        if path.exists():
            log.warning("Rebuilding the damaged ONNX graph %s.", path)
        _write_graph(path, _graph_bytes(spec, variant))
    return path


def _session(path: Path, threads: int, model_dir: Path, spec: _LightSpec, variant: str,
             folder: Path) -> Any:
    """An ONNX Runtime session on the cached graph; a graph the runtime rejects is rebuilt once."""
    try:
        return _open_session(path, threads)
    except Exception as err:  # onnxruntime raises its own exception classes (Fail, InvalidGraph…)
        log.warning("ONNX Runtime rejected %s (%s); rebuilding it.", path, err)
    return _open_session(cached_graph(model_dir, spec, variant, folder, rebuild=True), threads)


def _open_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".sha256")


def _intact(path: Path) -> bool:
    """Whether `path` holds exactly the bytes its sidecar's SHA-256 names."""
    try:
        expected = _sidecar(path).read_text(encoding="ascii").strip()
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except (OSError, UnicodeDecodeError):
        return False
    return digest.hexdigest() == expected


def _write_graph(path: Path, data: bytes) -> None:
    """The graph, then its SHA-256 in the sidecar, each written atomically: a crash between the
    two leaves a graph that `_intact` rejects."""
    from .files import atomic_write_bytes, atomic_write_text

    atomic_write_bytes(path, data)
    atomic_write_text(_sidecar(path), hashlib.sha256(data).hexdigest() + "\n")


def _graph_bytes(spec: _LightSpec, variant: str) -> bytes:
    model = _bert_graph(spec)
    if variant == "fp32":
        return model.SerializeToString()
    return _quantised(model)


def _quantised(model: onnx.ModelProto) -> bytes:
    """int8 per-channel weights for the MatMul nodes (the output projection and the two
    feed-forward ones of each layer): quantising every node, or the attention projections too,
    cost far more accuracy in the issue's probe for little more speed."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="paperscope-onnx-") as tmp:
        target = Path(tmp) / "int8.onnx"
        logging.disable(logging.WARNING)  # its advice to pre-process, on the root logger
        try:
            # The fused com.microsoft nodes' outputs have no inferred type: they are float32.
            quantize_dynamic(model, target, op_types_to_quantize=["MatMul"], per_channel=True,
                             weight_type=QuantType.QInt8,
                             extra_options={"DefaultTensorType": TensorProto.FLOAT})
        finally:
            logging.disable(logging.NOTSET)
        return target.read_bytes()


def _bert_graph(spec: _LightSpec) -> onnx.ModelProto:
    """The BERT encoder of `spec` as an ONNX graph: input_ids (int64) and attention_mask (int32),
    both (batch, width), to the last hidden state (batch, width, hidden). Token type ids are
    always 0 (one text a row), so the type embedding is folded into the position table."""
    from onnx import TensorProto, helper, numpy_helper

    from .embedding import _as_float32

    w, p = spec.tensors, spec.prefix
    hidden, heads = spec.hidden_size, spec.heads
    initializers: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def constant(name: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def weight(name: str) -> np.ndarray:
        return _as_float32(w[p + name])

    def node(op: str, inputs: list[str], output: str, domain: str = "", **attributes: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, domain=domain, **attributes))
        return output

    ms = "com.microsoft"
    positions = weight("embeddings.position_embeddings.weight") + \
        weight("embeddings.token_type_embeddings.weight")[0]
    words = node("Gather", [constant("word_embeddings", weight("embeddings.word_embeddings.weight")),
                            "input_ids"], "words")
    width = node("Shape", ["input_ids"], "width", start=1, end=2)
    placed = node("Slice", [constant("positions", positions), constant("zero", np.array([0])),
                            width, constant("axis0", np.array([0]))], "placed")
    summed = node("Add", [words, placed], "embedded")
    state = node("LayerNormalization", [summed, constant("embeddings.ln.g", weight("embeddings.LayerNorm.weight")),
                                        constant("embeddings.ln.b", weight("embeddings.LayerNorm.bias"))],
                 "embeddings.out", axis=-1, epsilon=spec.eps)
    for n in range(spec.layers):
        layer = f"encoder.layer.{n}."
        names = [layer + f"attention.self.{part}" for part in ("query", "key", "value")]
        qkv = np.concatenate([weight(name + ".weight").T for name in names], axis=1)
        qkv_bias = np.concatenate([weight(name + ".bias") for name in names])
        attended = node("Attention", [state, constant(f"l{n}.qkv.w", qkv), constant(f"l{n}.qkv.b", qkv_bias),
                                      "attention_mask"], f"l{n}.attention", domain=ms, num_heads=heads)
        projected = node("MatMul", [attended, constant(f"l{n}.attn_out.w",
                                                       weight(layer + "attention.output.dense.weight").T)],
                         f"l{n}.attn_out")
        middle = node("SkipLayerNormalization", [
            projected, state,
            constant(f"l{n}.ln1.g", weight(layer + "attention.output.LayerNorm.weight")),
            constant(f"l{n}.ln1.b", weight(layer + "attention.output.LayerNorm.bias")),
            constant(f"l{n}.attn_out.b", weight(layer + "attention.output.dense.bias"))],
            f"l{n}.ln1", domain=ms, epsilon=spec.eps)
        inner = node("MatMul", [middle, constant(f"l{n}.ffn_in.w", weight(layer + "intermediate.dense.weight").T)],
                     f"l{n}.ffn_in")
        activated = node("BiasGelu", [inner, constant(f"l{n}.ffn_in.b", weight(layer + "intermediate.dense.bias"))],
                         f"l{n}.gelu", domain=ms)
        outer = node("MatMul", [activated, constant(f"l{n}.ffn_out.w", weight(layer + "output.dense.weight").T)],
                     f"l{n}.ffn_out")
        state = node("SkipLayerNormalization", [
            outer, middle,
            constant(f"l{n}.ln2.g", weight(layer + "output.LayerNorm.weight")),
            constant(f"l{n}.ln2.b", weight(layer + "output.LayerNorm.bias")),
            constant(f"l{n}.ffn_out.b", weight(layer + "output.dense.bias"))],
            f"l{n}.ln2", domain=ms, epsilon=spec.eps)
    nodes.append(helper.make_node("Identity", [state], ["last_hidden_state"], name="last_hidden_state"))
    graph = helper.make_graph(
        nodes, "paperscope-bert",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "width"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT32, ["batch", "width"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "width", hidden])],
        initializers)
    model = helper.make_model(graph, producer_name="paperscope", opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid(ms, 1)])
    model.ir_version = 8  # readable by every ONNX Runtime since 1.14
    return model


def onnx_available() -> bool:
    """Whether onnx and onnxruntime are installed (without importing them)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def _load(variant: str, model_name: str, model_dir: Path | None,
          threads: int | None = None) -> OnnxEncoder:
    """The encoder for the registry (embedding.ENCODERS), or EncoderDeclined where it should not
    or cannot run: on a CUDA machine (sentence-transformers is faster there), without ONNX
    Runtime, or for a model its fused BERT operators do not reproduce."""
    if os.path.exists("/dev/nvidiactl"):
        raise EncoderDeclined("a CUDA GPU is here, where sentence-transformers is faster")
    if not onnx_available():
        raise EncoderDeclined("onnx and onnxruntime are not installed")
    if model_dir is None or not OnnxEncoder.supports(model_dir):
        raise EncoderDeclined("not a BERT model that ONNX Runtime's fused operators reproduce")
    return OnnxEncoder(model_name, variant=variant, model_dir=model_dir, threads=threads)


def load_fp32(model_name: str, model_dir: Path | None) -> OnnxEncoder:
    return _load("fp32", model_name, model_dir)


def load_int8(model_name: str, model_dir: Path | None) -> OnnxEncoder:
    return _load("int8", model_name, model_dir)


def load_for_queries(model_name: str, model_dir: Path | None) -> OnnxEncoder:
    """fp32 on one thread: a server's queries, each a few word pieces, run side by side in
    their own threads (or processes), where threads within one query would only contend."""
    return _load("fp32", model_name, model_dir, threads=1)
