"""A very large catalogue.yaml: reading it through the composed node tree (how paperscope read
every file before) against the streamed reader, then `list`, `remove`, `add` and `rename` on it
through the CLI, side by side in one run (issue 15: 200,000 entries took 89 s and 955 MB to
`list`).

usage: python benchmarks/catalogue_scale.py [--entries N] [--repeats R]

Writes a catalogue of N entries (default 200,000: half arXiv papers with tags, half blog posts
with authors, year and a folded summary, in 20 sections) to a temporary folder. Each
measurement runs in a process of its own; printed: wall time and peak resident memory (the
median of R runs), and the ratios. The editing commands run with --no-build on a copy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARSE = """
import sys
from pathlib import Path
from paperscope import catalogue
text = Path(sys.argv[1]).read_text()
parse = catalogue._parse_composed if sys.argv[2] == "composed" else catalogue.parse_catalogue
assert len(parse(text).entries) == int(sys.argv[3])
"""


def write_catalogue(path: Path, entries: int) -> None:
    """`entries` entries in 20 sections, in the layout `paperscope add` writes."""
    with path.open("w") as out:
        out.write("# a very large reading list\n\n")
        for section in range(20):
            out.write(f"- section: Section {section}\n  entries:\n")
            for i in range(section * entries // 20, (section + 1) * entries // 20):
                arxiv = f"{2000 + i // 100000}.{i % 100000:05d}"
                if i % 2:
                    out.write(f"    - id: paper-{i}\n      title: A study of thing number {i} in "
                              f"language models\n      url: https://arxiv.org/abs/{arxiv}\n"
                              f"      kind: paper\n      arxiv: \"{arxiv}\"\n"
                              f"      tags: [topic-{i % 7}, to-read]\n\n")
                else:
                    out.write(f"    - id: post-{i}\n      title: Notes on topic {i}\n"
                              f"      url: https://example.org/posts/{i}\n      kind: blog\n"
                              f"      authors: [Jane Doe, John Roe]\n      year: 2020\n"
                              f"      summary: >-\n        A blog post about topic {i} with several "
                              f"words of text that search reads\n        instead of an abstract, "
                              f"folded over two lines.\n\n")


def measure(args: list[str], repeats: int) -> tuple[float, float]:
    """Median wall seconds and peak resident MB of `python ARGS` over `repeats` runs."""
    times, peaks = [], []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    for _ in range(repeats):
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(child.pid, 0)
        times.append(time.perf_counter() - started)
        if status != 0:
            raise SystemExit(f"failed: python {' '.join(args)}\n{child.stderr.read().decode()}")
        child.stderr.close()
        peaks.append(usage.ru_maxrss / 1024)
    return statistics.median(times), statistics.median(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=1)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        library = Path(folder) / "library"
        library.mkdir()
        catalogue = library / "catalogue.yaml"
        write_catalogue(catalogue, options.entries)
        print(f"{options.entries:,} entries, {catalogue.stat().st_size / 1e6:.1f} MB of YAML",
              file=sys.stderr)
        rows = {}
        for way in ("composed", "streamed"):
            rows[f"parse ({way})"] = measure(["-c", PARSE, str(catalogue), way, str(options.entries)],
                                             options.repeats)
        cli = ["-m", "paperscope", "--library"]
        rows["paperscope list"] = measure([*cli, str(library), "list"], options.repeats)
        rows["paperscope list --json"] = measure([*cli, str(library), "list", "--json"], options.repeats)
        middle = options.entries // 2
        edits = {"remove": ["remove", f"post-{middle}"],
                 "add": ["add", "https://example.org/new", "--title", "A new post", "--summary",
                         "Three sentences.", "--section", "Section 3"],
                 "rename": ["rename", f"paper-{middle + 1}", "renamed"]}
        for name, command in edits.items():
            times, peaks = [], []
            for _ in range(options.repeats):
                copy = Path(folder) / "copy"
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(library, copy)
                seconds, peak = measure([*cli, str(copy), *command, "--no-build"], 1)
                times.append(seconds)
                peaks.append(peak)
            rows[f"paperscope {name} --no-build"] = statistics.median(times), statistics.median(peaks)
    print(f"{'':28} {'wall':>9} {'peak':>9}")
    for label, (seconds, peak) in rows.items():
        print(f"{label:28} {seconds:8.2f}s {peak:7.0f}MB")
    composed, streamed = rows["parse (composed)"], rows["parse (streamed)"]
    print(f"\nstreamed against composed: {composed[0] / streamed[0]:.1f}x faster, "
          f"{composed[1] / streamed[1]:.1f}x less memory")


if __name__ == "__main__":
    main()
