"""The reading list as Markdown, both ways: export, init --from-markdown and the round trip."""

import pytest
from typer.testing import CliRunner

from paperscope.catalogue import parse_catalogue
from paperscope.cli import app
from paperscope.errors import CatalogueError, UsageError
from paperscope.index import IndexStore
from paperscope.indexer import build_index
from paperscope.ingest import catalogue_documents
from paperscope.markdown import (
    catalogue_to_markdown,
    markdown_to_catalogue_yaml,
    read_markdown_list,
)
from paperscope.records import PaperRecord
from paperscope.search import Searcher

from .conftest import FIXTURES, SMALL_CATALOGUE

runner = CliRunner()
SEED = FIXTURES / "seed-reading-list.md"
SEED_TITLE = "Reading materials for Large Language Model (LLM)"

OTHER_SHAPE = """\
[![Awesome](https://awesome.re/badge.svg)](https://awesome.re)

A list about retrieval; see [the guide](https://example.org/guide) first.

## Contents
- [Dense retrieval](#dense-retrieval)

## Dense retrieval
### Papers
- [Dense Passage Retrieval for Open-Domain QA](https://arxiv.org/abs/2004.04906v3) (2020)
- [**ColBERT**: Efficient Passage Search](http://arxiv.org/pdf/2004.12832v2.pdf) - late interaction
* Sentence-BERT https://arxiv.org/abs/1908.10084
- https://arxiv.org/abs/2112.09118
- Scaling Laws for Neural Language Models. [[pdf]](https://arxiv.org/pdf/2001.08361v1)

### Posts
- [Okapi BM25](https://en.wikipedia.org/wiki/Okapi_BM25_(ranking))
  - [A nested post](https://example.com/nested)

```
- [Inside a code block](https://example.com/code)
```

## Tools
1) [faiss](https://github.com/facebookresearch/faiss)
2) [DPR, listed again](https://arxiv.org/abs/2004.04906)
3) <https://example.com/autolink>.
"""


def links_by_section(markdown: str) -> list[tuple[str, list[tuple[str, str]]]]:
    catalogue = read_markdown_list(markdown, "list.md").catalogue
    return [(section, [(e.title, e.url) for e in catalogue.entries if e.section == section])
            for section in catalogue.sections]


def test_the_seed_list_round_trips_with_its_sections_links_and_numbering():
    text = SEED.read_text(encoding="utf-8")
    made = read_markdown_list(text, SEED.name)
    assert made.title == SEED_TITLE and made.skipped == ()
    exported = catalogue_to_markdown(made.catalogue, title=made.title)
    # Everything but the intro sentence and a trailing space comes back line for line.
    expected = [line.rstrip() for line in text.splitlines() if not line.startswith("This repo")]
    assert exported.splitlines() == expected
    assert links_by_section(exported) == links_by_section(text)


def test_the_seed_list_becomes_a_valid_catalogue_in_the_repository_style():
    made = read_markdown_list(SEED.read_text(encoding="utf-8"), SEED.name)
    catalogue = made.catalogue
    assert len(catalogue.entries) == 40 and catalogue.sections[0] == "Model Architecture"
    assert len(catalogue.sections) == 8
    lora = catalogue.get("lora")
    assert lora.arxiv_id == "2106.09685" and lora.url == "https://arxiv.org/pdf/2106.09685.pdf"
    assert catalogue.by_arxiv_id()["2203.13474"].url.endswith("?trk=public_post_comment-text")
    assert len(catalogue.by_arxiv_id()) == 19 and len(made.needs_summary) == 21
    assert {e.kind for e in made.needs_summary if "github.com" in e.url} == {"repo"}
    assert all(not e.arxiv_id and not e.summary for e in made.needs_summary)
    assert parse_catalogue(made.yaml).entries == catalogue.entries
    assert made.yaml.startswith("# paperscope catalogue")
    assert "\n- section: Training Recipe\n  entries:\n    - id: fine-tuning" in made.yaml
    assert "\n\n    - id: lora\n      title: 'LoRA: Low-Rank Adaptation of Large Language " \
           "Models'\n" in made.yaml
    # A long title or link stays on one line, as a person would write it.
    assert "      title: Can LLM Already Serve as A Database Interface? A BIg Bench for " \
           "Large-Scale Database Grounded Text-to-SQLs\n" in made.yaml
    assert all(line == line.rstrip() for line in made.yaml.splitlines())


def test_another_list_shape_bullets_nested_headings_plain_and_versioned_arxiv_links():
    made = read_markdown_list(OTHER_SHAPE, "awesome.md")
    catalogue = made.catalogue
    assert made.title is None
    assert catalogue.sections == ["Dense retrieval / Papers", "Dense retrieval / Posts", "Tools"]
    rows = [(e.id, e.title, e.arxiv_id, e.kind, e.year) for e in catalogue.entries]
    assert rows == [
        ("dense-passage-retrieval", "Dense Passage Retrieval for Open-Domain QA",
         "2004.04906", "paper", 2020),
        ("colbert", "ColBERT: Efficient Passage Search", "2004.12832", "paper", None),
        ("sentence-bert", "Sentence-BERT", "1908.10084", "paper", None),
        ("arxiv-2112-09118", "arXiv:2112.09118", "2112.09118", "paper", None),
        ("scaling-laws-for-neural", "Scaling Laws for Neural Language Models",
         "2001.08361", "paper", None),
        ("okapi-bm25", "Okapi BM25", None, "blog", None),
        ("a-nested-post", "A nested post", None, "blog", None),
        ("faiss", "faiss", None, "repo", None),
        ("example-com-autolink", "https://example.com/autolink", None, "blog", None),
    ]
    assert catalogue.get("okapi-bm25").url == "https://en.wikipedia.org/wiki/Okapi_BM25_(ranking)"
    assert [e.id for e in made.needs_summary] == ["okapi-bm25", "a-nested-post", "faiss",
                                                 "example-com-autolink"]
    assert made.skipped == (("DPR, listed again (https://arxiv.org/abs/2004.04906): listed before "
                             "in Dense retrieval / Papers"),)
    assert links_by_section(catalogue_to_markdown(catalogue)) == links_by_section(OTHER_SHAPE)


def test_a_list_with_one_level_of_headings_and_entries_before_them():
    text = ("- [Intro post](https://example.com/intro)\n\n"
            "# Papers\n1. [LoRA](https://arxiv.org/abs/2106.09685)\n"
            "# Posts\n1. [A post](https://example.com/post)\n")
    catalogue = read_markdown_list(text, "list.md").catalogue
    assert catalogue.sections == ["Reading list", "Papers", "Posts"]


def test_brackets_quotes_and_odd_section_names_survive_the_round_trip():
    text = ('## LLM\'s "Evaluation": 🚀 ##\n- [A [2023] survey](https://e.org/a)\n'
            "- [Unbalanced \\[ bracket](https://e.org/b)\n")
    made = read_markdown_list(text, "list.md")
    assert made.catalogue.sections == ['LLM\'s "Evaluation": 🚀']
    assert [e.title for e in made.catalogue.entries] == ["A [2023] survey", "Unbalanced [ bracket"]
    exported = catalogue_to_markdown(made.catalogue)
    assert "1. [A \\[2023\\] survey](https://e.org/a)\n" in exported
    assert links_by_section(exported) == links_by_section(text)


@pytest.mark.parametrize("text", ["", "# Title\n\nJust prose, [a link](https://example.com).\n",
                                  "## Contents\n- [Papers](#papers)\n- ![badge](https://x.org/b.svg)\n"])
def test_a_list_without_entries_is_a_clear_usage_error(text):
    with pytest.raises(UsageError) as caught:
        markdown_to_catalogue_yaml(text, "notes.md")
    assert "notes.md: no list item with an http(s) link" in caught.value.message
    assert "1. [Title](https://...)" in caught.value.hint


def test_export_writes_years_from_the_entry_or_its_arxiv_record():
    catalogue = parse_catalogue(SMALL_CATALOGUE)
    record = PaperRecord(arxiv_id="2106.09685", title="LoRA", abstract="a", authors=(), year=2021,
                         categories=(), primary_category=None, source="test", fetched_at="")
    text = catalogue_to_markdown(catalogue, years=True, records={"2106.09685": record})
    assert text == (
        "## Training Recipe\n"
        "1. [LoRA: Low-Rank Adaptation of Large Language Models]"
        "(https://arxiv.org/abs/2106.09685) (2021)\n"
        "2. [Stanford Alpaca](https://github.com/tatsu-lab/stanford_alpaca)\n\n"
        "## Evaluation\n"
        "1. [HumanEval](https://github.com/openai/human-eval) (2021)\n")
    again = read_markdown_list(text, "README.md").catalogue
    assert [e.year for e in again.entries] == [2021, None, 2021]


def test_needs_summary_is_validated():
    base = "- section: S\n  entries:\n    - id: post\n      title: A post\n      url: https://e.org/p\n"
    assert parse_catalogue(base + "      needs_summary: true\n").entries[0].needs_summary
    for extra, message in [("", "needs an `arxiv` id, a `doi` or a `summary`"),
                           ("      needs_summary: false\n", "needs an `arxiv` id, a `doi` or a `summary`"),
                           ("      needs_summary: soon\n", "must be true or false"),
                           ('      arxiv: "2106.09685"\n      needs_summary: true\n', "is on arXiv")]:
        with pytest.raises(CatalogueError, match=message):
            parse_catalogue(base + extra)


def test_an_entry_that_needs_a_summary_is_searched_by_its_title(tmp_path, fake_encoder):
    catalogue = read_markdown_list(SEED.read_text(encoding="utf-8"), SEED.name).catalogue
    documents, missing = catalogue_documents(catalogue, {})
    assert len(documents) == 40 and len(missing) == 19  # arXiv entries wait for their abstract
    store = IndexStore(tmp_path / "index")
    build_index(store, documents, model="fake-model", encoder=fake_encoder)
    searcher = Searcher(store.open(), encoder=fake_encoder)
    for mode in ("hybrid", "lexical"):
        assert searcher.search("Megatron-LM", k=1, mode=mode)[0].document.id == "megatron-lm"


# -- the commands ---------------------------------------------------------------------


def test_init_writes_the_catalogue_reports_it_and_refuses_to_overwrite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init", "--from-markdown", str(SEED)])
    assert result.exit_code == 0, result.output
    written = (tmp_path / "catalogue.yaml").read_text(encoding="utf-8")
    assert len(parse_catalogue(written).entries) == 40
    assert "40 entries in 8 sections, 19 with an arXiv id" in result.stderr
    assert "21 entries need a summary" in result.stderr and "megatron-lm" in result.stderr
    assert "1. paperscope ingest" in result.stderr and "then: paperscope build" in result.stderr
    assert f"export markdown --title '{SEED_TITLE}'" in result.stderr

    (tmp_path / "catalogue.yaml").write_text("# mine\n")
    again = runner.invoke(app, ["init", "--from-markdown", str(SEED)])
    assert again.exit_code == 2 and "already exists" in again.stderr and "--force" in again.stderr
    assert (tmp_path / "catalogue.yaml").read_text() == "# mine\n"
    forced = runner.invoke(app, ["init", "--from-markdown", str(SEED), "--force"])
    assert forced.exit_code == 0 and (tmp_path / "catalogue.yaml").read_text(encoding="utf-8") == written


def test_init_then_export_gives_back_the_seed_list(tmp_path):
    library = tmp_path / "new-library"
    made = runner.invoke(app, ["--library", str(library), "init", "--from-markdown", str(SEED)])
    assert made.exit_code == 0 and f"paperscope --library {library} ingest" in made.stderr
    exported = runner.invoke(app, ["--library", str(library), "export", "markdown"])
    assert exported.exit_code == 0
    assert links_by_section(exported.stdout) == links_by_section(SEED.read_text(encoding="utf-8"))
    readme = tmp_path / "README.md"
    written = runner.invoke(app, ["--library", str(library), "export", "markdown", "--title", SEED_TITLE,
                                  "--output", str(readme)])
    assert written.exit_code == 0 and written.stdout == ""
    assert "Wrote 40 entries in 8 sections" in written.stderr
    assert readme.read_text(encoding="utf-8") == f"# {SEED_TITLE}\n\n" + exported.stdout


def test_init_rejects_a_file_that_is_not_utf8_or_holds_no_links(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    latin = tmp_path / "list.md"
    latin.write_bytes("## Lectures\n1. [Café](https://example.com)\n".encode("latin-1"))
    result = runner.invoke(app, ["init", "--from-markdown", str(latin)])
    assert result.exit_code == 2 and "not UTF-8 text" in result.stderr
    prose = tmp_path / "prose.md"
    prose.write_text("# Notes\n\nNothing to read yet.\n")
    result = runner.invoke(app, ["init", "--from-markdown", str(prose)])
    assert result.exit_code == 2 and "prose.md: no list item with an http(s) link" in result.stderr
    missing = runner.invoke(app, ["init", "--from-markdown", str(tmp_path / "nope.md")])
    assert missing.exit_code == 2 and "not found" in missing.stderr
    assert not (tmp_path / "catalogue.yaml").exists()


def test_export_with_years_reads_the_record_cache(library_dir):
    result = runner.invoke(app, ["--library", str(library_dir), "export", "markdown", "--years"])
    assert result.exit_code == 0
    assert "1. [Attention Is All You Need (Transformers)](https://arxiv.org/pdf/1706.03762.pdf) (2017)" \
        in result.stdout.splitlines()


def test_export_writes_tags_when_asked():
    from paperscope.catalogue import parse_catalogue
    from paperscope.markdown import catalogue_to_markdown

    catalogue = parse_catalogue(
        "- section: Training\n  entries:\n    - id: lora\n      title: LoRA\n"
        "      url: https://arxiv.org/abs/2106.09685\n      arxiv: \"2106.09685\"\n"
        "      tags: [peft, adapters]\n")
    assert "1. [LoRA](https://arxiv.org/abs/2106.09685) `peft` `adapters`" in \
        catalogue_to_markdown(catalogue, tags=True)
    assert "`peft`" not in catalogue_to_markdown(catalogue)
