"""Run by tests/test_ray.py inside a network namespace of its own (`unshare -n`), where Ray binds
127.0.0.1 and nothing can leave the machine: Ray builds of a corpus, one stopped half-way.

usage: python tests/ray_job.py MODEL WORK    (prints a JSON summary on its last line)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class Stop(Exception):
    """A driver stopped half-way (as by Ctrl-C)."""


def main() -> None:
    import ray

    from paperscope import chunks
    from paperscope.distributed import ray_embedder
    from paperscope.index import IndexStore
    from paperscope.indexer import build_index
    from tests.test_ray import documents

    model, work = sys.argv[1], Path(sys.argv[2])
    corpus = documents()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    notes: list[str] = []
    summary: dict = {"address": ray.get_runtime_context().gcs_address}
    for name in ("ray", "stopped"):
        store = IndexStore(work / name)
        arrived = []

        def stop_after_three(count: int, arrived=arrived) -> None:
            arrived.append(count)
            if len(arrived) == 3:
                raise Stop

        try:
            build_index(store, corpus, model=model, scheme="multi-scale", progress=stop_after_three,
                        embedder=ray_embedder(range_documents=25, on_note=notes.append))
            stopped = False
        except Stop:
            stopped = True
        summary[name] = {"stopped": stopped, "chunked": sum(len(info.hashes) for info in map(
            chunks.read_chunk_info, chunks.chunk_files(store.chunks_dir)) if info)}
    # The first store resumes on Ray; the second is left for a build without Ray (the test's).
    report = build_index(IndexStore(work / "ray"), corpus, model=model, scheme="multi-scale",
                         embedder=ray_embedder(range_documents=25, on_note=notes.append))
    summary["resumed"] = {"resumed": report.resumed, "embedded": len(report.embedded),
                          "device": report.device}
    summary["notes"] = notes
    ray.shutdown()
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
