"""Editing the catalogue with paperscope commands: add, remove, move, rename, edit, under the
library's lock; tags, notes and open."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paperscope import Library
from paperscope.catalogue import CatalogueFile, parse_catalogue
from paperscope.cli import app
from paperscope.errors import CatalogueChangedError, CatalogueError
from paperscope.index import IndexStore

from .conftest import FIXTURES, REPO, SMALL_CATALOGUE

runner = CliRunner()
SNAPSHOT = str(FIXTURES / "snapshot-sample.jsonl")
POST = ["--title", "Mixture of experts explained", "--summary", "Sparse expert layers and routing."]


def run(library, *args, env=None):
    return runner.invoke(app, ["--library", str(library), *args], env=env)


def text(library: Path) -> str:
    return (library / "catalogue.yaml").read_text()


def ids(library: Path) -> list[str]:
    return [e.id for e in parse_catalogue(text(library)).entries]


def sections(library: Path) -> dict[str, str]:
    return {e.id: e.section for e in parse_catalogue(text(library)).entries}


# -- the lock, and files that change underneath -----------------------------------------


def test_add_waits_for_the_lock_and_keeps_a_hand_edit_made_meanwhile(small_library):
    waiting = threading.Event()
    outcome = {}

    def add():
        library = Library.open(small_library)
        outcome["result"] = library.add("https://example.org/moe", section="Evaluation", build=False,
                                        title="MoE", summary="Experts.", on_wait=waiting.set)

    with IndexStore(small_library / "index").write_lock():
        worker = threading.Thread(target=add)
        worker.start()
        assert waiting.wait(10), "add did not say that it waits for the lock"
        hand = text(small_library).replace("kind: repo\n      year: 2021", "kind: repo\n      year: 2020")
        (small_library / "catalogue.yaml").write_text(hand)
    worker.join(10)
    assert outcome["result"].entry.id == "moe"
    after = parse_catalogue(text(small_library))
    assert after.get("humaneval").year == 2020 and after.get("moe") is not None


def test_no_wait_fails_at_once_while_another_process_writes(small_library):
    before = text(small_library)
    with IndexStore(small_library / "index").write_lock():
        result = run(small_library, "add", "https://example.org/moe", "-s", "Evaluation", *POST,
                     "--no-wait", "--no-build")
        removed = run(small_library, "remove", "lora", "--no-wait", "--no-build")
    assert result.exit_code == 9 and "Another paperscope process" in result.stderr
    assert removed.exit_code == 9
    assert text(small_library) == before


def test_a_file_changed_since_it_was_read_is_not_overwritten(small_library):
    path = small_library / "catalogue.yaml"
    read = CatalogueFile.read(path)
    path.write_text(read.text + "\n# a hand edit\n")
    with pytest.raises(CatalogueChangedError, match="changed since paperscope read it"):
        read.write(read.text.replace("HumanEval", "Human Eval"))
    assert path.read_text().endswith("# a hand edit\n")


def test_edit_refuses_when_the_file_changed_while_the_editor_was_open(small_library):
    def editor(entry: str) -> str:
        path = small_library / "catalogue.yaml"
        path.write_text(path.read_text() + "\n# edited elsewhere meanwhile\n")
        return entry.replace("HumanEval", "Human Eval")

    with pytest.raises(CatalogueChangedError):
        Library.open(small_library).edit("humaneval", editor, build=False)
    assert "Human Eval" not in text(small_library)


def test_a_symlinked_catalogue_stays_a_link_and_keeps_its_mode(small_library, tmp_path):
    real = tmp_path / "elsewhere" / "list.yaml"
    real.parent.mkdir()
    real.write_text(SMALL_CATALOGUE)
    real.chmod(0o640)
    link = small_library / "catalogue.yaml"
    link.unlink()
    link.symlink_to(real)
    result = run(small_library, "add", "https://example.org/moe", "-s", "Evaluation", *POST, "--no-build")
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and link.resolve() == real
    assert "id: mixture-of-experts-explained" in real.read_text()
    assert real.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in real.parent.iterdir()] == ["list.yaml"]


# -- add ----------------------------------------------------------------------------------


def test_add_needs_a_section_when_there_are_several(small_library):
    before = text(small_library)
    result = run(small_library, "add", "https://example.org/moe", *POST, "--no-build")
    assert result.exit_code == 2
    assert "--section" in result.stderr and "Sections: Training Recipe, Evaluation" in result.stderr
    assert text(small_library) == before


def test_add_with_one_section_files_there_and_matches_sections_without_case(tmp_path):
    library = tmp_path / "one"
    library.mkdir()
    (library / "catalogue.yaml").write_text(SMALL_CATALOGUE.split("- section: Evaluation")[0])
    assert run(library, "add", "https://example.org/moe", *POST, "--no-build").exit_code == 0
    assert sections(library)["mixture-of-experts-explained"] == "Training Recipe"
    again = run(library, "add", "https://example.org/b", "--title", "B", "--summary", "S.",
                "-s", "training recipe", "--no-build")
    assert again.exit_code == 0 and sections(library)["b"] == "Training Recipe"
    assert text(library).count("- section:") == 1


def test_a_bad_kind_is_a_usage_error_naming_the_kinds(small_library):
    before = text(small_library)
    result = run(small_library, "add", "https://example.org/moe", "-s", "Evaluation", *POST,
                 "--kind", "video", "--no-build")
    assert result.exit_code == 2
    assert "Unknown kind 'video': choose one of paper, blog, repo." in result.stderr
    assert "catalogue.yaml" not in result.stderr and text(small_library) == before


def test_add_sets_authors_year_tags_and_note(small_library):
    result = run(small_library, "add", "https://example.org/moe", "-s", "Evaluation", *POST,
                 "--authors", "Ada Lovelace, Alan Turing", "--authors", "Grace Hopper", "--year", "2024",
                 "--tag", "moe", "--tag", "to-read", "--note", "Read the routing section first.",
                 "--no-build")
    assert result.exit_code == 0, result.output
    entry = parse_catalogue(text(small_library)).get("mixture-of-experts-explained")
    assert entry.authors == ("Ada Lovelace", "Alan Turing", "Grace Hopper") and entry.year == 2024
    assert entry.tags == ("moe", "to-read") and entry.note == "Read the routing section first."
    assert "      tags: [moe, to-read]\n" in text(small_library)
    bad = run(small_library, "add", "https://example.org/x", "-s", "Evaluation", "--title", "X",
              "--summary", "S.", "--year", "99", "--no-build")
    assert bad.exit_code == 2 and "not in the range 1000<=x<=9999" in bad.stderr and "catalogue.yaml" not in bad.stderr


def test_add_several_arxiv_ids_at_once(small_library):
    (small_library / "catalogue.yaml").write_text(
        SMALL_CATALOGUE.replace('      kind: paper\n      arxiv: "2106.09685"\n',
                                '      kind: paper\n      summary: Low-rank adapters.\n')
        .replace("https://arxiv.org/abs/2106.09685", "https://example.org/lora"))
    result = run(small_library, "add", "2106.09685", "2305.14314", "0704.0001", "-s", "Evaluation",
                 "--from-snapshot", SNAPSHOT, "--tag", "new", "--no-build")
    assert result.exit_code == 0, result.output
    added = result.stdout.split()
    assert len(added) == 3 and added[0] == "lora-2" and added[1] == "qlora"
    catalogue = parse_catalogue(text(small_library))
    assert all(catalogue.get(i).section == "Evaluation" and catalogue.get(i).tags == ("new",) for i in added)
    assert set(Library.open(small_library).records()) == {"2106.09685", "2305.14314", "0704.0001"}
    none = run(small_library, "add", "2305.14314", "2001.08361", "-s", "Evaluation",
               "--from-snapshot", SNAPSHOT, "--no-build")
    assert none.exit_code == 8 and "Nothing was changed" in none.stderr
    one_title = run(small_library, "add", "2305.14314", "2001.08361", "--title", "T", "--no-build")
    assert one_title.exit_code == 2


# -- remove, move, rename ---------------------------------------------------------------


def test_remove_keeps_every_other_byte(small_library):
    result = run(small_library, "remove", "alpaca", "--no-build")
    assert result.exit_code == 0, result.output
    alpaca = SMALL_CATALOGUE[SMALL_CATALOGUE.index("    - id: alpaca"):SMALL_CATALOGUE.index("- section: Evaluation")]
    assert text(small_library) == SMALL_CATALOGUE.replace(alpaca, "")
    assert run(small_library, "remove", "alpaca", "--no-build").exit_code == 3


def test_removing_the_last_entry_of_a_section_keeps_the_section(library_dir):
    library = library_dir
    only = run(library, "move", "gpt-3", "--section", "Lonely", "--create", "--no-build")
    assert only.exit_code == 0, only.output
    assert run(library, "remove", "gpt-3", "--no-build").exit_code == 0
    assert "- section: Lonely\n  entries: []\n" in text(library)
    back = run(library, "add", "https://example.org/x", "-s", "Lonely", "--title", "X", "--summary",
               "S.", "--no-build")
    assert back.exit_code == 0 and sections(library)["x"] == "Lonely"


def test_move_needs_an_existing_section_or_create(small_library):
    before = text(small_library)
    result = run(small_library, "move", "lora", "--section", "Evalution", "--no-build")
    assert result.exit_code == 2 and "Sections: Training Recipe, Evaluation" in result.stderr
    assert "--create" in result.stderr and text(small_library) == before
    assert run(small_library, "move", "lora", "--section", "evaluation", "--no-build").exit_code == 0
    assert sections(small_library)["lora"] == "Evaluation"
    assert run(small_library, "move", "alpaca", "-s", "Data", "--create", "--no-build").exit_code == 0
    assert sections(small_library)["alpaca"] == "Data"
    assert ids(small_library) == ["humaneval", "lora", "alpaca"]
    moved = text(small_library)
    assert moved.startswith("# a small catalogue for tests\n- section: Training Recipe\n  entries: []\n")
    assert '    - id: lora\n      title: "LoRA: Low-Rank Adaptation of Large Language Models"\n' in moved


def test_rename_changes_only_the_id(small_library):
    result = run(small_library, "rename", "alpaca", "stanford-alpaca", "--no-build")
    assert result.exit_code == 0 and result.stdout.strip() == "stanford-alpaca"
    assert text(small_library) == SMALL_CATALOGUE.replace("id: alpaca", "id: stanford-alpaca")
    assert run(small_library, "rename", "lora", "humaneval", "--no-build").exit_code == 2
    assert run(small_library, "rename", "lora", "Not A Slug", "--no-build").exit_code == 2
    assert run(small_library, "rename", "nope", "x", "--no-build").exit_code == 3


def test_editing_commands_update_the_index(small_library, fake_encoder):
    library = Library.open(small_library, encoder=fake_encoder)
    library.build()
    moved = library.move("alpaca", "Evaluation")
    assert moved.build.written and moved.build.embedded == []
    renamed = library.rename("alpaca", "stanford-alpaca")
    assert renamed.entry.id == "stanford-alpaca" and renamed.build.embedded == []
    removed = library.remove("humaneval")
    assert removed.build.removed == ["humaneval"]
    index = IndexStore(small_library / "index").open()
    assert index.ids() == ["lora", "stanford-alpaca"]  # lora waits for its abstract, by title
    assert index.document(1).meta["section"] == "Evaluation"


# -- edit -----------------------------------------------------------------------------------


def editor_script(tmp_path, body: str) -> str:
    script = tmp_path / "editor.py"
    script.write_text("import sys\npath = sys.argv[1]\ntext = open(path).read()\n" + body +
                      "open(path, 'w').write(text)\n")
    return f"{sys.executable} {script}"


def test_edit_opens_the_entry_in_the_editor_and_writes_it_back(small_library, tmp_path):
    editor = editor_script(tmp_path, "assert text.startswith('id: humaneval\\n'), text\n"
                                     "text = text.replace('year: 2021', 'year: 2022') + 'tags: [code]\\n'\n")
    result = run(small_library, "edit", "humaneval", "--no-build", env={"EDITOR": editor, "VISUAL": ""})
    assert result.exit_code == 0, result.output
    assert text(small_library) == SMALL_CATALOGUE.replace(
        "year: 2021", "year: 2022").rstrip("\n") + "\n      tags: [code]\n"


def test_edit_refuses_invalid_text_and_keeps_it(small_library, tmp_path):
    editor = editor_script(tmp_path, "text = text.replace('url: ', 'link: ')\n")
    result = run(small_library, "edit", "humaneval", "--no-build", env={"EDITOR": editor})
    assert result.exit_code == 2
    assert "unknown entry field `link`" in result.stderr and "entry 'humaneval':3" in result.stderr
    kept = Path(result.stderr.split("Your text is kept in ")[1].split()[0].rstrip("."))
    assert "link: https://github.com/openai/human-eval" in kept.read_text()
    kept.unlink()
    assert text(small_library) == SMALL_CATALOGUE


def test_edit_refuses_text_saved_in_another_encoding_and_keeps_it(small_library, tmp_path):
    editor = editor_script(tmp_path, "open(path, 'wb').write(text.replace('HumanEval', 'caf\\xe9')"
                                     ".encode('latin-1'))\nsys.exit(0)\n")
    result = run(small_library, "edit", "humaneval", "--no-build", env={"EDITOR": editor})
    assert result.exit_code == 2 and "not UTF-8 text" in result.stderr, result.output
    assert "Your text is kept in" in result.stderr and text(small_library) == SMALL_CATALOGUE
    Path(result.stderr.split("Your text is kept in ")[1].split()[0].rstrip(".")).unlink()


def test_edit_hands_invalid_text_back_while_asked_to(small_library):
    seen = []

    def editor(entry: str) -> str:
        seen.append(entry)
        return entry.replace("kind: repo", "kind: video") if len(seen) == 1 else \
            entry.replace("kind: video", "kind: blog")

    errors = []
    result = Library.open(small_library).edit("alpaca", editor, lambda error: errors.append(error) or True,
                                               build=False)
    assert result.changed and result.entry.kind == "blog"
    assert "kind 'video'" in str(errors[0]) and "kind: video" in seen[1]
    with pytest.raises(CatalogueError):
        Library.open(small_library).edit("alpaca", lambda entry: "id: [", build=False)


def test_edit_without_an_editor_says_what_to_set(small_library):
    result = run(small_library, "edit", "lora", env={"EDITOR": "", "VISUAL": ""})
    assert result.exit_code == 2 and "$EDITOR" in result.stderr


# -- tags, notes, open ------------------------------------------------------------------------

TAGGED = SMALL_CATALOGUE.replace(
    "      summary: Instruction tuning of LLaMA on generated demonstrations.\n",
    "      summary: Instruction tuning of LLaMA on generated demonstrations.\n"
    "      tags: [data, To-Read]\n"
    "      note: Compare with the zebra distillation recipe.\n").replace(
    "      year: 2021\n", "      year: 2021\n      tags: [code, to-read]\n")


@pytest.fixture
def tagged_library(small_library, fake_encoder):
    (small_library / "catalogue.yaml").write_text(TAGGED)
    library = Library.open(small_library, encoder=fake_encoder)
    library.build()
    return library


def test_tags_and_notes_are_validated():
    def entry(extra: str) -> str:
        return f"- section: S\n  entries:\n    - id: x\n      title: T\n      url: https://e.org\n" \
               f"      summary: S.\n{extra}"

    assert parse_catalogue(entry("      tags: [a, b]\n      note: Mine.\n")).entries[0].tags == ("a", "b")
    for bad, words in [("      tags: a\n", "list of words"), ("      tags: [[a]]\n", "list of words"),
                       ("      note: [a]\n", "`note` must be text"),
                       ('      tags: ["a\\u001b[2J"]\n', "list of words")]:
        with pytest.raises(CatalogueError, match=words):
            parse_catalogue(entry(bad))


def test_tags_and_notes_reach_the_index_and_notes_are_searched(tagged_library):
    index = IndexStore(tagged_library.paths.index_dir).open()
    meta = index.document(index.position("alpaca")).meta
    assert meta["tags"] == ["data", "To-Read"] and meta["note"].startswith("Compare with the zebra")
    assert index.document(index.position("humaneval")).meta["tags"] == ["code", "to-read"]
    hits = tagged_library.search("zebra distillation", mode="lexical").hits
    assert [h.document.id for h in hits] == ["alpaca"]


def test_tag_filters_search_related_and_list(tagged_library):
    from paperscope.library import Filters

    to_read = Filters(tags=("to-read",))
    found = tagged_library.search("instruction tuning programming", k=5, filters=to_read).hits
    assert {h.document.id for h in found} == {"alpaca", "humaneval"}
    code = tagged_library.search("instruction tuning", k=5, filters=Filters(tags=("CODE",))).hits
    assert [h.document.id for h in code] == ["humaneval"]
    related = tagged_library.related("alpaca", k=5, filters=Filters(tags=("code",))).hits
    assert [h.document.id for h in related] == ["humaneval"]
    library = tagged_library.paths.root
    listed = json.loads(run(library, "list", "--tag", "to-read", "--json").stdout)
    assert [e["id"] for e in listed] == ["alpaca", "humaneval"] and listed[0]["note"]
    lexical = run(library, "search", "generated demonstrations", "--mode", "lexical", "--tag", "data", "--json")
    assert [h["id"] for h in json.loads(lexical.stdout)] == ["alpaca"]
    unknown = run(library, "search", "tuning", "--mode", "lexical", "--tag", "nope")
    assert unknown.exit_code == 2 and "No entry is tagged 'nope'" in unknown.stderr
    assert "Tags: code, data, to-read" in unknown.stderr
    assert run(library, "list", "--tag", "nope").exit_code == 2


def test_show_prints_tags_and_note(tagged_library):
    out = run(tagged_library.paths.root, "show", "alpaca").stdout
    assert "tags: data, To-Read" in out and "Note: Compare with the zebra" in out


def test_entries_without_tags_or_notes_index_as_before(library_dir):
    result = run(library_dir, "status", "--check")
    assert result.exit_code == 0, result.output


def test_open_prints_the_link_when_not_on_a_terminal(small_library, monkeypatch):
    import webbrowser

    monkeypatch.setattr(webbrowser, "open", lambda url: pytest.fail("no browser when piped"))
    result = run(small_library, "open", "alpaca")
    assert result.exit_code == 0 and result.stdout == "https://github.com/tatsu-lab/stanford_alpaca\n"
    assert run(small_library, "open", "2106.09685").stdout.strip() == "https://arxiv.org/abs/2106.09685"
    assert run(small_library, "open", "nope").exit_code == 3


# -- many editing commands at once ------------------------------------------------------------


def paperscope(library: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "paperscope", "--library", str(library), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.slow
def test_concurrent_editing_commands_never_lose_an_entry(small_library):
    for round_ in range(3):
        processes = [paperscope(small_library, "add", f"https://example.org/{round_}-{n}", "-s", "Evaluation",
                                "--title", f"Post {round_} {n}", "--summary", "Text.", "--id",
                                f"post-{round_}-{n}", "--no-build") for n in range(6)]
        target = "Evaluation" if round_ % 2 == 0 else "Training Recipe"
        processes.append(paperscope(small_library, "move", "alpaca", "-s", target, "--no-build"))
        processes.append(paperscope(small_library, "build"))
        processes.append(paperscope(small_library, "rename", "humaneval" if round_ == 0 else
                                    f"humaneval-{round_ - 1}", f"humaneval-{round_}", "--no-build"))
        for process in processes:
            _out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
        found = sections(small_library)
        assert {f"post-{round_}-{n}" for n in range(6)} <= set(found)
        assert found["alpaca"] == target and f"humaneval-{round_}" in found
        assert len(found) == 3 + 6 * (round_ + 1)
    assert paperscope(small_library, "build").wait(120) == 0
    assert set(IndexStore(small_library / "index").open().ids()) == set(found)  # lora by its title


@pytest.mark.parametrize("encode", [
    lambda text: text.replace("\n", "\r\n").encode(),  # written on Windows
    lambda text: b"\xef\xbb\xbf" + text.encode(),  # with a byte-order mark
])
def test_files_with_crlf_line_ends_or_a_bom_are_edited_and_keep_them(small_library, encode):
    path = small_library / "catalogue.yaml"
    original = path.read_text()
    path.write_bytes(encode(original))
    for args in (["rename", "lora", "lora-paper"], ["remove", "alpaca"],
                 ["add", "https://example.org/post", "--title", "A post", "--summary", "Text.",
                  "--section", "Training Recipe"]):
        result = CliRunner().invoke(app, ["--library", str(small_library), *args, "--no-build"])
        assert result.exit_code == 0, result.output
    expected = original.replace("id: lora\n", "id: lora-paper\n")
    data = path.read_bytes()
    assert data == encode(data.decode("utf-8-sig").replace("\r\n", "\n"))  # line ends and BOM kept
    catalogue = parse_catalogue(data.decode("utf-8-sig"))
    assert {e.id for e in catalogue.entries} == {e.id for e in parse_catalogue(expected).entries
                                                 if e.id != "alpaca"} | {"a-post"}
    assert catalogue.get("a-post").section == "Training Recipe"


def test_a_section_emptied_by_remove_is_still_a_section(small_library):
    catalogue = small_library / "catalogue.yaml"
    for entry in parse_catalogue(catalogue.read_text()).entries:
        if entry.section == "Evaluation":
            assert CliRunner().invoke(app, ["--library", str(small_library), "remove", entry.id,
                                            "--no-build"]).exit_code == 0
    library = Library.open(small_library)
    assert "Evaluation" in library.catalogue.sections and library.entries(section="Evaluation") == []
    moved = library.move("lora", "Evaluation", build=False)
    assert moved.entry.section == "Evaluation" and catalogue.read_text().count("section: Evaluation") == 1
