"""What an index is built with: the model configured for new builds and the passage
lengths, and why an existing index's vectors cannot be reused. Light on purpose (no
NumPy), so that `status` can ask without slowing down."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .text import SCHEMES

if TYPE_CHECKING:  # index.py imports NumPy's types only for checking; settings stays light
    from .index import Manifest

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_ENV = "PAPERSCOPE_MODEL"
# A registered encoder kind (embedding.ENCODERS) that embeds every build, instead of the one
# chosen by the build's size: `sentence-transformers` or `onnx-fp32` for vectors that do not
# depend on how the passages were batched (int8 ONNX quantises each batch's activations).
BUILD_ENCODER_ENV = "PAPERSCOPE_BUILD_ENCODER"


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_user_threads: str | None = os.environ.get("OMP_NUM_THREADS")


def single_threaded() -> None:
    """Make NumPy's BLAS (and torch) run on one thread unless the user chose a count: queries
    and small builds are small matrix products, whose threads only fight over busy cores
    (issue 12: `search` 1.3-1.7 s on a busy 2-core machine, 0.6-0.8 s on one thread). Call it
    before NumPy is imported."""
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, "1")


def build_threads() -> int:
    """Threads for a large build through torch: the user's OMP_NUM_THREADS, else every core."""
    chosen = int(_user_threads) if _user_threads and _user_threads.isdigit() else 0
    return chosen or os.cpu_count() or 1


def configured_model() -> str:
    """The model for new builds: $PAPERSCOPE_MODEL or the packaged all-MiniLM-L6-v2."""
    return os.environ.get(MODEL_ENV) or DEFAULT_MODEL


def settings_change(manifest: Manifest, model: str, scheme: str) -> str:
    """Why the vectors of the index described by `manifest` cannot be reused for `model` and
    the passage scheme `scheme` ("" when they can)."""
    if manifest.model != model:
        return f"the model changed from {manifest.model} to {model}"
    if (manifest.scheme, tuple(manifest.scheme_words)) != (scheme, tuple(SCHEMES[scheme])):
        if manifest.scheme == scheme or not manifest.scheme:
            return (f"the passage lengths changed from {_words(manifest.scheme_words)} to "
                    f"{_words(SCHEMES[scheme])} words")
        return f"the passage scheme changed from {manifest.scheme} to {scheme}"
    return ""


def _words(lengths) -> str:
    """Passage lengths as a reader would write them: "90, 55 and 35"."""
    if not isinstance(lengths, (list, tuple)):
        return str(lengths)
    words = [str(n) for n in lengths]
    return " and ".join([", ".join(words[:-1]), words[-1]]) if len(words) > 1 else "".join(words)
