"""The fast paths: the NumPy encoder matches sentence-transformers, and everyday
commands run in a fresh process without importing torch."""

import json
import subprocess
import sys

import numpy as np
import pytest

from paperscope.embedding import DEFAULT_MODEL, LightEncoder, load_encoder, resolve_model_dir

TEXTS = [
    "parameter-efficient finetuning",
    "RLHF",
    "We propose Low-Rank Adaptation, or LoRA, which freezes the pre-trained model weights. " * 30,
    "注意力机制 and Ünïcödé",
]


def test_light_encoder_matches_sentence_transformers():
    light = load_encoder(DEFAULT_MODEL, light=True)
    assert isinstance(light, LightEncoder)
    reference = load_encoder(DEFAULT_MODEL, light=False)
    a, b = light.encode(TEXTS), reference.encode(TEXTS)
    assert a.shape == b.shape == (4, 384)
    assert np.abs(a - b).max() < 1e-4
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


def test_light_encoder_declines_models_it_cannot_reproduce(tmp_path):
    assert LightEncoder.supports(resolve_model_dir(DEFAULT_MODEL))
    assert not LightEncoder.supports(tmp_path)
    assert not LightEncoder.supports(None)


HEAVY = ("torch", "transformers", "sentence_transformers")
PROBE = """
import sys, json
from typer.testing import CliRunner
from paperscope.cli import app
result = CliRunner().invoke(app, {args!r})
print(json.dumps({{"code": result.exit_code, "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


@pytest.mark.parametrize("args", [
    ["--help"],
    ["list"],
    ["show", "lora"],
    ["status"],
    ["search", "parameter-efficient finetuning"],
    ["related", "lora"],
])
def test_everyday_commands_do_not_import_torch(library_dir, args):
    full = ["--library", str(library_dir), *args] if args != ["--help"] else args
    out = subprocess.run([sys.executable, "-c", PROBE.format(args=full, heavy=HEAVY)],
                         capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"code": 0, "heavy": []}


def test_the_console_script_runs_a_search(library_dir):
    out = subprocess.run([sys.executable, "-m", "paperscope", "--library", str(library_dir),
                          "search", "LoRA", "--json", "-k", "1"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["id"] == "lora"
