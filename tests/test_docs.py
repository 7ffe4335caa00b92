"""Generated documentation stays in step with the code."""

import difflib
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader

from .conftest import REPO

SCRIPT = REPO / "scripts" / "cli-reference"


def load_script(path):
    loader = SourceFileLoader(path.name.replace("-", "_"), str(path))
    module = module_from_spec(spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def test_the_cli_reference_matches_every_commands_help():
    generated = load_script(SCRIPT).render()
    committed = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    if committed != generated:
        diff = "".join(list(difflib.unified_diff(
            committed.splitlines(keepends=True), generated.splitlines(keepends=True),
            "docs/cli.md (committed)", "docs/cli.md (from --help)"))[:60])
        raise AssertionError("docs/cli.md is out of date with the commands' --help: run "
                             "scripts/cli-reference and commit docs/cli.md.\n" + diff)


def test_the_cli_reference_covers_every_command_and_sub_command():
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    for path in load_script(SCRIPT).command_paths():
        assert f"## `{' '.join(['paperscope', *path])}`" in text
    assert "## `paperscope corpus import`" in text and "## `paperscope export markdown`" in text


def test_help_examples_fit_an_80_column_terminal():
    # The help box leaves 78 columns; a longer example would wrap in the middle of a command.
    import inspect

    import typer

    from paperscope.cli import app

    def helps(command):
        yield command.name, inspect.cleandoc(command.help or "")
        for sub in getattr(command, "commands", {}).values():
            yield from helps(sub)

    for name, text in helps(typer.main.get_command(app)):
        for line in text.splitlines():
            if line.strip().startswith("paperscope "):
                assert len(line.strip()) <= 78, f"{name}: {line.strip()}"
