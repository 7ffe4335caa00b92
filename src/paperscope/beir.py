"""Reading datasets in BEIR layout: corpus.jsonl[.gz] (`_id, title, text`),
queries.jsonl (`_id, text`) and qrels/<split>.tsv (query-id, corpus-id, score)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

from .errors import UsageError
from .records import Document


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield number, line
    except FileNotFoundError:
        raise UsageError(f"File not found: {path}") from None
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise UsageError(f"Cannot read {path}: {err}") from None


def _json_lines(path: Path) -> Iterator[dict]:
    for number, line in _lines(path):
        try:
            data = json.loads(line)
        except (ValueError, RecursionError) as err:
            raise UsageError(f"{path}:{number}: not a JSON object ({err}).") from None
        if not isinstance(data, dict) or "_id" not in data:
            raise UsageError(f"{path}:{number}: expected an object with an `_id`.")
        yield data


CORPUS_NAMES = ("corpus.jsonl", "corpus.jsonl.gz")


def has_corpus(dataset: Path) -> bool:
    """Whether a dataset folder holds its own corpus (else its qrels judge the catalogue)."""
    return any((dataset / name).is_file() for name in CORPUS_NAMES)


def corpus_file(path: Path) -> Path:
    """The corpus file of a dataset folder, or `path` itself if it is a file."""
    if path.is_dir():
        for name in CORPUS_NAMES:
            if (path / name).is_file():
                return path / name
        raise UsageError(f"{path} holds no corpus.jsonl or corpus.jsonl.gz.")
    return path


def read_corpus(path: Path) -> list[Document]:
    """Every document of a BEIR corpus, in file order."""
    documents, seen = [], set()
    for data in _json_lines(corpus_file(path)):
        doc_id = str(data["_id"])
        if doc_id in seen:
            raise UsageError(f"{path}: the id {doc_id!r} appears twice.")
        seen.add(doc_id)
        documents.append(Document(id=doc_id, title=" ".join(str(data.get("title") or "").split()),
                                  text=" ".join(str(data.get("text") or "").split())))
    return documents


def read_queries(dataset: Path) -> dict[str, str]:
    return {str(q["_id"]): str(q.get("text", "")) for q in _json_lines(dataset / "queries.jsonl")}


def read_qrels(dataset: Path, split: str) -> dict[str, dict[str, int]]:
    """Relevance judgements: query id -> {document id: grade}."""
    path = dataset / "qrels" / f"{split}.tsv"
    if not path.is_file():
        available = sorted(p.stem for p in (dataset / "qrels").glob("*.tsv"))
        raise UsageError(f"No qrels for split {split!r} in {dataset}.",
                         f"Splits there: {', '.join(available) or 'none'}")
    judged: dict[str, dict[str, int]] = {}
    for number, line in _lines(path):
        row = line.rstrip("\r\n").split("\t")
        if number == 1 and not row[-1].strip().lstrip("-").isdigit():
            continue  # header
        if len(row) < 3:
            continue
        try:
            judged.setdefault(row[0], {})[row[1]] = int(row[2])
        except ValueError:
            raise UsageError(f"{path}:{number}: the score {row[2]!r} is not a whole number.") from None
    return judged
