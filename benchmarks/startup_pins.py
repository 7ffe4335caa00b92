"""Start-up of `paperscope search` and `paperscope --help` under the pinned typer/click
against the newest ones, side by side in one run (issue 14, item 4).

usage: python benchmarks/startup_pins.py [--repeats N] [--pinned SPEC ...] [--latest SPEC ...]

Run from the repository root in the project's virtual environment, with an index built
(`paperscope build`). Each set of packages is installed once, with its dependencies, by
`pip install --target` into a folder of .cache/startup_pins/ and put in front of the
environment's own packages through PYTHONPATH, so the environment itself is not changed.
The commands of both sets run interleaved, REPEATS times each; printed: medians, spreads,
and the latest/pinned ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "startup_pins"
COMMANDS = {"search": ["search", "lora"], "--help": ["--help"]}


def install(specs: list[str]) -> Path:
    """A folder holding `specs` and their dependencies, installed once (a folder per set of
    specs, since pip --target leaves an earlier version's metadata behind)."""
    target = CACHE / "_".join(sorted(specs)).replace("<", "lt").replace(">", "gt")
    if not (target / ".complete").is_file():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target),
                        *specs], check=True)
        (target / ".complete").touch()
    return target


def versions(env: dict[str, str]) -> str:
    probe = ("from importlib.metadata import version as v; "
             "print(f\"typer {v('typer')}, click {v('click')}\")")
    return subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                          text=True, check=True).stdout.strip()


def run_once(env: dict[str, str], args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "paperscope", *args], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def describe(times: list[float]) -> str:
    return (f"median {statistics.median(times):.3f} s "
            f"(min {min(times):.3f}, max {max(times):.3f}, n={len(times)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--pinned", nargs="+", default=["typer==0.19.2", "click==8.4.2"])
    parser.add_argument("--latest", nargs="+", default=["typer", "click"])
    options = parser.parse_args()

    envs = {}
    for name, specs in (("pinned", options.pinned), ("latest", options.latest)):
        folder = install(specs)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(folder), str(ROOT / "src")]))
        envs[name] = env
        print(f"{name}: {versions(env)}  ({' '.join(specs)})")
    for env in envs.values():  # warm the file cache and .pyc files before timing
        for args in COMMANDS.values():
            run_once(env, args)

    times = {(name, command): [] for name in envs for command in COMMANDS}
    for _ in range(options.repeats):
        for command, args in COMMANDS.items():
            for name, env in envs.items():
                times[name, command].append(run_once(env, args))
    for command in COMMANDS:
        print(f"\npaperscope {command}:")
        for name in envs:
            print(f"  {name:7}: {describe(times[name, command])}")
        ratio = statistics.median(times["latest", command]) / statistics.median(times["pinned", command])
        print(f"  latest / pinned: {ratio:.2f}")


if __name__ == "__main__":
    main()
