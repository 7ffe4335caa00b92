"""`paperscope mcp`: the MCP server over stdio, driven by the official SDK's own client
(spawning `python -m paperscope mcp` on a copy of the test library)."""

from __future__ import annotations

import json
import os
import sys

import anyio
import pytest

from paperscope.library import Library
from paperscope.render import hit_json

from .conftest import REPO
from .serve_helpers import (
    HOSTILE_ID,
    HOSTILE_TITLE,
    hostile_library,
    library_with_corpus,
    update_corpus,
)

mcp_client = pytest.importorskip("mcp.client.client")
from mcp.client.stdio import StdioServerParameters  # noqa: E402


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return hostile_library(tmp_path_factory.mktemp("mcp") / "library")


def session(library):
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "paperscope", "--library", str(library), "mcp"],
        env={"PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1",
             **{k: v for k, v in os.environ.items() if k.startswith(("HF_", "PAPERSCOPE_"))}})
    return mcp_client.Client(params, read_timeout_seconds=60)


def structured(result) -> dict:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


def test_mcp_tools_answer_over_stdio(library):
    async def main():
        async with session(library) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            assert {"search", "related", "show", "cite"} <= set(tools)
            schema = tools["search"].input_schema
            assert schema["required"] == ["query"] and schema["properties"]["k"]["maximum"] == 50

            found = structured(await client.call_tool("search", {"query": "parameter-efficient finetuning", "k": 3}))
            expected = Library.open(library).search("parameter-efficient finetuning", k=3).hits
            assert found["hits"] == [hit_json(hit) for hit in expected]
            assert {"lora", "qlora"} <= {hit["id"] for hit in found["hits"]}

            blogs = structured(await client.call_tool("search", {"query": "attention", "kinds": ["blog"]}))
            assert blogs["hits"] and all(hit["kind"] == "blog" for hit in blogs["hits"])

            related = structured(await client.call_tool("related", {"id": "lora", "k": 3}))
            qlora = next(hit for hit in related["hits"] if hit["id"] == "qlora")
            assert qlora["shared_terms"]

            shown = structured(await client.call_tool("show", {"id": HOSTILE_ID}))
            assert shown["title"] == HOSTILE_TITLE  # data, not markup: the client decides

            cited = structured(await client.call_tool("cite", {"ids": ["lora", "2305.14314"]}))
            assert [e["id"] for e in cited["entries"]] == ["lora", "qlora"]
            assert cited["bibtex"].count("@misc{") == 2

            missing = await client.call_tool("show", {"id": "no-such-entry"})
            assert missing.is_error and "No entry with id" in missing.content[0].text
            bad = await client.call_tool("search", {"query": "lora", "k": 500})
            assert bad.is_error

            from mcp.shared.exceptions import MCPError
            with pytest.raises(MCPError, match="No entry with id 'nope'"):
                await client.read_resource("paperscope://entries/nope")

            resources = (await client.list_resources()).resources
            assert "paperscope://catalogue" in {str(r.uri) for r in resources}
            catalogue = await client.read_resource("paperscope://catalogue")
            data = json.loads(catalogue.contents[0].text)
            assert [e["id"] for e in data["entries"]] == [e.id for e in Library.open(library).catalogue.entries]

    anyio.run(main)



def test_bad_arguments_get_paperscopes_message_not_pydantics(library):
    """As the JSON API says it: the field and what is wrong; no pydantic text or link (#21)."""
    async def main():
        async with session(library) as client:
            bad = await client.call_tool("search", {"query": "lora", "k": 500})
            text = bad.content[0].text
            assert bad.is_error and text == ("Invalid arguments for search: k: Input should be "
                                             "less than or equal to 50.")
            missing = await client.call_tool("show", {})
            assert missing.is_error and "id: Field required" in missing.content[0].text
            assert "pydantic" not in missing.content[0].text and "type=" not in missing.content[0].text

    anyio.run(main)


def test_a_line_that_is_not_json_is_answered_with_a_parse_error(library):
    """JSON-RPC's -32700 (id null) for a line that is not JSON, -32600 for JSON that is not a
    JSON-RPC message; the server goes on answering (#21)."""
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                             "clientInfo": {"name": "test", "version": "1"}}}
    lines = ["this is not json", '{"hello": "world"}', json.dumps(initialize)]
    done = subprocess.run([sys.executable, "-m", "paperscope", "--library", str(library), "mcp"],
                          input="\n".join(lines) + "\n", capture_output=True, text=True, env=env,
                          timeout=300)
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert answers[0] == {"jsonrpc": "2.0", "id": None,
                          "error": {"code": -32700, "message": "Parse error: the message is not valid JSON."}}
    assert answers[1]["id"] is None and answers[1]["error"]["code"] == -32600
    assert answers[2]["id"] == 1 and answers[2]["result"]["serverInfo"]["name"] == "paperscope"


def test_mcp_searches_relates_and_discovers_in_a_corpus(tmp_path, monkeypatch):
    """A corpus built with the packaged model, as a user's is, through the SDK's client."""
    monkeypatch.setenv("PAPERSCOPE_CACHE", str(tmp_path / "cache"))  # passed on to the server
    library = library_with_corpus(tmp_path / "library", None)

    async def main():
        async with session(library) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            assert "discover" in tools and "corpus" in tools["search"].input_schema["properties"]
            assert {"sections", "kinds", "year_from", "year_to", "tags", "corpus"} <= set(
                tools["related"].input_schema["properties"])
            found = structured(await client.call_tool(
                "search", {"query": "quantized adapters finetuning", "corpus": "recent", "k": 3}))
            assert found["corpus"] == "recent" and found["hits"][0]["id"] == "2502.00002"
            related = structured(await client.call_tool("related", {"id": "2501.00001", "corpus": "recent"}))
            assert related["hits"] and "2501.00001" not in [h["id"] for h in related["hits"]]
            blogs = structured(await client.call_tool("related", {"id": "lora", "kinds": ["blog"]}))
            assert all(hit["kind"] == "blog" for hit in blogs["hits"])
            old = structured(await client.call_tool("related", {"id": "lora", "year_to": 2019}))
            assert all(hit["year"] <= 2019 for hit in old["hits"])
            papers = structured(await client.call_tool("discover", {"corpus": "recent", "limit": 3}))
            assert papers["papers"] and papers["papers"][0]["closest"][0]["entry"]
            never = await client.call_tool("discover", {"corpus": "recent", "new": True})
            assert never.is_error and "never updated" in never.content[0].text
            unknown = await client.call_tool("search", {"query": "lora", "corpus": "nope"})
            assert unknown.is_error and "No corpus named 'nope'" in unknown.content[0].text
            update_corpus("recent", None)  # the server swaps the rebuilt corpus in
            new = structured(await client.call_tool("discover", {"corpus": "recent", "new": True}))
            assert new["since"] == "2026-11-20"
            assert {p["id"] for p in new["papers"]} == {"2611.00006", "2611.00007"}
            listed = await client.read_resource("paperscope://corpora")
            assert json.loads(listed.contents[0].text) == {"corpora": ["recent"]}

    anyio.run(main)
