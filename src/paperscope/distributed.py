"""Embedding on a Ray cluster (issue 19): `paperscope corpus build NAME --ray`.

The build is the single-process one (indexer.build_index) with another embedder: the plan of
what is left to embed (indexer.plan_embedding: the old index's and the chunk files' vectors are
reused) is cut into ranges of documents, and Ray Data, the cluster's own engine, embeds them with
`map_batches` over a pool of actors of `EmbeddingActor` (one model load per actor; one GPU per
actor where the cluster has GPUs, CPU actors otherwise; as many as its resources allow). Ray
retries a failed task and restarts a dead actor.

Where things are: the driver (this process) reads the corpus and cuts each document into its
passages; the passages of each range travel to the workers through Ray's object store, so the
workers need no copy of the corpus, only paperscope (`pip install "paperscope[ray]"`) and the
model (the packaged default, or the same folder or Hugging Face cache entry). Each range's
vectors come back to the driver, which writes them as one chunk file (chunks.py) into the
index's chunk folder the moment they arrive, in whatever order ranges finish. So a killed job
keeps every finished range, and the next build, on Ray or not, resumes from them; the driver
then assembles the index as any build does. Nothing needs a shared file system.

The driver holds the passages of what is left to embed in memory (about the size of their text),
and Ray's object store holds them until each range is done.

Ray runs whatever code its callers send, and older releases have no authentication at all (its
job API was exploited in the wild: CVE-2023-48022, "ShadowRay"). A local cluster that paperscope
starts itself has no dashboard, sends no usage statistics, takes calls only with Ray's token
(RAY_AUTH_MODE=token, Ray 2.60), is asked to bind 127.0.0.1, and a warning names the address when
Ray binds another one anyway (2.60 does).

`ray` is imported only here, and only when a build asks for it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .embedding import encoder_kind, load_encoder
from .errors import IndexMismatchError, UsageError
from .indexer import Embedder, EmbeddingJob, build_encoders
from .text import SCHEMES, counted, passages

log = logging.getLogger(__name__)

# A range of documents embedded by one actor call, committed as one chunk file, holds about
# RANGE_CHARACTERS_PER_CPU characters of text for each CPU of a CPU actor: some 40 s of work for
# the default model (about 25,000 characters a second a core on a laptop, whole abstracts or
# passages alike), so that a killed job loses under a minute of each actor's work; on a GPU
# actor, RANGE_CHARACTERS_PER_GPU (a few seconds there), so that Ray's cost per call stays small.
RANGE_CHARACTERS_PER_CPU = 1_000_000
RANGE_CHARACTERS_PER_GPU = 20_000_000
RANGE_DOCUMENTS = 10_000  # at most
# CPU actors use up to this many CPUs each (torch threads); a node's CPUs beyond make more actors.
ACTOR_CPUS = 4


@dataclass(frozen=True)
class Cluster:
    """What the build runs on: actors and their resources, and where the cluster is."""

    address: str
    actors: int
    gpus_per_actor: int
    cpus_per_actor: int
    started_here: bool

    def describe(self) -> str:
        where = "a local Ray cluster" if self.started_here else f"the Ray cluster at {self.address}"
        each = "1 GPU" if self.gpus_per_actor else counted(self.cpus_per_actor, "CPU")
        return f"{counted(self.actors, 'actor')} of {each} on {where}"


def ray_embedder(address: str | None = None, *, actors: int | None = None,
                 range_documents: int | None = None, cpus: int | None = None,
                 on_note: Callable[[str], None] | None = None) -> Embedder:
    """An embedder for indexer.build_index that embeds on Ray.

    `address` is a running cluster (host:port, or "auto"; default $RAY_ADDRESS); without one a
    local cluster of `cpus` CPUs (default: all) is started, kept off the network as far as Ray
    allows, and stopped after the build. A Ray session this process already started
    (`ray.init`) is used as it is. `actors` and `range_documents` override the sizes chosen from
    the cluster's resources; `on_note` is told what runs where, and warnings."""
    if actors is not None and actors < 1:
        raise UsageError("A Ray build needs at least 1 actor.")

    def embed(job: EmbeddingJob) -> int:
        with _connected(address, cpus=cpus, on_note=on_note) as (where, started_here):
            cluster = plan_cluster(where, started_here, actors=actors)
            return run_on_ray(job, cluster, range_documents=range_documents, on_note=on_note)

    return embed


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError("Embedding on Ray needs the ray package, which is not installed.",
                         'Install it with: pip install "paperscope[ray]"') from None
    return ray


@contextlib.contextmanager
def _connected(address: str | None, *, cpus: int | None,
               on_note: Callable[[str], None] | None) -> Iterator[tuple[str, bool]]:
    """(the cluster's address, whether paperscope started it): connected for the block."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not address and "ray" not in sys.modules:  # read by Ray when it is imported
        # Ray would report usage statistics to its makers; a local cluster sends nothing anywhere.
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        # Ray 2.60 (and some releases before) take calls only with the token that ray.init
        # writes to ~/.ray/auth_token; it does so by itself, with a warning, when this is unset.
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    ray = _import_ray()
    if ray.is_initialized():
        yield _gcs_address(ray), False
        return
    options = {"logging_level": logging.WARNING, "log_to_driver": False}
    if on_note:
        on_note(f"Connecting to the Ray cluster at {address}…" if address else
                "Starting a local Ray cluster…")
    if address:
        ray.init(address=address, **options)
    else:
        ray.init(address="local", num_cpus=cpus, include_dashboard=False,
                 _node_ip_address="127.0.0.1", **options)
    try:
        where = _gcs_address(ray)
        if not address:
            _warn_unless_loopback(where, on_note)
        yield where, not address
    finally:
        ray.shutdown()


def _gcs_address(ray) -> str:
    with contextlib.suppress(Exception):  # the runtime context's fields vary between releases
        return str(ray.get_runtime_context().gcs_address)
    return "?"


def _warn_unless_loopback(address: str, on_note: Callable[[str], None] | None) -> None:
    """Say so when the local cluster listens on an address other machines may reach."""
    host = address.rsplit(":", 1)[0].strip("[]")
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_loopback:
            return
    message = (f"Warning: Ray bound {host}, not only the loopback address: while this build runs, "
               "anyone who can reach this machine can run code through Ray, which has no "
               "authentication (CVE-2023-48022). Build on a private network, or without --ray.")
    (on_note or log.warning)(message)


def plan_cluster(address: str, started_here: bool, *, actors: int | None = None) -> Cluster:
    """Actors from the cluster's resources: one per GPU where it has GPUs, else CPU actors of up
    to ACTOR_CPUS CPUs each, as many as its nodes hold."""
    ray = _import_ray()
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    gpus = sum(int(node.get("Resources", {}).get("GPU", 0)) for node in nodes)
    if gpus:
        return Cluster(address, min(actors or gpus, gpus), 1, 1, started_here)
    node_cpus = [int(node.get("Resources", {}).get("CPU", 0)) for node in nodes] or [1]
    each = max(1, min(ACTOR_CPUS, min(c for c in node_cpus if c > 0) if any(node_cpus) else 1))
    fits = sum(c // each for c in node_cpus) or 1
    return Cluster(address, min(actors or fits, fits), 0, each, started_here)


def run_on_ray(job: EmbeddingJob, cluster: Cluster, *, range_documents: int | None = None,
               on_note: Callable[[str], None] | None = None) -> int:
    """Embed the plan's documents on `cluster` (connected), committing each range as a chunk
    file as it comes back; returns the vectors' dimension."""
    _import_ray()
    import ray.data

    plan, documents = job.plan, job.documents
    lengths = SCHEMES[plan.scheme]
    size = range_documents or _range_size(job, cluster)
    ranges = plan.ranges(size)
    groups = {i: [passages(documents[i], lengths) for i in positions] for i, positions in
              enumerate(ranges)}
    if job.on_encoder:
        job.on_encoder("Ray", len(plan.todo), job.report.reason)
    if on_note:
        on_note(f"Embedding on {cluster.describe()}: {counted(len(ranges), 'range')} of up to "
                f"{counted(size, 'document')}, each committed when it comes back.")
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # paperscope shows its own
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its INFO lines about each execution
    rows = [{"range": i, "texts": [text for group in groups[i] for text in group]} for i in groups]
    # The encoder a single-process build of these passages would use, so that the vectors are
    # the same whichever way they were made (ONNX on CPU actors; it declines on a GPU's node).
    kinds = build_encoders(plan, documents)
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
    # The model's name, the encoder kinds and the actor's threads travel in the class, pickled
    # with it.
    actor = type("EmbeddingActor", (EmbeddingActor,),
                 {"model": job.report.model, "kinds": kinds, "threads": cluster.cpus_per_actor})
    # A task whose worker or node dies is retried, and the actor restarted, by Ray Data itself;
    # an exception in the model fails the job (finished ranges stay committed).
    embedded = dataset.map_batches(
        actor, batch_size=1, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=cluster.actors),
        num_gpus=cluster.gpus_per_actor or None, num_cpus=cluster.cpus_per_actor)
    dimension = 0
    device = kind = ""
    for row in embedded.iter_rows():
        number, dimension = int(row["range"]), int(row["dimension"])
        device, kind = str(row["device"]), str(row["kind"])
        counts = [len(group) for group in groups.pop(number)]
        vectors = np.frombuffer(row["vectors"], dtype=np.float32).reshape(-1, dimension)
        if vectors.shape[0] != sum(counts):
            raise IndexMismatchError(f"Ray returned {vectors.shape[0]} vectors for {sum(counts)} passages.")
        job.commit(ranges[number], counts, vectors)
        if job.progress:
            job.progress(len(ranges[number]))
    if groups:  # Ray Data returns every row or raises; never index with a hole
        raise IndexMismatchError(f"Ray returned no vectors for {counted(len(groups), 'range')}.")
    job.report.device = f"ray ({device or 'cpu'})"
    job.report.encoder = kind  # what the actors ran
    return dimension


def _range_size(job: EmbeddingJob, cluster: Cluster) -> int:
    """Documents a range: about RANGE_CHARACTERS_PER_CPU characters a CPU of a CPU actor, or
    RANGE_CHARACTERS_PER_GPU on a GPU one; at least two ranges an actor, to share the work."""
    todo = job.plan.todo
    lengths = SCHEMES[job.plan.scheme]
    sample = todo[:: max(1, len(todo) // 200)]
    per_document = sum(len(text) for i in sample for text in passages(job.documents[i], lengths)) / \
        max(1, len(sample))
    budget = RANGE_CHARACTERS_PER_GPU if cluster.gpus_per_actor else \
        RANGE_CHARACTERS_PER_CPU * cluster.cpus_per_actor
    share = math.ceil(len(todo) / (2 * cluster.actors))
    return max(1, min(int(budget / max(per_document, 1.0)), share, RANGE_DOCUMENTS))


class EmbeddingActor:
    """A Ray Data actor: loads the model once, then embeds one range of passages a call.
    run_on_ray subclasses it with the model's name and the CPUs it may use."""

    model = ""
    kinds: tuple[str, ...] = ()
    threads = 0

    def __init__(self) -> None:
        self.encoder = load_encoder(self.model, kinds=self.kinds)
        if self.threads and encoder_kind(self.encoder) == "sentence-transformers" and \
                not getattr(self.encoder, "device", "cpu").startswith("cuda"):
            import torch

            torch.set_num_threads(self.threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = [np.ascontiguousarray(self.encoder.encode([str(t) for t in texts]),
                                        dtype=np.float32).tobytes()
                   for texts in batch["texts"]]
        return {"range": np.asarray(batch["range"]),
                "vectors": np.array(vectors, dtype=object),
                "dimension": np.full(len(vectors), self.encoder.dimension),
                "device": np.array([getattr(self.encoder, "device", "cpu")] * len(vectors), dtype=object),
                "kind": np.array([encoder_kind(self.encoder)] * len(vectors), dtype=object)}
