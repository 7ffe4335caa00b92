"""`paperscope serve`: the JSON API and the pages, in process (Starlette's TestClient), on a
copy of the frozen test library with a hostile entry, with the real packaged model."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from paperscope.bibtex import bibtex_entry, citation_keys
from paperscope.library import Corpus, Library
from paperscope.render import hit_json, latex_as_text
from paperscope.serve.commands import is_loopback
from paperscope.serve.resident import MAX_K, MAX_QUERY_CHARS, Resident
from paperscope.serve.web import create_app

from .conftest import REPO
from .serve_helpers import (
    HOSTILE_ID,
    HOSTILE_TITLE,
    NEW_PAPERS,
    PAPERS,
    hostile_library,
    library_with_corpus,
    update_corpus,
)

API = "/api/v1"


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return hostile_library(tmp_path_factory.mktemp("serve") / "library")


@pytest.fixture(scope="module")
def resident(library):
    return Resident(library)


@pytest.fixture(scope="module")
def client(resident):
    return TestClient(create_app(resident))


def test_search_finds_lora_and_qlora_with_the_fields_of_search_json(client, library):
    answer = client.get(f"{API}/search", params={"q": "parameter-efficient finetuning", "k": 3})
    assert answer.status_code == 200
    body = answer.json()
    assert {"lora", "qlora"} <= {hit["id"] for hit in body["hits"][:3]}
    expected = Library.open(library).search("parameter-efficient finetuning", k=3).hits
    for hit, want in zip(body["hits"], expected, strict=False):
        cli = hit_json(want)
        assert {key: hit[key] for key in cli} == cli  # the same fields and values as --json
        assert all(isinstance(span, list) and len(span) == 2 for span in hit["highlight"])
    assert body["index"]["count"] and body["index"]["generation"] >= 1


def test_highlight_spans_mark_the_query_words_of_the_snippet(client):
    hit = client.get(f"{API}/search", params={"q": "quantized finetuning", "k": 1}).json()["hits"][0]
    words = {hit["snippet"][start:end].lower() for start, end in hit["highlight"]}
    assert words and all(re.match(r"(quantiz|finetun)", w) for w in words), words


def test_filters_narrow_the_results(client):
    hits = client.get(f"{API}/search", params={"q": "attention", "kind": "blog", "k": 5}).json()["hits"]
    assert hits and all(hit["kind"] == "blog" for hit in hits)
    hits = client.get(f"{API}/search", params={"q": "evaluation", "section": "LLM Evaluation",
                                               "year_from": 2021, "year_to": 2023}).json()["hits"]
    assert hits and all(h["section"] == "LLM Evaluation" and 2021 <= h["year"] <= 2023 for h in hits)


def test_related_lora_has_qlora_with_the_terms_they_share(client):
    body = client.get(f"{API}/related/lora", params={"k": 3}).json()
    assert body["id"] == "lora" and "lora" not in [h["id"] for h in body["hits"]]
    qlora = next(h for h in body["hits"] if h["id"] == "qlora")
    assert qlora["shared_terms"]
    assert client.get(f"{API}/related/2106.09685").json()["id"] == "lora"  # an arXiv id works


def test_entries_entry_and_cite(client, library):
    body = client.get(f"{API}/entries").json()
    catalogue = Library.open(library).catalogue
    assert [e["id"] for e in body["entries"]] == [e.id for e in catalogue.entries]
    assert body["sections"] == catalogue.sections
    section = client.get(f"{API}/entries", params={"section": "llm evaluation"}).json()["entries"]
    assert section and all(e["section"] == "LLM Evaluation" for e in section)
    qlora = client.get(f"{API}/entries/qlora").json()
    assert set(qlora) == {"id", "title", "section", "kind", "url", "arxiv_id", "year", "authors",
                          "tags", "note", "abstract", "summary"}
    assert qlora["abstract"] and qlora["authors"]
    cite = client.get(f"{API}/cite/lora").json()
    library_ = Library.open(library)
    keys = citation_keys(library_.catalogue.entries, library_.records())
    entry = library_.entry("lora")
    assert cite == {"id": "lora", "key": keys["lora"],
                    "bibtex": bibtex_entry(entry, library_.records()[entry.arxiv_id], keys["lora"])}


def test_the_words_related_entries_share_read_as_a_list(client):
    """Copied or read aloud, the shared words are "a, b, c", not "abc" (issue 21)."""
    page = client.get("/entries/lora").text
    shown = re.findall(r'<div class="shared">(.*?)</div>', page)
    terms = client.get(f"{API}/related/lora", params={"k": 5}).json()["hits"]
    assert shown and len(shown) == sum(1 for hit in terms if hit.get("shared_terms"))
    for html, hit in zip(shown, [h for h in terms if h.get("shared_terms")], strict=True):
        assert re.sub(r"<[^>]+>", "", html) == "shared: " + ", ".join(hit["shared_terms"])


def test_the_page_and_the_api_show_the_text_as_show_prints_it(client, library):
    """`show` prints "Low Rank Adapters (LoRA)" where arXiv wrote `Adapters~(LoRA)`: so do the
    entry's page, the API, and the hits' titles and snippets (issue 21)."""
    stored = Library.open(library).records()["2305.14314"].abstract
    assert "Adapters~(LoRA)" in stored
    assert client.get(f"{API}/entries/qlora").json()["abstract"] == latex_as_text(stored)
    page = client.get("/entries/qlora").text
    assert "Low Rank Adapters (LoRA)" in page and "~(LoRA)" not in page
    hits = client.get(f"{API}/search", params={"q": "low rank adapters", "k": 50}).json()["hits"]
    snippets = [hit["snippet"] for hit in hits]
    assert any("Adapters (LoRA)" in text for text in snippets)
    assert not any("~(" in text or "\\" in text for text in snippets)


@pytest.mark.parametrize("path, params, status, kind", [
    ("/search", {"q": "lora", "k": 0}, 400, "usage"),
    ("/search", {"q": "lora", "k": MAX_K + 1}, 400, "usage"),
    ("/search", {"q": "x" * (MAX_QUERY_CHARS + 1)}, 400, "usage"),
    ("/search", {"q": ""}, 400, "usage"),
    ("/search", {"q": "   "}, 400, "usage"),
    ("/search", {}, 400, "usage"),
    ("/search", {"q": "lora", "mode": "magic"}, 400, "usage"),
    ("/search", {"q": "lora", "kind": "video"}, 400, "usage"),
    ("/search", {"q": "lora", "k": "many"}, 400, "usage"),
    ("/search", {"q": "lora", "tag": "no-such-tag"}, 400, "usage"),
    ("/entries", {"section": "No Such Section"}, 400, "usage"),
    ("/entries/no-such-entry", {}, 404, "unknown_entry"),
    ("/related/no-such-entry", {}, 404, "unknown_entry"),
    ("/cite/no-such-entry", {}, 404, "unknown_entry"),
    ("/related/lora", {"k": 1000}, 400, "usage"),
])
def test_bad_requests_get_a_clear_4xx_with_a_json_error(client, path, params, status, kind):
    answer = client.get(API + path, params=params)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["type"] == kind and error["message"]
    assert answer.headers["content-security-policy"]


def test_no_request_can_name_a_file(client, library):
    for path in ["/static/../../catalogue.yaml", "/static/..%2F..%2Fcatalogue.yaml",
                 "/static/resident.py", f"{API}/entries/..%2F..%2Fcatalogue.yaml",
                 "/entries/%2Fetc%2Fpasswd", "/index/manifest.json", "/catalogue.yaml"]:
        answer = client.get(path)
        assert answer.status_code in (400, 404), (path, answer.status_code)
        assert "entries:" not in answer.text and "root:" not in answer.text


def test_the_server_is_read_only(client):
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        answer = client.request(method, f"{API}/entries/lora")
        assert answer.status_code == 405
        assert answer.json()["error"]["type"] == "read_only"


def test_head_answers_as_get_without_a_body(client):
    for path in ("/", f"{API}/status", f"{API}/search?q=lora", "/entries/lora"):
        head, get = client.head(path), client.get(path)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]


def test_every_response_has_a_content_security_policy(client):
    for path in ["/", "/?q=lora", "/entries/lora", "/browse", "/static/app.js", "/no/such/page",
                 f"{API}/search?q=lora", f"{API}/entries/nope", "/openapi.json", "/docs"]:
        policy = client.get(path).headers.get("content-security-policy", "")
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy, path
        if path != "/docs":
            assert "unsafe-inline" not in policy
    assert client.get("/").headers["x-content-type-options"] == "nosniff"


def test_the_api_is_documented_and_versioned(client):
    spec = client.get("/openapi.json").json()
    assert {f"{API}/search", f"{API}/related/{{entry_id}}", f"{API}/entries",
            f"{API}/entries/{{entry_id}}", f"{API}/cite/{{entry_id}}"} <= set(spec["paths"])
    params = {p["name"]: p for p in spec["paths"][f"{API}/search"]["get"]["parameters"]}
    assert params["k"]["schema"]["maximum"] == MAX_K and params["q"]["schema"]["maxLength"] == MAX_QUERY_CHARS
    assert client.get("/docs").status_code == 200


def test_the_api_docs_page_works_offline(client):
    """/docs (the nav bar's "API") is Swagger UI from this server, not from a CDN: blank
    offline before (issue 21); and it runs no inline script."""
    page = client.get("/docs")
    assert page.status_code == 200 and 'id="swagger-ui"' in page.text
    assert not re.findall(r'(?:src|href)="(?:https?:)?//', page.text), "nothing from elsewhere"
    for path in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        asset = client.get(path)
        assert asset.status_code == 200 and asset.content, path
    bundle = client.get("/static/docs/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in bundle.content and len(bundle.content) > 500_000
    assert "<script>" not in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "http" not in policy
    assert client.get("/static/docs/../../catalogue.yaml").status_code == 404
    assert client.get("/static/docs/index.html").status_code == 404


def test_hostile_text_is_escaped_on_every_page(client):
    pages = [client.get("/", params={"q": "evaluating chatbots"}), client.get(f"/entries/{HOSTILE_ID}"),
             client.get("/browse"), client.get("/browse", params={"section": "LLM Evaluation"}),
             client.get("/"), client.get("/entries/lora")]
    assert all(page.status_code == 200 for page in pages)
    for page in pages[:4]:
        assert "&lt;img src=x onerror=alert(1)&gt;" in page.text
    for page in pages:
        assert "<img" not in page.text and "<script>alert" not in page.text
        assert 'href="javascript:' not in page.text and "<b>tag" not in page.text


def test_the_api_returns_hostile_text_as_data(client):
    entry = client.get(f"{API}/entries/{HOSTILE_ID}").json()
    assert entry["title"] == HOSTILE_TITLE and "<script>" in entry["summary"]
    assert client.get(f"{API}/entries/{HOSTILE_ID}").headers["content-type"].startswith("application/json")


def test_pages_show_search_results_an_entry_and_the_sections(client):
    results = client.get("/", params={"q": "parameter-efficient finetuning"}).text
    ids = re.findall(r'<li class="hit" data-id="([^"]+)"', results)
    assert {"lora", "qlora"} <= set(ids[:3])
    assert "<mark>" in results
    lora = client.get("/entries/lora").text
    assert "Low-Rank Adaptation" in lora and "hu2021lora" in lora and 'data-id="qlora"' in lora
    assert "Edward J. Hu" in lora and 'href="https://arxiv.org/pdf/2106.09685.pdf"' in lora
    assert client.get("/entries/2106.09685", follow_redirects=False).headers["location"] == "/entries/lora"
    browse = client.get("/browse", params={"section": "Training Recipe"}).text
    assert "Training Recipe" in browse and "/entries/lora" in browse and "LLM Evaluation</h2>" not in browse
    missing = client.get("/entries/no-such-entry")
    assert missing.status_code == 404 and "No entry with id" in missing.text


def test_hosts_other_than_the_allowed_ones_are_refused(resident):
    guarded = TestClient(create_app(resident, allowed_hosts=["127.0.0.1", "localhost"]),
                         base_url="http://127.0.0.1:8000")
    assert guarded.get(f"{API}/entries/lora").status_code == 200
    rebound = guarded.get(f"{API}/entries/lora", headers={"Host": "attacker.example:8000"})
    assert rebound.status_code == 400 and rebound.json()["error"]["type"] == "bad_host"


def test_a_rebuilt_index_is_served_without_a_restart(tmp_path):
    library = hostile_library(tmp_path / "library")
    resident = Resident(library)
    client = TestClient(create_app(resident))
    before = client.get(f"{API}/search", params={"q": "sparse mixture of tiny experts"}).json()
    Library.open(library).add("https://example.com/tiny-moe", title="Tiny MoE", entry_id="tiny-moe",
                              section="Model Architecture", kind="blog",
                              summary="A sparse mixture of tiny experts for small devices.")
    after = client.get(f"{API}/search", params={"q": "sparse mixture of tiny experts", "k": 3}).json()
    assert after["index"]["generation"] == before["index"]["generation"] + 1
    assert after["hits"][0]["id"] == "tiny-moe"
    assert client.get(f"{API}/entries/tiny-moe").status_code == 200
    assert client.get("/entries/tiny-moe").status_code == 200
    unchanged = client.get(f"{API}/search", params={"q": "lora"}).json()
    assert unchanged["index"]["generation"] == after["index"]["generation"]  # no reload without a change


def test_a_missing_index_answers_503_and_the_catalogue_still_answers(tmp_path):
    library = hostile_library(tmp_path / "library")
    client = TestClient(create_app(Resident(library)))
    assert client.get(f"{API}/search", params={"q": "lora"}).status_code == 200
    shutil.rmtree(library / "index")
    answer = client.get(f"{API}/search", params={"q": "lora"})
    assert answer.status_code == 503 and answer.json()["error"]["type"] == "index_missing"
    assert "paperscope build" in answer.json()["error"]["hint"]
    assert client.get(f"{API}/entries/lora").status_code == 200


def test_a_broken_catalogue_edit_keeps_the_last_good_one(tmp_path):
    library = hostile_library(tmp_path / "library")
    client = TestClient(create_app(Resident(library)))
    assert client.get(f"{API}/entries/lora").status_code == 200
    (library / "catalogue.yaml").write_text("- section: [unclosed\n")
    assert client.get(f"{API}/entries/lora").status_code == 200
    assert client.get(f"{API}/search", params={"q": "lora"}).status_code == 200


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                            ("[::1]", True), ("127.0.0.2", True), ("0.0.0.0", False),
                                            ("192.168.1.5", False), ("example.com", False)])
def test_loopback_hosts_are_told_apart(host, loopback):
    assert is_loopback(host) is loopback


def test_paperscope_serve_starts_on_loopback_and_answers(library):
    """The command as a user starts it: it prints its address and answers at once."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "paperscope", "--library", str(library), "serve",
                                "--port", "0"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               text=True, env=env)
    try:
        line = process.stderr.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
        assert match, line
        with urllib.request.urlopen(match.group(1) + "api/v1/search?q=lora&k=1", timeout=10) as answer:
            assert json.load(answer)["hits"][0]["id"] == "lora"
            assert answer.headers["Content-Security-Policy"]
        with urllib.request.urlopen(match.group(1), timeout=10) as answer:
            assert b"paperscope" in answer.read()
        assert time.perf_counter() - started < 30
    finally:
        process.terminate()
        process.wait(timeout=10)


def _state(pid: int) -> tuple[str, int] | None:
    """A process's state letter and parent (Linux's /proc), None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    state = _state(pid)
    return state is not None and state[0] != "Z"


def _workers_of(pid: int) -> set[int]:
    """The live processes `pid` spawned through multiprocessing."""
    found = set()
    for child in filter(str.isdigit, os.listdir("/proc")):
        state = _state(int(child))
        if state is not None and state[1] == pid and state[0] != "Z":
            with contextlib.suppress(OSError):
                if "spawn_main" in Path(f"/proc/{child}/cmdline").read_text():
                    found.add(int(child))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="counts processes through /proc")
def test_serve_workers_answer_together_and_end_with_the_command(library):
    """`serve --workers 3`: the command answers at once, two more processes join on the same
    port, and when the command is killed outright (no chance to stop them) they end too."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "paperscope", "--library", str(library), "serve",
                                "--port", "0", "--workers", "3"], stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, text=True, env=env)
    workers: set[int] = set()
    try:
        line = process.stderr.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
        assert match and "3 processes" in line, line
        for _ in range(600):  # until both have started (generous: a loaded machine)
            workers = _workers_of(process.pid)
            if len(workers) == 2:
                break
            time.sleep(0.1)
        assert len(workers) == 2
        for _ in range(30):  # a new connection each time: the kernel spreads them
            with urllib.request.urlopen(match.group(1) + "api/v1/search?q=lora&k=1", timeout=60) as answer:
                assert json.load(answer)["hits"][0]["id"] == "lora"
        process.kill()
        process.wait(timeout=10)
        deadline = time.monotonic() + 60
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers)
    finally:
        process.kill()
        process.wait(timeout=10)
        for pid in workers:
            with contextlib.suppress(OSError):
                os.kill(pid, 9)


def test_the_map_places_every_indexed_entry_and_marks_the_top_hits(client):
    points = client.get(f"{API}/map").json()["points"]
    ids = {p["id"] for p in points}
    assert {"lora", "qlora", HOSTILE_ID} <= ids
    assert all(0 <= p["x"] <= 1 and 0 <= p["y"] <= 1 for p in points)
    page = client.get("/map", params={"q": "parameter-efficient finetuning"})
    assert page.status_code == 200
    assert page.text.count('class="point"') + page.text.count('class="point top"') == len(points)
    assert re.search(r'class="point top" data-id="(lora|qlora)"', page.text)
    assert "&lt;img src=x" in page.text and "<img" not in page.text


def test_the_map_labels_cover_no_other_point_and_its_legend_comes_first(client):
    """A top hit's mark is its rank inside its own circle, its title in the list above the map,
    so no label covers another point; the legend stands above the map, not below the fold."""
    page = client.get("/map", params={"q": "parameter-efficient finetuning"}).text
    svg = page[page.index('<svg id="map"'):]
    assert page.index('class="legend"') < page.index('<svg id="map"')
    assert page.index('class="map-hits"') < page.index('<svg id="map"')
    points = re.findall(r'<a href="[^"]+" class="point( top)?" data-id="[^"]+">(.*?)</a>', svg, re.S)
    labelled = 0
    for top, body in points:
        circle = re.search(r'<circle cx="([\d.-]+)" cy="([\d.-]+)" r="(\d+)"', body)
        texts = re.findall(r'<text x="([\d.-]+)" y="([\d.-]+)"[^>]*>([^<]*)</text>', body)
        assert len(texts) == (1 if top else 0)
        for x, y, label in texts:
            assert (x, y) == circle.groups()[:2] and label.isdigit() and int(circle.group(3)) >= 11
            labelled += 1
    assert labelled == 5
    tops = [i for i, (top, _) in enumerate(points) if top]
    assert tops == list(range(len(points) - 5, len(points)))  # drawn last: over the others


@pytest.fixture
def bounded_server():
    """A uvicorn server with `serve`'s configuration and a half-second request deadline, in a
    thread, in front of a one-line app: (host, port)."""
    import socket
    import threading

    import uvicorn

    from paperscope.serve.server import server_config

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(server_config(app, request_seconds=0.5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield sock.getsockname()
    server.should_exit = True
    thread.join(30)
    sock.close()


def _closed_by_server(connection, wait: float = 60) -> bool:
    """Whether the server closes `connection` within `wait` seconds (generous: only the close,
    not its moment, is tested)."""

    connection.settimeout(wait)
    try:
        return connection.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_a_connection_that_never_finishes_its_headers_is_closed(bounded_server):
    """uvicorn alone keeps such a connection for ever (issue 21): a silent one, and one that
    sends its headers a byte at a time, are closed at the request deadline."""
    import socket

    with socket.create_connection(bounded_server) as silent:
        assert _closed_by_server(silent)
    with socket.create_connection(bounded_server) as dripping:
        dripping.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        closed = False
        for _ in range(600):  # a header line every 0.1 s: a minute of them, if never closed
            try:
                dripping.sendall(b"X-Slow: a\r\n")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.1)
        assert closed or _closed_by_server(dripping, 5)
    with socket.create_connection(bounded_server) as prompt:  # a whole request is answered
        prompt.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        prompt.settimeout(60)
        assert prompt.recv(1024).startswith(b"HTTP/1.1 200")


@pytest.fixture
def corpus_client(tmp_path, monkeypatch, fake_encoder):
    """A server over a library and its corpus "recent", both built with the fake encoder."""
    monkeypatch.setenv("PAPERSCOPE_CACHE", str(tmp_path / "cache"))
    library = library_with_corpus(tmp_path / "library", fake_encoder)
    return TestClient(create_app(Resident(library, encoder=fake_encoder)))


def test_search_and_related_take_a_corpus_and_an_unknown_one_is_404(corpus_client):
    found = corpus_client.get(f"{API}/search", params={"q": "quantized adapters finetuning",
                                                       "corpus": "recent", "k": 3}).json()
    assert found["corpus"] == "recent" and found["index"]["count"] == len(PAPERS)
    assert found["hits"][0]["id"] == "2502.00002" and found["hits"][0]["url"].startswith("https://arxiv.org/")
    catalogue = corpus_client.get(f"{API}/search", params={"q": "quantized adapters finetuning"}).json()
    assert catalogue["corpus"] is None and "qlora" in [h["id"] for h in catalogue["hits"]]
    related = corpus_client.get(f"{API}/related/2501.00001", params={"corpus": "recent", "k": 2}).json()
    assert related["corpus"] == "recent" and related["hits"]
    assert "2501.00001" not in [h["id"] for h in related["hits"]]
    filtered = corpus_client.get(f"{API}/related/2501.00001",
                                 params={"corpus": "recent", "year_from": 2030}).json()
    assert filtered["hits"] == []
    for path in (f"{API}/search", f"{API}/related/2501.00001", f"{API}/discover"):
        missing = corpus_client.get(path, params={"corpus": "nope", "q": "lora"})
        assert missing.status_code == 404, path
        error = missing.json()["error"]
        assert error["type"] == "unknown_entry" and "No corpus named 'nope'" in error["message"]
        assert "recent" in error["message"]
    assert corpus_client.get(f"{API}/corpora").json() == {"corpora": ["recent"]}
    not_a_paper = corpus_client.get(f"{API}/related/lora", params={"corpus": "recent"})
    assert not_a_paper.status_code == 404
    assert not_a_paper.json()["error"]["message"] == "No paper 'lora' in the corpus 'recent'."
    Corpus("recent").remove()  # a removed corpus is no longer served
    gone = corpus_client.get(f"{API}/search", params={"q": "adapters", "corpus": "recent"})
    assert gone.status_code == 404 and corpus_client.get(f"{API}/corpora").json() == {"corpora": []}


def test_the_discover_route_since_a_day_and_since_the_last_update(corpus_client, fake_encoder):
    everything = corpus_client.get(f"{API}/discover", params={"corpus": "recent", "limit": 10}).json()
    assert everything["since"] is None and everything["papers"]
    paper = everything["papers"][0]
    assert paper["closest"] and {"entry", "score", "shared_terms"} <= set(paper["closest"][0])
    recent = corpus_client.get(f"{API}/discover", params={"corpus": "recent", "since": "2025-04"}).json()
    assert {p["id"] for p in recent["papers"]} <= {"2504.00004", "2505.00005"}
    never = corpus_client.get(f"{API}/discover", params={"corpus": "recent", "new": "true"})
    assert never.status_code == 400 and "never updated" in never.json()["error"]["message"]
    assert "--since" in never.json()["error"]["hint"]
    bad = corpus_client.get(f"{API}/discover", params={"corpus": "recent", "since": "2025-13"})
    assert bad.status_code == 400 and "not a date" in bad.json()["error"]["message"]
    update_corpus("recent", fake_encoder)
    new = corpus_client.get(f"{API}/discover", params={"corpus": "recent", "new": "true"}).json()
    assert new["since"] == "2026-11-20"
    assert {p["id"] for p in new["papers"]} == {"2611.00006", "2611.00007"}


def test_an_updated_corpus_is_swapped_in_whole(corpus_client, fake_encoder):
    query = {"q": "sparse low-rank adapters for mixture-of-experts", "corpus": "recent", "k": 3}
    before = corpus_client.get(f"{API}/search", params=query).json()
    assert before["index"]["count"] == len(PAPERS)
    update_corpus("recent", fake_encoder)
    after = corpus_client.get(f"{API}/search", params=query).json()
    assert after["index"]["count"] == len(PAPERS) + len(NEW_PAPERS)
    assert after["index"]["documents_digest"] != before["index"]["documents_digest"]
    assert after["hits"][0]["id"] == "2611.00006"
    again = corpus_client.get(f"{API}/search", params=query).json()
    assert again["index"] == after["index"]


def test_the_pages_pick_a_corpus_and_list_what_is_new_near_the_list(corpus_client, fake_encoder):
    home = corpus_client.get("/").text
    assert '<select id="corpus"' in home and '<option value="recent"' in home and 'href="/new"' in home
    found = corpus_client.get("/", params={"q": "quantized adapters", "corpus": "recent"}).text
    assert "Quantized adapters make finetuning" in found
    assert 'href="https://arxiv.org/abs/2502.00002"' in found  # a corpus paper links to arXiv
    assert '<option value="recent" selected>' in found
    assert 'aria-label="Section" disabled' in found  # a corpus's papers have no sections
    assert corpus_client.get("/", params={"corpus": "nope", "q": "x"}).status_code == 404
    page = corpus_client.get("/new", params={"corpus": "recent", "since": "2025-01"}).text
    assert "first posted since 2025-01" in page and 'href="/entries/' in page and "near" in page
    never = corpus_client.get("/new", params={"corpus": "recent", "new": "true"})
    assert never.status_code == 400 and "never updated" in never.text
    update_corpus("recent", fake_encoder)
    new = corpus_client.get("/new", params={"corpus": "recent", "new": "true"}).text
    assert "since 2026-11-20" in new and "Sparse low-rank adapters" in new
    assert "Diffusion models for video" not in new


def test_without_corpora_there_is_no_picker(client):
    home = client.get("/").text
    assert '<option value="">The reading list</option>' in home and 'href="/new"' not in home
    assert "No corpus yet" in client.get("/new").text


def test_a_process_runs_at_most_its_share_of_searches_at_once(tmp_path, monkeypatch, fake_encoder):
    """`searches_at_once=1`: a second search (of the catalogue or a corpus) waits until the
    first is done; the bound is the Resident's, shared by its generations and corpus views."""
    import threading

    monkeypatch.setenv("PAPERSCOPE_CACHE", str(tmp_path / "cache"))
    library = library_with_corpus(tmp_path / "library", fake_encoder)
    inside, release = threading.Event(), threading.Event()
    encoding = []

    class Blocking(type(fake_encoder)):
        def encode(self, texts, progress=None):
            encoding.append(texts[0])
            if texts[0] == "first question":
                inside.set()
                assert release.wait(60)
            return super().encode(texts, progress)

    resident = Resident(library, encoder=Blocking(), searches_at_once=1)
    view = resident.corpus("recent")
    first = threading.Thread(target=resident.current().search, args=("first question",))
    second = threading.Thread(target=view.search, args=("second question",))
    first.start()
    assert inside.wait(60)
    second.start()
    second.join(0.5)  # would have encoded by now, were it not waiting its turn
    assert "second question" not in encoding and second.is_alive()
    release.set()
    first.join(60)
    second.join(60)
    assert encoding[-2:] == ["first question", "second question"]
