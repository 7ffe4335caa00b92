"""A served copy of the test library with a hostile entry, shared by the server tests."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from paperscope.library import Corpus, Library, SnapshotFilter

from .conftest import copy_fixture_library

HOSTILE_TITLE = "<img src=x onerror=alert(1)>"
HOSTILE_ID = "hostile-entry"


def hostile_library(target: Path) -> Path:
    """A copy of the frozen test library plus one entry whose title, summary and note are HTML."""
    copy_fixture_library(target)
    Library.open(target).add(
        "https://example.com/hostile", title=HOSTILE_TITLE, entry_id=HOSTILE_ID,
        section="LLM Evaluation", kind="blog", tags=["<b>tag</b>"],
        summary='A summary with <script>alert("summary")</script> about evaluating chatbots.',
        note='<a href="javascript:alert(3)">a note</a>')
    return target


# A few papers as arXiv's snapshot holds them (first posted in 2025), for a corpus the servers
# search; NEW_PAPERS come later, through an update.
PAPERS = [
    ("2501.00001", "cs.CL", "Low-rank adapters for parameter-efficient finetuning of language models",
     "We freeze the pretrained weights and train low-rank adapter matrices.", "Mon, 6 Jan 2025"),
    ("2502.00002", "cs.CL", "Quantized adapters make finetuning of large models fit on one GPU",
     "Four-bit quantization with low-rank adapters preserves finetuning quality.", "Tue, 4 Feb 2025"),
    ("2503.00003", "cs.CV", "Diffusion models for video generation",
     "A video diffusion model generates short clips from text.", "Mon, 3 Mar 2025"),
    ("2504.00004", "cs.LG", "Reward models for reinforcement learning from human feedback",
     "Human preference data trains a reward model that guides policy optimisation.", "Tue, 1 Apr 2025"),
    ("2505.00005", "cs.CL", "Evaluating chatbots with pairwise human preferences",
     "An arena of pairwise votes ranks chat assistants.", "Thu, 1 May 2025"),
]
NEW_PAPERS = [
    ("2611.00006", "cs.CL", "Sparse low-rank adapters for finetuning mixture-of-experts models",
     "Adapters of low rank finetune experts while the router stays frozen.", "2026-11-21"),
    ("2611.00007", "cs.CL", "Tiny reward models judge chatbot answers",
     "A small reward model trained on human preference votes.", "2026-11-22"),
]


def write_snapshot(path: Path) -> Path:
    lines = [json.dumps({"id": arxiv_id, "title": title, "abstract": abstract, "authors": "A. Author",
                         "categories": category, "update_date": "2025-06-01",
                         "versions": [{"version": "v1", "created": f"{day} 10:00:00 GMT"}],
                         "authors_parsed": [["Author", "A.", ""]]})
             for arxiv_id, category, title, abstract, day in PAPERS]
    path.write_text("\n".join(lines) + "\n")
    return path


class Harvest:
    """arXiv's OAI-PMH interface as `Corpus.update` reads it, answering NEW_PAPERS."""

    def changed_since(self, start, categories=()):
        from paperscope.sources.oaipmh import OaiRecord

        for arxiv_id, category, title, abstract, day in NEW_PAPERS:
            yield OaiRecord(arxiv_id=arxiv_id, title=title, abstract=abstract, authors=("A. Author",),
                            year=2026, categories=(category,), primary_category=category,
                            source="arxiv-oai", fetched_at="2026-11-23T00:00:00Z", created=day)


def library_with_corpus(target: Path, encoder, name: str = "recent") -> Path:
    """The hostile library, built with `encoder` (None: as frozen, with the packaged model), and
    a corpus `name` of PAPERS built with it too (in the cache $PAPERSCOPE_CACHE points at)."""
    hostile_library(target)
    if encoder is not None:
        Library.open(target, encoder=encoder).build(full=True)
    corpus = Corpus(name, encoder=encoder)
    corpus.import_snapshot(write_snapshot(target.parent / f"{name}.jsonl"), SnapshotFilter())
    corpus.build()
    return target


def update_corpus(name: str, encoder) -> None:
    """Harvest NEW_PAPERS into the corpus (from 2026-11-20) and rebuild its index."""
    Corpus(name, encoder=encoder).update(Harvest(), since="2026-11-20", today=date(2026, 11, 23))
