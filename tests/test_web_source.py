"""Blog posts and repositories by their own text: the web client against a local server with
recorded pages and READMEs and hostile answers, and such entries in `add`, search and `ingest`."""

import pytest
from typer.testing import CliRunner

from paperscope import Library
from paperscope.catalogue import parse_catalogue
from paperscope.cli import app
from paperscope.index import IndexStore
from paperscope.ingest import ingest
from paperscope.sources import SOURCES, open_source
from paperscope.sources.web import WebSource, readme_text

from .arxiv_server import closed_port_url
from .conftest import FIXTURE_LIBRARY, copy_fixture_library
from .web_server import HUGE, WebStub

ALPACA = "https://github.com/tatsu-lab/stanford_alpaca"


@pytest.fixture
def stub():
    with WebStub() as server:
        yield server


@pytest.fixture
def web_env(stub, monkeypatch):
    """The web source, as the library opens it, asks the local GitHub stand-in and never waits."""
    monkeypatch.setenv("PAPERSCOPE_GITHUB_API", stub.github)
    init = WebSource.__init__
    monkeypatch.setattr(WebSource, "__init__",
                        lambda self, *a, **o: init(self, *a, **{"backoff_seconds": 0, **o}))
    return stub


def source(stub, **options):
    return WebSource(github_api=stub.github, sleep=lambda s: None, **options)


def _cli(library, *args):
    return CliRunner().invoke(app, ["--library", str(library), *args])


def test_the_web_source_is_registered_for_url_ids():
    assert SOURCES["url"] == "paperscope.sources.web:WebSource"
    assert open_source("url").scheme == "url"


def test_a_blog_page_gives_its_main_text_without_menus_or_scripts(stub):
    url = f"{stub.url}/blog/attention"
    record = source(stub).fetch([url]).records[url]
    assert record.key == f"url:{url}" and record.source == "web"
    assert record.title == "Attention? Attention!"
    assert "hummingbird" in record.abstract and "Self-attention, also known as intra-attention" in record.abstract
    for noise in ("window.analytics", "Archive", "Powered by Hugo", "font-family"):
        assert noise not in record.abstract


def test_a_github_repository_gives_its_readme_without_badges_images_or_code(stub):
    record = source(stub).fetch([ALPACA + "/tree/main"]).records[ALPACA + "/tree/main"]
    assert record.title == "tatsu-lab/stanford_alpaca" and record.source == "github"
    text = record.abstract
    assert text.startswith("Stanford Alpaca: An Instruction-following LLaMA Model.")
    assert "graduate marmoset" in text and "text-davinci-003" in text and "self-instruct" in text
    for noise in ("shields.io", "img", "<", "![", "](", "```", "OPENAI_API_KEY", "TODO", "---", "**"):
        assert noise not in text
    assert stub.requests == ["/github/repos/tatsu-lab/stanford_alpaca/readme"]


def test_readme_text_keeps_words_with_underscores_and_makes_headings_sentences():
    text = readme_text("# Title\n\nUse `snake_case` names, *emphasis* too.\n\n    indented code\n")
    assert text == "Title. Use snake_case names, emphasis too."


@pytest.mark.parametrize("path", ["/latin1-meta", "/latin1-header"])
def test_iso_8859_1_pages_decode_by_their_meta_or_header(stub, path):
    url = stub.url + path
    record = source(stub).fetch([url]).records[url]
    assert "château français" in record.abstract and "échantillonnage naïf" in record.abstract
    assert "\ufffd" not in record.abstract


@pytest.mark.parametrize(("path", "reason"), [
    ("/gone", "HTTP 404 from 127.0.0.1"),
    ("/loop", "127.0.0.1 redirected more than 3 times"),
    ("/to-file", "127.0.0.1 redirected to a file: address (only http and https are followed)"),
    ("/paper.pdf", "not a web page but application/pdf (only HTML pages are read; give a summary instead)"),
    ("/huge", "127.0.0.1's answer is larger than 1,000,000 bytes"),
    ("/huge-declared", "127.0.0.1's answer is larger than 1,000,000 bytes"),
])
def test_hostile_pages_are_one_typed_failure_each(stub, path, reason):
    url = stub.url + path
    result = source(stub, max_redirects=3, max_bytes=1_000_000).fetch([url, f"{stub.url}/blog/attention"])
    assert result.failures == {url: reason} and list(result.records) == [f"{stub.url}/blog/attention"]
    assert stub.sent_bytes < HUGE  # the 50 MB page is never read whole


def test_a_page_that_drips_stops_at_the_deadline_for_the_whole_exchange(stub):
    url = stub.url + "/drip"
    result = source(stub, deadline=1, max_retries=0).fetch([url])
    assert result.failures == {url: "127.0.0.1 did not answer within 1 s (after 1 tries)"}


def test_an_unreachable_site_is_a_failure_for_its_page_only(stub):
    url = closed_port_url() + "/post"
    result = source(stub).fetch([url, f"{stub.url}/blog/attention"])
    assert result.failures[url].endswith("cannot be reached (connection refused)")
    assert result.unreachable is None and len(result.records) == 1


def test_add_a_blog_and_a_repo_then_find_each_by_words_only_in_its_text(small_library, web_env, fake_encoder):
    blog = f"{web_env.url}/blog/attention"
    library = Library.open(small_library, encoder=fake_encoder)
    added = library.add(blog, kind="blog", section="Training Recipe")
    assert added.entry.title == "Attention? Attention!" and added.entry.summary is None
    assert added.entry.kind == "blog" and added.entry.url == blog and added.not_fetched is None
    result = _cli(small_library, "add", "https://github.com/lucidrains/x-transformers", "--kind", "repo",
                  "--section", "Training Recipe", "--no-build")
    assert result.exit_code == 0, result.stderr
    records = IndexStore(small_library / "index").read_records()
    assert "capybara" in records["url:https://github.com/lucidrains/x-transformers"].abstract
    library = Library.open(small_library, encoder=fake_encoder)
    assert library.search("hummingbird glimpse", mode="lexical").hits[0].document.id == added.entry.id
    assert library.search("capybara variant", mode="lexical").hits[0].document.meta["url"] == \
        "https://github.com/lucidrains/x-transformers"


def test_a_summary_wins_and_the_page_text_follows_it(small_library, web_env, fake_encoder):
    library = Library.open(small_library, encoder=fake_encoder)
    added = library.add(ALPACA, kind="repo", build=False)  # the catalogue's alpaca entry has a summary
    assert added.already
    report = library.ingest(source=[WebSource(github_api=web_env.github), _no_arxiv()])
    assert f"url:{ALPACA}" in report.fetched
    documents, _ = Library.open(small_library, encoder=fake_encoder).documents()
    alpaca = next(d for d in documents if d.id == "alpaca")
    assert alpaca.text.startswith("Instruction tuning of LLaMA on generated demonstrations. Stanford Alpaca")
    assert "graduate marmoset" in alpaca.text
    shown = _cli(small_library, "show", "alpaca", "--json")
    assert '"summary": "Instruction tuning of LLaMA on generated demonstrations."' in shown.stdout


def _no_arxiv():
    from paperscope.sources.arxiv_api import ArxivApiSource

    return ArxivApiSource(api_url=closed_port_url(), delay_seconds=0)


@pytest.mark.parametrize("path", ["/gone", "/loop", "/paper.pdf", "/huge"])
def test_adding_a_page_that_cannot_be_fetched_changes_nothing_without_a_summary(small_library, web_env, path):
    before = (small_library / "catalogue.yaml").read_text()
    result = _cli(small_library, "add", web_env.url + path, "--kind", "blog", "--section", "Evaluation",
                  "--no-build")
    assert result.exit_code == 8 and "Traceback" not in result.output
    assert f"Could not get {web_env.url}{path}: " in result.stderr and "Nothing was changed" in result.stderr
    assert "--title and --summary" in result.stderr
    assert (small_library / "catalogue.yaml").read_text() == before
    result = _cli(small_library, "add", web_env.url + path, "--kind", "blog", "--section", "Evaluation",
                  "--no-build", "--title", "A post", "--summary", "What it says.")
    assert result.exit_code == 0, result.stderr
    assert "Its text could not be fetched" in result.stderr
    assert "title: A post" in (small_library / "catalogue.yaml").read_text()


def test_ingest_refresh_fetches_pages_again(small_library, web_env):
    sources = [WebSource(github_api=web_env.github, sleep=lambda s: None), _no_arxiv()]
    library = Library.open(small_library)
    first = library.ingest(source=sources)
    assert f"url:{ALPACA}" in first.fetched
    assert first.failures == {"2106.09685": first.unreachable}
    asked = len(web_env.requests)
    library.ingest(source=sources)  # both READMEs are cached: nothing is asked again
    assert web_env.requests[asked:] == []
    asked = len(web_env.requests)
    refreshed = library.ingest(source=sources, refresh=True)
    assert f"url:{ALPACA}" in refreshed.fetched and len(web_env.requests) - asked == 2


def test_cli_ingest_help_says_refresh_fetches_pages_too():
    result = CliRunner().invoke(app, ["ingest", "--help"])
    assert "blog posts' and repositories' text" in " ".join(result.output.split())


def test_the_seed_list_gets_real_text_where_a_source_has_it(tmp_path, web_env):
    """The seed list's blog posts and repositories, against recorded pages: those recorded get
    their text; the others (and papers known by a PDF) keep their hand-written summary only."""
    library_dir = copy_fixture_library(tmp_path / "library")
    text = (FIXTURE_LIBRARY / "catalogue.yaml").read_text(encoding="utf-8")
    for site in ("https://lilianweng.github.io", "https://huggingface.co", "https://kipp.ly",
                 "https://jaykmody.com", "http://nlp.seas.harvard.edu"):
        text = text.replace(f"url: {site}/", f"url: {web_env.url}/{site.split('//')[1]}/")
    (library_dir / "catalogue.yaml").write_text(text, encoding="utf-8")
    catalogue = parse_catalogue(text)
    web_entries = [e for e in catalogue.entries if (e.record_key or "").startswith("url:")]
    assert web_entries and all(e.summary for e in web_entries)
    store = IndexStore(library_dir / "index")
    report = ingest(catalogue, store, source=[WebSource(github_api=web_env.github, sleep=lambda s: None)])
    fetched = {key.removeprefix("url:") for key in report.fetched}
    assert fetched >= {f"{web_env.url}/lilianweng.github.io/posts/2018-06-24-attention/",
                       f"{web_env.url}/huggingface.co/blog/rlhf"}
    assert any(url.startswith("https://github.com/") for url in fetched)
    assert len(report.failures) == len(web_entries) - len(fetched)
    documents, _ = Library.open(library_dir).documents()
    by_url = {d.meta["url"]: d for d in documents}
    for entry in web_entries:
        document = by_url[entry.url]
        assert document.text.startswith(entry.summary)
        assert (len(document.text) > len(entry.summary) + 100) == (entry.url in fetched)
    pdfs = [e for e in catalogue.entries if e.kind == "paper" and not e.record_key]
    assert pdfs and all(by_url[e.url].text.startswith(e.summary) for e in pdfs)


def test_show_prints_the_summary_of_a_fetched_entry_or_the_start_of_its_page(small_library, web_env):
    Library.open(small_library).ingest(source=[WebSource(github_api=web_env.github), _no_arxiv()])
    assert "graduate marmoset" not in _cli(small_library, "show", "alpaca").stdout
    blog = f"{web_env.url}/blog/attention"
    assert _cli(small_library, "add", blog, "--kind", "blog", "--section", "Evaluation", "--no-build",
                "--id", "attention").exit_code == 0
    shown = _cli(small_library, "show", "attention").stdout
    assert "Attention has been a fairly popular concept" in shown and "Soft versus hard" not in shown
    assert shown.rstrip().endswith("…")
    assert "Soft versus hard" in _cli(small_library, "show", "attention", "--json").stdout


def test_cli_ingest_lists_each_page_it_could_not_fetch_and_keeps_the_rest(small_library, web_env):
    catalogue = small_library / "catalogue.yaml"
    text = "- section: Posts\n  entries:\n" + "".join(
        f"    - id: {name}\n      title: {name.title()}\n      url: {web_env.url}{path}\n      kind: blog\n"
        f"      summary: The hand-written summary of {name}.\n"
        for name, path in (("gone", "/gone"), ("pdf", "/paper.pdf"), ("loop", "/loop"), ("post", "/blog/attention")))
    catalogue.write_text(text)
    result = _cli(small_library, "ingest", "--no-build")
    assert result.exit_code == 8 and "Traceback" not in result.output
    assert "Fetched 1 of 4 entries from the web; 0 were already cached." in result.stderr
    assert f"  url:{web_env.url}/gone: HTTP 404 from 127.0.0.1\n" in result.stderr
    assert f"  url:{web_env.url}/loop: 127.0.0.1 redirected more than 5 times\n" in result.stderr
    assert f"  url:{web_env.url}/paper.pdf: not a web page but application/pdf" in result.stderr
    assert catalogue.read_text() == text
    documents, _ = Library.open(small_library).documents()
    texts = {d.id: d.text for d in documents}
    assert texts["gone"] == "The hand-written summary of gone."
    assert texts["post"].startswith("The hand-written summary of post. Attention has been a fairly")
