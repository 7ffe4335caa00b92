"""Reading lists from BibTeX and Zotero (CSL JSON): init and add --from-bibtex/--from-csl-json,
and export csl-json read back. Offline: importing writes entries, `ingest` fetches later."""

import json

import pytest
from typer.testing import CliRunner

from paperscope.catalogue import parse_catalogue
from paperscope.citations import read_citations
from paperscope.cli import app
from paperscope.errors import UsageError

from .conftest import FIXTURES

runner = CliRunner()
BIB = FIXTURES / "citations" / "refs.bib"
CSL = FIXTURES / "citations" / "zotero.json"


def _catalogue(folder):
    return parse_catalogue((folder / "catalogue.yaml").read_text(encoding="utf-8"))


def test_init_from_bibtex_maps_arxiv_doi_and_links_and_reports_the_rest(tmp_path):
    result = runner.invoke(app, ["--library", str(tmp_path), "init", "--from-bibtex", str(BIB),
                                 "--section-field", "keywords"])
    assert result.exit_code == 0, result.output
    catalogue = _catalogue(tmp_path)
    by_id = {entry.id: entry for entry in catalogue.entries}
    assert {e.arxiv_id for e in catalogue.entries if e.arxiv_id} == {
        "2106.09685", "2305.14314", "2302.13971", "2310.06825", "2001.08361"}  # eprint, journal,
    # url with a version, Zotero's number/doi/url, a lower-case archiveprefix
    assert by_id["lora"].authors == ("Edward J. Hu", "Yelong Shen", "Phillip Wallis")
    assert by_id["lora"].section == "Fine-tuning" and by_id["llama"].section == "Pretraining"
    assert by_id["mistral-7b"].doi is None  # an arXiv DOI is the arXiv id
    acl = by_id["don-t-stop-pretraining"]  # @string venue, {'} and {\'c} decoded
    assert acl.title == "Don't Stop Pretraining: Adapt Language Models to Domains and Tasks"
    assert acl.doi == "10.18653/v1/2020.acl-main.740" and acl.year == 2020
    assert "Ana Marasović" in acl.authors and "Association for Computational Linguistics" in acl.note
    german = by_id["uber-die-skalierung-neuronaler"]  # accents and braces; a doi.org url
    assert german.title == "Über die Skalierung neuronaler Sprachmodelle"
    assert german.authors == ("Bernhard Schölkopf", "Jörg Müller") and german.doi == "10.1234/jmr.2021.42"
    alpaca = by_id["alpaca"]  # a \url{} in howpublished; its abstract is what search reads
    assert alpaca.url == "https://crfm.stanford.edu/2023/03/13/alpaca.html" and alpaca.kind == "blog"
    assert alpaca.summary.startswith("We introduce Alpaca 7B") and not alpaca.needs_summary
    assert by_id["fastchat"].kind == "repo" and by_id["fastchat"].needs_summary
    assert by_id["scaling-laws-for-neural"].section == "Reading list"  # no keywords
    assert len(catalogue.entries) == 9
    err = result.stderr
    assert "Imported 9 entries (5 arXiv, 2 DOI, 2 link) in 5 sections." in err
    assert "skipped lora_again: listed before in the file (as 'hu2021lora')" in err
    assert "not imported nolink: no arXiv id, DOI or URL" in err
    assert "not imported broken2020: not readable BibTeX (line 92)" in err
    assert "Traceback" not in result.output and " ingest   fetches" in err


def test_init_from_bibtex_into_one_section_refuses_to_overwrite(tmp_path):
    made = runner.invoke(app, ["--library", str(tmp_path), "init", "--from-bibtex", str(BIB),
                               "--section", "To read"])
    assert made.exit_code == 0, made.output
    assert _catalogue(tmp_path).sections == ["To read"]
    written = (tmp_path / "catalogue.yaml").read_bytes()
    again = runner.invoke(app, ["--library", str(tmp_path), "init", "--from-bibtex", str(BIB)])
    assert again.exit_code == 2 and "already exists" in again.stderr
    assert (tmp_path / "catalogue.yaml").read_bytes() == written


def test_init_from_csl_json(tmp_path):
    result = runner.invoke(app, ["--library", str(tmp_path), "init", "--from-csl-json", str(CSL),
                                 "--section-field", "keyword"])
    assert result.exit_code == 0, result.output
    by_id = {entry.id: entry for entry in _catalogue(tmp_path).entries}
    assert by_id["attention-is-all-you-need"].arxiv_id == "1706.03762"
    assert by_id["attention-is-all-you-need"].authors == ("Ashish Vaswani", "Noam Shazeer")
    assert by_id["attention-is-all-you-need"].year == 2017
    bert = by_id["bert"]
    assert bert.doi == "10.18653/v1/n19-1423" and bert.year == 2019 and bert.section == "Transformers"
    assert bert.note == "Published in Proceedings of NAACL-HLT."
    blog = by_id["the-illustrated-transformer"]
    assert blog.section == "Reading list" and blog.summary.startswith("A visual walk")
    assert "Imported 3 entries (1 arXiv, 1 DOI, 1 link)" in result.stderr
    assert "not imported nothing: no arXiv id, DOI or URL" in result.stderr
    assert "not imported untitled: no title" in result.stderr


def test_add_from_bibtex_appends_skips_duplicates_and_keeps_the_file(small_library):
    before = (small_library / "catalogue.yaml").read_text(encoding="utf-8")
    result = runner.invoke(app, ["--library", str(small_library), "add", "--from-bibtex", str(BIB),
                                 "--section", "Imported", "--no-build"])
    assert result.exit_code == 0, result.output
    after = (small_library / "catalogue.yaml").read_text(encoding="utf-8")
    assert after.startswith(before.rstrip("\n").split("- section: Evaluation")[0])  # comments kept
    catalogue = parse_catalogue(after)
    assert len(catalogue.entries) == 3 + 8 and catalogue.sections[-1] == "Imported"
    assert "skipped hu2021lora: already in the catalogue as 'lora'" in result.stderr
    assert "Imported 8 entries (4 arXiv, 2 DOI, 2 link)" in result.stderr
    assert "qlora" in result.stdout.split()
    again = runner.invoke(app, ["--library", str(small_library), "add", "--from-bibtex", str(BIB),
                                "--section", "Imported", "--no-build"])
    assert again.exit_code == 0 and "Imported 0 entries" in again.stderr
    assert (small_library / "catalogue.yaml").read_text(encoding="utf-8") == after


def test_add_from_bibtex_with_several_sections_needs_one_named(small_library):
    result = runner.invoke(app, ["--library", str(small_library), "add", "--from-bibtex", str(BIB),
                                 "--no-build"])
    assert result.exit_code == 2 and "--section" in result.stderr
    by_field = runner.invoke(app, ["--library", str(small_library), "add", "--from-bibtex", str(BIB),
                                   "--section-field", "keywords", "--no-build"])
    assert by_field.exit_code == 0, by_field.output
    assert "not imported after_broken: no section: give --section" in by_field.stderr
    assert "Fine-tuning" in parse_catalogue(
        (small_library / "catalogue.yaml").read_text(encoding="utf-8")).sections


def test_export_csl_json_reads_back(tmp_path):
    runner.invoke(app, ["--library", str(tmp_path), "init", "--from-bibtex", str(BIB)])
    exported = runner.invoke(app, ["--library", str(tmp_path), "export", "csl-json"])
    assert exported.exit_code == 0, exported.output
    items = json.loads(exported.stdout)
    assert [item["id"] for item in items][:2] == ["hu2021lora", "dettmers2023qlora"]
    assert items[0]["author"][0] == {"family": "Hu", "given": "Edward J."}
    back = read_citations(exported.stdout, "csl-json", "export.json")
    assert not back.problems
    original = _catalogue(tmp_path).entries
    assert [(c.title, c.arxiv_id, c.doi if not c.arxiv_id else None, c.year) for c in back.citations] == \
        [(e.title, e.arxiv_id, e.doi, e.year) for e in original]
    second, exported_file = tmp_path / "second", tmp_path / "export.json"
    exported_file.write_text(exported.stdout, encoding="utf-8")
    reimported = runner.invoke(app, ["--library", str(second), "init", "--from-csl-json",
                                     str(exported_file)])
    assert reimported.exit_code == 0, reimported.output
    assert [(e.title, e.url, e.authors) for e in _catalogue(second).entries] == \
        [(e.title, e.url, e.authors) for e in original]
    out = tmp_path / "list.json"
    written = runner.invoke(app, ["--library", str(tmp_path), "export", "csl-json", "lora", "-o", str(out)])
    assert written.exit_code == 0 and "Wrote 1 entry" in written.stderr
    assert len(json.loads(out.read_text(encoding="utf-8"))) == 1


@pytest.mark.parametrize("content, option, message", [
    (None, "--from-bibtex", "not found"),
    ("", "--from-bibtex", "no BibTeX entry"),
    ("# Notes\n\n- [A post](https://example.org)\n", "--from-bibtex", "no BibTeX entry"),
    ("@misc{a, title = {never closed}\n", "--from-bibtex", "none of its references"),
    ("@misc{a, title={x}}", "--from-csl-json", "not JSON"),
    ('{"title": "x"}', "--from-csl-json", "not one"),
    ("[]", "--from-csl-json", "no CSL JSON item"),
])
def test_bad_input_is_a_clear_message_and_changes_nothing(small_library, content, option, message):
    source = small_library / "refs.txt"
    if content is not None:
        source.write_text(content, encoding="utf-8")
    before = (small_library / "catalogue.yaml").read_bytes()
    for command in (["init", "--force"], ["add", "--section", "X", "--no-build"]):
        result = runner.invoke(app, ["--library", str(small_library), *command, option, str(source)])
        assert result.exit_code == 2, result.output
        assert message in result.stderr and "Traceback" not in result.output
        assert (small_library / "catalogue.yaml").read_bytes() == before


def test_options_that_do_not_go_together_are_refused(small_library):
    for args in (["init"], ["init", "--from-markdown", "a.md", "--from-bibtex", "b.bib"],
                 ["add", "2106.09685", "--from-bibtex", str(BIB)],
                 ["add", "--from-bibtex", str(BIB), "--tag", "x"], ["add", "2106.09685",
                                                                     "--section-field", "keywords"]):
        result = runner.invoke(app, ["--library", str(small_library), *args])
        assert result.exit_code == 2 and "Traceback" not in result.output, (args, result.output)


def test_an_unknown_format_is_a_usage_error():
    with pytest.raises(UsageError):
        read_citations("", "ris", "refs.ris")
