"""Hostile and damaged input: records without text, damaged-but-valid records.json, malformed
snapshot lines, escape sequences on the way to a terminal, BibTeX break-outs, a mistyped
--library, YAML tags and bad qrels. Each case ends in a clear message or a skipped record."""

import gzip
import io
import json
import re
import tracemalloc

import bibtexparser
import pytest
from typer.testing import CliRunner

from paperscope.beir import read_qrels, read_queries
from paperscope.catalogue import parse_catalogue
from paperscope.cli import app
from paperscope.corpora import ImportReport, parse_snapshot_line
from paperscope.errors import CatalogueError, IndexCorruptError, SnapshotError, UsageError
from paperscope.files import LibraryPaths
from paperscope.index import IndexStore
from paperscope.ingest import ids_to_fetch, ingest
from paperscope.library import Library
from paperscope.records import Document, Entry, Hit, PaperRecord
from paperscope.render import hits_for_terminal
from paperscope.sources.snapshot import read_snapshot

from .conftest import FIXTURES, SMALL_CATALOGUE, SMALL_CATALOGUE_PAGES

runner = CliRunner()
LORA = "2106.09685"
SAMPLE = FIXTURES / "snapshot-sample.jsonl"
GOOD_LINE = json.dumps({"id": LORA, "title": "LoRA", "abstract": "Low-rank adaptation."})
HOSTILE = "\x1b[2J\x1b]0;owned\x07\u202eevil\u2066\x9b31m\x7f"
UNSAFE = ("\x1b", "\x07", "\u202e", "\u2066", "\x9b", "\x7f")


def write_records(library, **records):
    (library / "index").mkdir(exist_ok=True)
    (library / "index" / "records.json").write_text(json.dumps({"format": 1, "records": records}))


def record_json(**fields):
    return {"arxiv_id": LORA, "title": "LoRA", "abstract": "Low-rank adaptation.", "authors": ["E. Hu"],
            "year": 2021, "categories": ["cs.CL"], "primary_category": "cs.CL", "source": "arxiv-api",
            "fetched_at": "2024-01-01T00:00:00+00:00", **fields}


# -- 1. records without text ------------------------------------------------------------


def test_a_snapshot_line_without_abstract_never_replaces_a_good_one(small_library, tmp_path):
    catalogue, store = parse_catalogue(SMALL_CATALOGUE), IndexStore(small_library / "index")
    ingest(catalogue, store, snapshot=SAMPLE)
    good = store.read_records()[LORA].abstract
    for line in ({"id": LORA, "title": "LoRA"}, {"id": LORA, "title": "LoRA", "abstract": "  "}):
        empty = tmp_path / "empty.jsonl"
        empty.write_text(json.dumps(line) + "\n")
        report = ingest(catalogue, store, snapshot=empty, refresh=True)
        assert report.fetched == [] and "no record with title and abstract" in report.failures[LORA]
        assert store.read_records()[LORA].abstract == good


def test_a_cached_record_without_text_is_fetched_again():
    catalogue = parse_catalogue(SMALL_CATALOGUE)
    empty = PaperRecord.from_json(record_json(abstract=""))
    pages = sorted(SMALL_CATALOGUE_PAGES, reverse=True)  # alpaca, then humaneval, as listed
    assert ids_to_fetch(catalogue, {LORA: empty}, refresh=False) == [LORA, *pages]
    assert ids_to_fetch(catalogue, {LORA: PaperRecord.from_json(record_json())}, refresh=False) == pages


def test_entries_without_text_are_not_up_to_date(small_library, fake_encoder):
    library = Library(LibraryPaths(small_library), encoder=fake_encoder)
    library.build()  # lora has no abstract yet: the index searches it by its title
    status = library.status()
    assert status["missing_text"] == ["lora"] and status["up_to_date"] is False
    assert status["state"] == "waiting for abstracts"


def test_status_check_names_the_command_that_fetches_missing_text(library_dir):
    write_records(library_dir, **{key: value for key, value in json.loads(
        (library_dir / "index" / "records.json").read_text())["records"].items() if key != LORA})
    result = runner.invoke(app, ["--library", str(library_dir), "status", "--check"])
    assert result.exit_code == 1
    assert "waiting for an abstract: lora" in result.stdout
    assert "`paperscope ingest`" in result.stdout and "--from-snapshot FILE" in result.stdout


# -- 2. records.json: damaged but valid JSON --------------------------------------------


def test_a_year_written_as_text_is_read_as_a_number():
    assert PaperRecord.from_json(record_json(year="2021")).year == 2021


def test_a_null_abstract_is_no_abstract_not_the_text_none():
    record = PaperRecord.from_json(record_json(abstract=None))
    assert record.abstract == ""


@pytest.mark.parametrize("records", [
    {LORA: record_json(title=5)},
    {LORA: record_json(title=None)},
    {LORA: record_json(abstract={"text": "x"})},
    {LORA: record_json(authors="E. Hu")},
    {LORA: record_json(authors=[1, 2])},
    {LORA: record_json(year=[2021])},
    {LORA: record_json(year="twenty")},
    {LORA: record_json(year=True)},
    {LORA: record_json(categories=None, primary_category=7)},
    {LORA: "a record"},
    {"2305.14314": record_json()},  # stored under another paper's id
    [record_json()],
])
def test_wrong_types_in_records_json_are_a_damaged_cache(tmp_path, records):
    (tmp_path / "records.json").write_text(json.dumps({"format": 1, "records": records}))
    with pytest.raises(IndexCorruptError, match=r"record cache .* is damaged") as error:
        IndexStore(tmp_path).read_records()
    assert "paperscope ingest" in error.value.hint


@pytest.mark.parametrize("content", ["[" * 100_000 + "]" * 100_000, "[1, 2]", '{"records": null}'])
def test_damaged_records_json_documents_are_a_damaged_cache(tmp_path, content):
    (tmp_path / "records.json").write_text(content)
    with pytest.raises(IndexCorruptError, match="record cache"):
        IndexStore(tmp_path).read_records()


def test_records_json_replaced_by_a_folder_is_a_damaged_cache(tmp_path):
    (tmp_path / "records.json").mkdir()
    with pytest.raises(IndexCorruptError, match="record cache"):
        IndexStore(tmp_path).read_records()


# -- 3. snapshot input ------------------------------------------------------------------


def snapshot_with(tmp_path, *lines: bytes, name="snap.jsonl") -> object:
    path = tmp_path / name
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def line(**fields) -> bytes:
    return json.dumps({"id": LORA, "title": "LoRA", "abstract": "Low-rank adaptation.", **fields}).encode()


@pytest.mark.parametrize("hostile", [
    line(title=5),
    line(abstract={"text": "an object"}),
    line(abstract=None),
    line(abstract=""),
    b'{"id": "' + LORA.encode() + b'", "title": "LoRA", broken',
    b'{"id": "' + LORA.encode() + b'", "title": ' + b"[" * 100_000,
])
def test_unusable_snapshot_records_are_skipped(tmp_path, hostile):
    path = snapshot_with(tmp_path, line(id="0704.0001"), hostile)
    assert read_snapshot(path, [LORA]) == {}
    report = ImportReport()
    assert parse_snapshot_line(hostile, report) is None and sum(report.skipped.values()) == 1


@pytest.mark.parametrize("other", [
    b'{"id": "' + LORA.encode() + b'", "title": "Other", "abstract": "Another paper.", "id": "0704.0001"}',
    b'{"meta": {"id": "' + LORA.encode() + b'"}, "id": "0704.0001", "title": "Other", "abstract": "Another paper."}',
])
def test_a_nested_or_repeated_id_never_files_a_record_under_another_paper(tmp_path, other):
    assert read_snapshot(snapshot_with(tmp_path, other), [LORA]) == {}
    record, _ = parse_snapshot_line(other, ImportReport())  # the importer files it under its own id
    assert record.arxiv_id == "0704.0001"


def test_malformed_fields_around_good_text_are_left_out(tmp_path):
    path = snapshot_with(tmp_path, line(authors_parsed=[[1, 2, 3], "x", ["Hu", "Edward", None]],
                                        versions="v1", categories=5, doi=["x"], authors=7))
    record = read_snapshot(path, [LORA])[LORA]
    assert record.authors == ("Edward Hu",) and record.categories == () and record.doi is None
    assert record.year == 2021  # from the id


def test_non_utf8_bytes_in_an_id_are_skipped(tmp_path):
    path = snapshot_with(tmp_path, b'{"id": "\xff\xfe", "title": "T", "abstract": "A"}', line())
    assert set(read_snapshot(path, [LORA])) == {LORA}
    assert parse_snapshot_line(b'{"id": "\xff\xfe", "title": "T", "abstract": "A"}', ImportReport()) is None


@pytest.mark.parametrize("first", [b"[" + line() + b"]", b"[", b"hello"])
def test_a_file_that_is_not_json_lines_of_objects_is_refused(tmp_path, first):
    with pytest.raises(SnapshotError, match="not an arXiv metadata snapshot"):
        read_snapshot(snapshot_with(tmp_path, first, line()), [LORA])


def test_corrupt_gzip_data_is_a_clear_error(tmp_path):
    packed = bytearray(gzip.compress(SAMPLE.read_bytes() * 50))
    packed[len(packed) // 2: len(packed) // 2 + 64] = bytes(64)
    path = tmp_path / "snap.jsonl.gz"
    path.write_bytes(bytes(packed))
    with pytest.raises(SnapshotError, match="Cannot read the snapshot"):
        read_snapshot(path, ["none"])


def test_a_huge_line_is_skipped_in_little_memory(tmp_path):
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as handle:
        handle.write(line(id="0704.0001") + b"\n")
        handle.write(b'{"id": "' + LORA.encode() + b'", "title": "LoRA", "abstract": "')
        for _ in range(50):
            handle.write(b"x" * (1 << 20))
        handle.write(b'"}\n' + line(id="2305.14314") + b"\n")
    tracemalloc.start()
    found = read_snapshot(path, [LORA, "2305.14314"])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert set(found) == {"2305.14314"} and peak < 8 << 20


def test_one_records_text_is_capped(tmp_path):
    record = read_snapshot(snapshot_with(tmp_path, line(abstract="word " * 30_000, title="T" * 5000)),
                           [LORA])[LORA]
    assert len(record.abstract) == 20_000 and len(record.title) == 1_000


# -- 4. output injection ----------------------------------------------------------------


def hostile_hit():
    document = Document(id="lora", title=f"LoRA {HOSTILE}", text="x",
                        meta={"section": "S", "kind": "paper", "year": 2021, "url": f"https://e.org/{HOSTILE}"})
    return Hit(rank=1, score=1.0, document=document, snippet=f"snippet {HOSTILE}",
               shared_terms=(HOSTILE,))


@pytest.mark.parametrize("width", [80, 120])
def test_the_terminal_layouts_carry_no_escape_or_bidi_character_from_the_data(width):
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, force_terminal=True, color_system=None, width=width).print(
        hits_for_terminal([hostile_hit()], lambda text: text.lower().split(), "lora", width))
    assert not any(ch in out.getvalue() for ch in UNSAFE)


def test_plain_output_carries_no_escape_or_bidi_character_from_the_data(small_library, monkeypatch):
    write_records(small_library, **{LORA: record_json(title=f"LoRA {HOSTILE}", abstract=f"Text {HOSTILE}",
                                                      authors=[f"E. Hu{HOSTILE}"])})
    catalogue = small_library / "catalogue.yaml"
    catalogue.write_text(catalogue.read_text().replace("title: Stanford Alpaca",
                                                       'title: "Stanford \\u202eAlpaca\\x9b2J"'))
    for args in (["show", "lora"], ["list"], ["list", "-f", "bibtex"]):
        result = runner.invoke(app, ["--library", str(small_library), *args])
        assert result.exit_code == 0, result.output
        assert not any(ch in result.output for ch in UNSAFE), args


def test_json_output_escapes_control_characters(small_library):
    write_records(small_library, **{LORA: record_json(abstract=f"Text {HOSTILE}")})
    result = runner.invoke(app, ["--library", str(small_library), "show", "lora", "--json"])
    assert "\x1b" not in result.stdout and json.loads(result.stdout)["abstract"] == f"Text {HOSTILE}"


def test_bibtex_fields_cannot_break_out():
    from paperscope.bibtex import bibtex_entry

    url = "https://example.org/}\\input{/etc/passwd}"
    entry = Entry(id="evil", title="A {title} \\with} braces", url=url, kind="paper", section="S",
                  arxiv_id=LORA)
    record = PaperRecord.from_json(record_json(primary_category="cs.CL}, note = {pwned",
                                               doi="10.1/x}\\input{y", authors=["Ed}ward \\Hu"]))
    blog = Entry(id="post", title="Post", url=url, kind="blog", section="S")
    text = bibtex_entry(entry, record, "hu2021a") + bibtex_entry(blog, None, "post")
    library = bibtexparser.parse_string(text)
    assert not library.failed_blocks and [e.key for e in library.entries] == ["hu2021a", "post"]
    first, second = library.entries
    assert set(first.fields_dict) == {"title", "author", "year", "eprint", "archivePrefix",
                                      "primaryClass", "doi", "url"}
    assert first["url"] == second["url"] == "https://example.org/%7D%5Cinput%7B/etc/passwd%7D"
    assert "\\input" not in text.replace("\\textbackslash{}input", "")
    assert set(second.fields_dict) == {"title", "howpublished", "note", "url"}


# -- 5. elsewhere -----------------------------------------------------------------------


def test_a_mistyped_library_folder_does_not_climb_to_its_parent(small_library):
    result = runner.invoke(app, ["--library", str(small_library / "typo"), "list"])
    assert result.exit_code == 2 and "typo does not exist" in result.output
    (small_library / "empty").mkdir()
    with pytest.raises(UsageError, match=r"empty holds no catalogue\.yaml"):
        Library.open(small_library / "empty")


def test_the_current_folder_search_still_climbs(small_library, monkeypatch):
    (small_library / "sub").mkdir()
    monkeypatch.chdir(small_library / "sub")
    monkeypatch.delenv("PAPERSCOPE_LIBRARY", raising=False)
    assert Library.open().paths.root == small_library.resolve()


@pytest.mark.parametrize("value", ["!!binary aGVsbG8=", "!foo bar", "!!python/name:os.system ''",
                                   "!!set {a: null}"])
def test_unlisted_yaml_tags_are_refused(value):
    text = f"- section: S\n  entries:\n    - id: a\n      title: {value}\n      url: https://e.org\n" \
           "      summary: s\n"
    with pytest.raises(CatalogueError, match=r"catalogue.yaml:4: the YAML tag .* is not allowed"):
        parse_catalogue(text)


def test_plain_tags_and_recursive_aliases_are_fine_or_refused_cleanly():
    text = "- section: !!str S\n  entries:\n    - id: a\n      title: !!str T\n      url: https://e.org\n" \
           "      summary: s\n      year: !!int 2021\n"
    assert parse_catalogue(text).entries[0].year == 2021
    with pytest.raises(CatalogueError):
        parse_catalogue("- &a [*a]\n")


@pytest.mark.parametrize("qrels, message", [
    (b"query-id\tcorpus-id\tscore\nq1\td1\t1.5\n", "test.tsv:2: the score '1.5' is not a whole number"),
    (b"q1\td1\t1\nq1\td2\tx\n", "the score 'x' is not a whole number"),
    (b"q1\td1\t1\nq\xff\td1\t1\n", "Cannot read"),
])
def test_bad_qrels_are_usage_errors(tmp_path, qrels, message):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_bytes(qrels)
    with pytest.raises(UsageError, match=re.escape(message)):
        read_qrels(tmp_path, "test")


def test_bad_queries_are_usage_errors(tmp_path):
    (tmp_path / "queries.jsonl").write_bytes(b'{"_id": "q1", "text": "\xff"}\n')
    with pytest.raises(UsageError, match="Cannot read"):
        read_queries(tmp_path)
    (tmp_path / "queries.jsonl").write_text("[" * 100_000 + "\n")
    with pytest.raises(UsageError, match="not a JSON object"):
        read_queries(tmp_path)


def test_eval_on_bad_qrels_exits_2_without_a_traceback(library_dir, tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_bytes(b"query-id\tcorpus-id\tscore\nq1\tlora\tnope\n")
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "lora"}\n')
    result = runner.invoke(app, ["--library", str(library_dir), "eval", str(tmp_path)])
    assert result.exit_code == 2 and "not a whole number" in result.output
    assert not isinstance(result.exception, ValueError)


def test_a_full_disk_during_a_rebuild_keeps_the_last_build_and_says_so(library_dir, monkeypatch):
    import errno

    from typer.testing import CliRunner

    from paperscope.cli import app
    from paperscope.index import IndexWriter

    def no_space(self, name, values):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.store.directory / name))

    path = library_dir / "catalogue.yaml"
    path.write_text(path.read_text().replace("A PyTorch library offering", "A PyTorch package offering", 1))
    monkeypatch.setattr(IndexWriter, "array", no_space)
    runner = CliRunner()
    searched = runner.invoke(app, ["--library", str(library_dir), "search", "attention", "--json"])
    assert searched.exit_code == 0 and "No space left on device" in searched.stderr
    assert "searching the last build" in searched.stderr
    built = runner.invoke(app, ["--library", str(library_dir), "build"])
    assert built.exit_code == 10 and "No space left on device" in built.stderr
    assert "Traceback" not in built.output and not list((library_dir / "index").glob(".*.tmp"))
    monkeypatch.undo()
    assert runner.invoke(app, ["--library", str(library_dir), "build"]).exit_code == 0


def test_a_full_disk_under_the_vectors_is_an_error_not_a_crash(library_dir, monkeypatch):
    # The vectors are written through the file, front to back (never through a memory map, where
    # a full disk is a SIGBUS when a page is first touched): the disk filling up is an OSError,
    # here reported when the staged file is synced.
    import errno
    import os

    from paperscope.cli import app

    def no_space(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    # One edited entry: an incremental build writes a new vectors file as a full one does, and
    # embeds one entry instead of every one (seconds, not minutes, on a busy machine).
    path = library_dir / "catalogue.yaml"
    path.write_text(path.read_text().replace("A PyTorch library offering", "A PyTorch package offering", 1))
    monkeypatch.setattr(os, "fsync", no_space)
    built = CliRunner().invoke(app, ["--library", str(library_dir), "build"])
    assert built.exit_code == 10 and "No space left on device" in built.stderr
    assert not list((library_dir / "index").glob(".*.tmp"))


def test_temporary_files_of_a_killed_writer_go_with_the_next_write(library_dir):
    leftover = library_dir / "index" / ".vectors.0123456789ab.tmp"
    leftover.write_bytes(b"x" * 1000)
    with IndexStore(library_dir / "index").write_lock():
        assert not leftover.exists()


def test_an_emptied_catalogue_does_not_empty_the_index_on_a_search(library_dir):
    from typer.testing import CliRunner

    from paperscope.cli import app

    before = (library_dir / "index" / "manifest.json").read_text()
    (library_dir / "catalogue.yaml").write_text("# nothing yet\n")
    result = CliRunner().invoke(app, ["--library", str(library_dir), "search", "attention", "--json"])
    assert result.exit_code == 0 and "no entries with text" in result.stderr
    assert (library_dir / "index" / "manifest.json").read_text() == before


@pytest.mark.slow  # two full builds with the real model
def test_a_damaged_manifest_or_a_changed_byte_is_found_and_repaired(library_dir):
    from typer.testing import CliRunner

    from paperscope.cli import app

    def run(*args):
        return CliRunner().invoke(app, ["--library", str(library_dir), *args])

    index = library_dir / "index"
    (index / "manifest.json").write_text('{"format": 3')
    status = run("status")
    assert status.exit_code == 0 and "DAMAGED" in status.stdout and "new:" not in status.stdout
    assert run("status", "--check").exit_code == 1
    assert run("build", "--full").exit_code == 0 and run("status", "--check").exit_code == 0
    vectors = next(index.glob("vectors-*.npy"))
    data = bytearray(vectors.read_bytes())
    data[len(data) // 2] ^= 0xFF
    vectors.write_bytes(bytes(data))
    verified = run("status", "--check", "--verify")
    assert verified.exit_code == 1 and "paperscope build --full" in verified.stdout
    assert run("build", "--full").exit_code == 0
    assert run("status", "--check", "--verify").exit_code == 0


def test_status_check_fails_on_metadata_that_search_would_refuse(library_dir):
    from .test_index import _resign, _sql

    store = IndexStore(library_dir / "index")
    _sql(store, "UPDATE documents SET meta = '{' WHERE id = 'lora'")
    _resign(store)
    status = runner.invoke(app, ["--library", str(library_dir), "status", "--check"])
    assert status.exit_code == 1 and "DAMAGED" in status.stdout and "build --full" in status.stdout
    searched = runner.invoke(app, ["--library", str(library_dir), "search", "LoRA"])
    assert searched.exit_code == 5 and "metadata of the wrong type" in searched.stderr
