from pathlib import Path

import pytest

from paperscope.catalogue import normalise_arxiv_id, parse_catalogue
from paperscope.errors import CatalogueError
from paperscope.text import sentences

from .conftest import REPO, SMALL_CATALOGUE


def test_the_repository_catalogue_holds_the_whole_reading_list():
    # The one test of the live catalogue.yaml; every other test reads tests/fixtures/library/.
    # Papers may be added: the counts are the reading list's floor, not its size.
    catalogue = parse_catalogue((REPO / "catalogue.yaml").read_text(), Path("catalogue.yaml"))
    assert len(catalogue.entries) >= 40
    assert len([e for e in catalogue.entries if e.arxiv_id]) >= 20
    assert catalogue.sections == [
        "Model Architecture", "Inference Optimization", "Training Recipe", "Training Dataset",
        "Training Framework", "LLM for Coding", "RLHF for LLM", "LLM Evaluation"]
    gpt3 = catalogue.get("gpt-3")
    assert gpt3.arxiv_id == "2005.14165" and gpt3.url.startswith("https://proceedings.neurips.cc")
    for entry in catalogue.entries:
        if not entry.arxiv_id:
            assert 3 <= len(sentences(entry.summary)) <= 6, entry.id
    assert catalogue.get("lora").title == "LoRA: Low-Rank Adaptation of Large Language Models"


def test_small_catalogue_fields():
    catalogue = parse_catalogue(SMALL_CATALOGUE)
    lora, alpaca, humaneval = catalogue.entries
    assert (lora.section, lora.arxiv_id, lora.kind, lora.line) == ("Training Recipe", "2106.09685", "paper", 4)
    assert alpaca.summary.startswith("Instruction tuning") and alpaca.arxiv_id is None
    assert humaneval.year == 2021 and humaneval.section == "Evaluation"


def _error(text: str) -> CatalogueError:
    with pytest.raises(CatalogueError) as caught:
        parse_catalogue(text, Path("catalogue.yaml"))
    return caught.value


def entry(**fields) -> str:
    base = {"id": "x", "title": "T", "url": "https://example.org", "summary": "S."}
    base.update(fields)
    body = "".join(f"      {k}: {v}\n" for k, v in base.items() if v is not None)
    return f"- section: S\n  entries:\n    - {body.lstrip()}"


@pytest.mark.parametrize("text, line, words", [
    ("- section: [unclosed\n", 2, "invalid YAML"),
    ("section: S\n", 1, "list of sections"),
    (entry(title=None), 3, "missing required field `title`"),
    (entry(url=None), 3, "missing required field `url`"),
    (entry(url="ftp://x"), 5, "not an http(s) link"),
    (entry(arxiv='"2106.096"'), 7, "not an arXiv identifier"),
    (entry(kind="video"), 7, "kind 'video'"),
    (entry(id="../../etc/passwd"), 3, "not a slug"),
    (entry(id="Has Spaces"), 3, "not a slug"),
    (entry(summary=None), 3, "needs an `arxiv` id or a `summary`"),
    (entry(colour="red"), 7, "unknown entry field `colour`"),
    (entry(year="twenty"), 7, "four-digit year"),
    (entry(authors="Ada"), 7, "list of names"),
    (entry(title="[a, b]"), 4, "`title` must be text"),
])
def test_validation_errors_name_file_line_and_problem(text, line, words):
    error = _error(text)
    assert error.line == line, str(error)
    assert words in str(error)
    assert str(error).startswith(f"catalogue.yaml:{line}: ")
    assert error.exit_code == 2


def test_duplicate_ids_point_at_both_places():
    text = entry() + "    - id: x\n      title: T2\n      url: https://e.org\n      summary: S.\n"
    error = _error(text)
    assert error.line == 7 and "duplicate id 'x' (first used on line 3)" in str(error)


def test_duplicate_arxiv_ids_are_rejected():
    text = entry(id="a", arxiv='"2106.09685"') + \
        '    - id: b\n      title: T\n      url: https://e.org\n      arxiv: "2106.09685"\n'
    assert "already the entry 'a'" in str(_error(text))


def test_yaml_is_loaded_safely():
    error = _error("- !!python/object/apply:os.system ['echo hacked']\n")
    assert "YAML tag !!python/object/apply:os.system is not allowed" in str(error)


def test_empty_catalogue_is_valid():
    assert parse_catalogue("").entries == ()


@pytest.mark.parametrize("raw, expected", [
    ("2106.09685", "2106.09685"),
    ("2106.09685v2", "2106.09685"),
    ("arXiv:2305.14314", "2305.14314"),
    ("https://arxiv.org/abs/2305.14314v1", "2305.14314"),
    ("https://arxiv.org/pdf/2203.13474.pdf?trk=x", "2203.13474"),
    ("hep-th/9901001", "hep-th/9901001"),
    ("12345", None),
    ("../2106.09685", None),
])
def test_arxiv_ids_are_normalised(raw, expected):
    assert normalise_arxiv_id(raw) == expected
