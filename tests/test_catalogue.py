import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperscope.catalogue import (
    _failer,
    _parse_composed,
    _streamed_entries,
    insert_entry,
    move_entry,
    normalise_arxiv_id,
    parse_catalogue,
    remove_entry,
    rename_entry,
)
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
    (entry(title='"unclosed') + "- section: T\n  entries: []\n", 9,
     "(while scanning a quoted scalar that begins on line 4)"),  # where the mistake is
    ("section: S\n", 1, "list of sections"),
    (entry(title=None), 3, "missing required field `title`"),
    (entry(url=None), 3, "missing required field `url`"),
    (entry(url="ftp://x"), 5, "not an http(s) link"),
    (entry(arxiv='"2106.096"'), 7, "not an arXiv identifier"),
    (entry(kind="video"), 7, "kind 'video'"),
    (entry(id="../../etc/passwd"), 3, "not a slug"),
    (entry(id="Has Spaces"), 3, "not a slug"),
    (entry(summary=None), 3, "needs an `arxiv` id, a `doi` or a `summary`"),
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


def test_everyday_files_are_read_a_streamed_entry_at_a_time():
    # The fast path must keep reading the files people have, or large catalogues are slow again.
    for text in (SMALL_CATALOGUE, (REPO / "catalogue.yaml").read_text(),
                 (REPO / "tests/fixtures/library/catalogue.yaml").read_text()):
        streamed = [node for _, node in _streamed_entries(text, _failer("catalogue.yaml")) if node]
        assert len(streamed) == len(parse_catalogue(text).entries) > 0


def _outcome(parse, text):
    try:
        return parse(text)
    except CatalogueError as err:
        return str(err)


TEMPLATE = """\
# a catalogue
- section: Fine-tuning
  entries:
    - id: lora
      title: "LoRA: Low-Rank Adaptation"
      url: https://arxiv.org/abs/2106.09685
      arxiv: "2106.09685"
      tags: [peft, to-read]

    - id: post
      title: A post
      url: https://example.org/post
      kind: blog
      authors: [Ada Lovelace]
      year: 2021
      summary: >-
        Three sentences of text.
- section: Other
  entries:
    - {id: repo, title: Repo, url: "https://example.org/r", kind: repo, needs_summary: true}
"""
VALUES = ["null", '"Two  spaces"', "~", '""', "yes", "true", "2021", '"2021"', "<<", "=", "1.10", "2021-01-01",
          "!!binary aGk=", "!foo x", "!!str x", "! x", "&a x", "*a", "&b [x, y]", "[a, b]", "{a: 1}",
          '"tab\\there"', '"esc\\x1b[2J"', "- x", "|\n  block", "'quoted'", "x: y", "[]", "@", "\"open"]
KEYS = ["section", "entries", "sektion", "id", "title", "tags", "note", "<<", '"section"']
LINES = ["  extra: 1", "- section: New", "  entries: null", "  entries: []", "---", "...",
         "    - id: lora", "      id: again", "  section: Twice", "    - *a", "- &s {section: S, entries: []}",
         "- *s", "%YAML 1.1", "  <<: {x: 1}", ""]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(data=st.data())
def test_the_streamed_path_agrees_with_the_composed_one(data):
    # Every file gives the same entries, or the same first problem, whichever path reads it.
    text = _mutated(data)
    assert _outcome(parse_catalogue, text) == _outcome(_parse_composed, text)


def _mutated(data, template=TEMPLATE):
    lines = template.splitlines()
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(lines) - 1))
        key, colon, value = lines[at].partition(":")
        if colon and data.draw(st.booleans()):
            lines[at] = f"{key}: {data.draw(st.sampled_from(VALUES))}"
        elif colon and data.draw(st.booleans()):
            lead = re.match(r" *(?:- )?", key).group()
            lines[at] = f"{lead}{data.draw(st.sampled_from(KEYS))}:{value}"
        elif data.draw(st.booleans()):
            lines.insert(at, data.draw(st.sampled_from(LINES)))
        else:
            lines[at], lines[-1 - at] = lines[-1 - at], lines[at]
    return "\n".join(lines) + "\n"


def _unplaced(entries):
    return [dataclasses.replace(entry, line=None) for entry in entries]


EDITABLE = TEMPLATE + """
- entries: []
  section: Empty   # keys in another order

- section: "Quoted"
  entries:
    # a comment before the entry
    - id: 'quoted-id'
      title: Quoted
      url: https://example.org/q
      summary: |
        Kept as written.
      tags: &common [a, b]
    - id: plain
      title: Plain
      url: https://example.org/p
      summary: Text.
      tags: *common
"""


@settings(max_examples=200, deadline=None, derandomize=True)
@given(data=st.data())
def test_edits_change_exactly_the_entry_they_name(data):
    text = _mutated(data, EDITABLE) if data.draw(st.booleans()) else EDITABLE
    try:
        before = parse_catalogue(text)
    except CatalogueError:
        return
    if not before.entries:
        return
    target = data.draw(st.sampled_from(before.entries))
    others = [e for e in before.entries if e.id != target.id]
    section = data.draw(st.sampled_from([*before.sections, "Brand New"]))
    try:
        removed = parse_catalogue(remove_entry(text, target.id))
        renamed = parse_catalogue(rename_entry(text, target.id, "renamed"))
        moved = parse_catalogue(move_entry(text, target.id, section))
    except CatalogueError as err:  # only entries written in flow style are left to the hand
        assert "edit it by hand" in str(err)
        return
    assert _unplaced(removed.entries) == _unplaced(others)
    assert _unplaced(renamed.entries) == _unplaced(
        dataclasses.replace(e, id="renamed") if e.id == target.id else e for e in before.entries)
    assert _unplaced(e for e in moved.entries if e.id != target.id) == _unplaced(others)
    assert [e for e in moved.entries if e.section == section][-1].id == target.id
    added_text = insert_entry(text, section, {"id": "new-one", "title": "New",
                                              "url": "https://example.org/n", "summary": "Text."})
    assert added_text.count("section:") == text.count("section:") + (section not in before.sections)
    added = parse_catalogue(added_text)
    assert _unplaced(e for e in added.entries if e.id != "new-one") == _unplaced(before.entries)
    assert [e for e in added.entries if e.section == section][-1].id == "new-one"


def test_files_with_aliases_where_entries_stand_are_edited_by_hand():
    text = ("- section: A\n  entries: &none []\n- section: B\n  entries: *none\n"
            "- section: C\n  entries:\n    - title: &t same-as-title\n      id: *t\n"
            "      url: https://e.org\n      summary: S.\n")
    assert parse_catalogue(text).get("same-as-title")
    fields = {"id": "n", "title": "N", "url": "https://e.org/n", "summary": "S."}
    with pytest.raises(CatalogueError, match=r"catalogue.yaml:4: .*YAML alias .* edit it by hand"):
        insert_entry(text, "B", fields)
    with pytest.raises(CatalogueError, match=r"catalogue.yaml:4: .*YAML alias .* edit it by hand"):
        remove_entry(text, "same-as-title")
    with pytest.raises(CatalogueError, match="YAML alias"):  # anywhere in the file
        insert_entry(text, "A", fields)


def test_an_entry_added_to_a_section_written_with_extra_spaces_joins_it():
    text = '- section: "Two  spaces"\n  entries: []\n'
    added = insert_entry(text, "Two spaces", {"id": "n", "title": "N", "url": "https://e.org/n",
                                              "summary": "S."})
    assert added.count("section:") == 1 and parse_catalogue(added).get("n").section == "Two spaces"


@pytest.mark.parametrize("field, value, words", [
    ("title", "word " * 300, "`title` is 1,499 characters long; at most 1,000"),
    ("summary", "x" * 20_001, "at most 20,000"),
    ("note", "x" * 20_001, "at most 20,000"),
    ("tags", "[" + "a" * 101 + "]", "longer than 100 characters"),
    ("authors", "[" + ", ".join(["A"] * 1001) + "]", "holds 1,001 items; at most 1,000"),
])
def test_a_field_too_long_for_any_real_entry_is_refused(field, value, words):
    # A cloned catalogue must not make a build embed a megabyte-long title in every passage.
    text = "- section: S\n  entries:\n    - id: x\n      title: T\n      url: https://e.org\n" \
           "      summary: S.\n"
    text = re.sub(rf"      {field}: .*\n", "", text) + f"      {field}: {value}\n"
    with pytest.raises(CatalogueError, match=words):
        parse_catalogue(text)
