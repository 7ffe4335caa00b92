"""The fast paths: everyday commands run in a fresh process without importing torch.
(The NumPy encoder's own tests are in test_light_encoder.py.)"""

import json
import subprocess
import sys

import pytest

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
