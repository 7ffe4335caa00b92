"""What an index is built with: the model configured for new builds and the passage
lengths, and why an existing index's vectors cannot be reused. Light on purpose (no
NumPy), so that `status` can ask without slowing down."""

from __future__ import annotations

import os

from .text import PASSAGE_WORDS

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_ENV = "PAPERSCOPE_MODEL"


def configured_model() -> str:
    """The model for new builds: $PAPERSCOPE_MODEL or the packaged all-MiniLM-L6-v2."""
    return os.environ.get(MODEL_ENV) or DEFAULT_MODEL


def settings_change(manifest: dict, model: str) -> str:
    """Why the vectors of the index described by `manifest` cannot be reused for `model` and
    this paperscope's passage lengths ("" when they can)."""
    if manifest.get("model") != model:
        return f"the model changed from {manifest.get('model')} to {model}"
    stored = manifest.get("passage_words")
    if stored != list(PASSAGE_WORDS):
        return f"the passage lengths changed from {_words(stored)} to {_words(PASSAGE_WORDS)} words"
    return ""


def _words(lengths) -> str:
    """Passage lengths as a reader would write them: "90, 55 and 35"."""
    if not isinstance(lengths, (list, tuple)):
        return str(lengths)
    words = [str(n) for n in lengths]
    return " and ".join([", ".join(words[:-1]), words[-1]]) if len(words) > 1 else "".join(words)
