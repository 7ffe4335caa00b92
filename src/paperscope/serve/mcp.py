"""`paperscope mcp`: a Model Context Protocol server over stdio (the official `mcp` SDK).

Tools: search, related, show, cite and discover (search and related take a `corpus` to look
in an imported corpus instead of the catalogue), with typed inputs and the JSON of the CLI's --json
(and of the web API); the catalogue is the resource paperscope://catalogue and each entry
paperscope://entries/{id}. A paperscope error becomes a tool error with its message and hint;
arguments that do not fit a tool's schema get paperscope's message, as the JSON API gives it
(`resident.input_problems`), not pydantic's text and link. A line that is not JSON is answered
with JSON-RPC's -32700 (parse error), one that is not a JSON-RPC message with -32600.
Nothing but the protocol is written to stdout.
"""

from __future__ import annotations

import contextlib
import json
from typing import Annotated, Any, Literal

from pydantic import Field

from .. import __version__, render
from ..collection import Filters
from ..errors import PaperscopeError
from .resident import MAX_K, MAX_QUERY_CHARS, Resident, input_problems

Mode = Literal["hybrid", "dense", "lexical"]
Kind = Literal["paper", "blog", "repo"]
CorpusName = Annotated[str | None, Field(max_length=64, description="Look in this corpus (see "
                                         "paperscope://corpora) instead of the reading list.")]
INSTRUCTIONS = ("paperscope searches a curated reading list of research papers, blog posts and "
                "repositories by meaning. Use `search` with a question or keywords, `related` "
                "to find entries close to one, `show` for an entry's abstract and `cite` for "
                "BibTeX. Entry ids come from the results (for example `lora`). `search` and "
                "`related` take a `corpus` (an imported slice of arXiv, see the resource "
                "paperscope://corpora) to look there instead; `discover` finds a corpus's papers "
                "near the list, new ones since a day or since the corpus's last update.")


def build_server(resident: Resident):
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
    from pydantic import ValidationError

    class Server(MCPServer):
        async def call_tool(self, name, arguments, context=None):
            try:
                return await super().call_tool(name, arguments, context)
            except ToolError as err:
                if not isinstance(err.__cause__, ValidationError):
                    raise
                raise ToolError(f"Invalid arguments for {name}: "
                                f"{input_problems(err.__cause__.errors())}.") from err.__cause__

        async def run_stdio_async(self) -> None:
            await serve_stdio(self._lowlevel_server)  # the SDK's loop, with parse errors answered

    server = Server("paperscope", version=__version__, instructions=INSTRUCTIONS,
                    log_level="WARNING")

    def answer(call):
        try:
            return call()
        except PaperscopeError as err:
            raise ToolError(str(err)) from None

    @server.tool(description="Rank the reading list's entries for a question or keywords. Each "
                 "hit has rank, score (0-1, calibrated: about the chance the hit is relevant, "
                 "comparable across queries), weak (score under 0.3: not a close match), id, "
                 "title, section, kind, year, url, arxiv_id and the best-matching sentence "
                 "(snippet).")
    def search(
        query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS,
                                    description="A question or keywords.")],
        k: Annotated[int, Field(ge=1, le=MAX_K, description="How many results.")] = 10,
        mode: Annotated[Mode, Field(description="hybrid (BM25 fused with embeddings), dense or lexical.")] = "hybrid",
        sections: Annotated[list[str] | None, Field(description="Only these sections.")] = None,
        kinds: Annotated[list[Kind] | None, Field(description="Only these kinds.")] = None,
        year_from: Annotated[int | None, Field(ge=0, le=9999)] = None,
        year_to: Annotated[int | None, Field(ge=0, le=9999)] = None,
        tags: Annotated[list[str] | None, Field(description="Only entries with any of these tags.")] = None,
        min_score: Annotated[float, Field(ge=0.0, le=1.0, description="Only hits scoring this or more "
                                          "(about the chance a hit is relevant).")] = 0.0,
        corpus: CorpusName = None,
    ) -> dict[str, Any]:
        def run():
            searched = resident.corpus(corpus) if corpus else resident.current()
            filters = Filters(sections=tuple(sections or ()), kinds=tuple(kinds or ()),
                              year_from=year_from, year_to=year_to, tags=tuple(tags or ()))
            outcome = searched.search(query, k=k, mode=mode, filters=filters, min_score=min_score)
            return {"query": query, "corpus": corpus,
                    "hits": [render.hit_json(hit) for hit in outcome.hits], "notices": outcome.notices}
        return answer(run)

    @server.tool(description="The entries closest to one entry (by id or arXiv id), itself "
                 "excluded, each with the terms the two share (shared_terms); the same filters "
                 "as search. With corpus: the corpus's papers closest to one of its papers.")
    def related(
        id: Annotated[str, Field(min_length=1, max_length=200, description="An entry id or arXiv id "
                                 "(with corpus: the arXiv id of one of its papers).")],
        k: Annotated[int, Field(ge=1, le=MAX_K, description="How many results.")] = 5,
        mode: Annotated[Mode, Field(description="hybrid, dense or lexical.")] = "hybrid",
        sections: Annotated[list[str] | None, Field(description="Only these sections.")] = None,
        kinds: Annotated[list[Kind] | None, Field(description="Only these kinds.")] = None,
        year_from: Annotated[int | None, Field(ge=0, le=9999)] = None,
        year_to: Annotated[int | None, Field(ge=0, le=9999)] = None,
        tags: Annotated[list[str] | None, Field(description="Only entries with any of these tags.")] = None,
        min_score: Annotated[float, Field(ge=0.0, le=1.0, description="Only hits scoring this or more.")] = 0.0,
        corpus: CorpusName = None,
    ) -> dict[str, Any]:
        def run():
            filters = Filters(sections=tuple(sections or ()), kinds=tuple(kinds or ()),
                              year_from=year_from, year_to=year_to, tags=tuple(tags or ()))
            if corpus:
                outcome = resident.corpus(corpus).related(id, k=k, mode=mode, filters=filters,
                                                          min_score=min_score)
                key = id.strip()
            else:
                generation = resident.current()
                key = generation.entry(id).id
                outcome = generation.related(key, k=k, mode=mode, filters=filters, min_score=min_score)
            return {"id": key, "corpus": corpus, "hits": [render.hit_json(hit) for hit in outcome.hits],
                    "notices": outcome.notices}
        return answer(run)

    @server.tool(description="Papers of a corpus that belong near the reading list but are not "
                 "in it, nearest first: each with rank, score (0-1), id (arXiv id), title, year, "
                 "url, categories and closest (the entries it is near, with the words they "
                 "share). With since or new, only papers first posted since then.")
    def discover(
        corpus: Annotated[str, Field(min_length=1, max_length=64, description="The corpus to look in.")],
        since: Annotated[str | None, Field(max_length=10, description="Only papers first posted on "
                                           "or after this day (YYYY, YYYY-MM or YYYY-MM-DD).")] = None,
        new: Annotated[bool, Field(description="Only papers first posted since the corpus's "
                                   "last update.")] = False,
        limit: Annotated[int, Field(ge=1, le=MAX_K, description="How many papers.")] = 20,
        entries: Annotated[list[str] | None, Field(description="Papers near these entries "
                                                   "(default: the whole list).")] = None,
    ) -> dict[str, Any]:
        def run():
            found, day = resident.discover(corpus, since=since, new=new, k=limit, entries=entries or ())
            return {"corpus": corpus, "since": day, "papers": [d.to_json() for d in found]}
        return answer(run)

    @server.tool(description="One entry: title, authors, year, section, kind, tags, link, "
                 "abstract or summary, and the maintainer's note.")
    def show(id: Annotated[str, Field(min_length=1, max_length=200,
                                      description="An entry id or arXiv id.")]) -> dict[str, Any]:
        return answer(lambda: resident.current().entry_json(id))

    @server.tool(description="BibTeX for entries, with stable citation keys (as `paperscope cite`).")
    def cite(ids: Annotated[list[str], Field(min_length=1, max_length=200,
                                             description="Entry ids or arXiv ids.")]) -> dict[str, Any]:
        def run():
            generation = resident.current()
            cited = [generation.bibtex(i) for i in ids]
            return {"entries": [{"id": entry.id, "key": key} for entry, key, _ in cited],
                    "bibtex": "\n".join(text for _, _, text in cited)}
        return answer(run)

    @server.resource("paperscope://catalogue", name="catalogue", mime_type="application/json",
                     description="Every entry of the reading list (as `paperscope list --json`), "
                     "with the section names.")
    def catalogue() -> str:
        generation = resident.current()
        return json.dumps({"sections": generation.catalogue.sections,
                           "entries": generation.entries_json()}, ensure_ascii=False)

    @server.resource("paperscope://corpora", name="corpora", mime_type="application/json",
                     description="The corpora that search, related and discover can look in.")
    def corpora() -> str:
        return json.dumps({"corpora": resident.corpus_names()})

    @server.resource("paperscope://entries/{id}", name="entry", mime_type="application/json",
                     description="One entry (as `paperscope show ID --json`).")
    def entry(id: str) -> str:
        try:
            return json.dumps(resident.current().entry_json(id), ensure_ascii=False)
        except PaperscopeError as err:  # the message and hint, not a traceback on stderr
            raise ResourceNotFoundError(str(err)) from None

    return server


async def serve_stdio(lowlevel) -> None:
    """The SDK's stdio transport and server loop, with one step between them: the SDK hands a
    line it cannot read to the server as an exception, which it only logs, so the client waits
    for an answer that never comes. Here such a line is answered with a JSON-RPC error (id null):
    -32700 when it is not JSON, -32600 when it is JSON but not a JSON-RPC message."""
    import anyio
    from mcp.server.stdio import stdio_server
    from mcp.shared.message import SessionMessage
    from mcp_types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError

    def error(problem: Exception) -> SessionMessage:
        not_json = any(e.get("type") == "json_invalid" for e in getattr(problem, "errors", list)())
        data = (ErrorData(code=PARSE_ERROR, message="Parse error: the message is not valid JSON.")
                if not_json else
                ErrorData(code=INVALID_REQUEST, message="Invalid request: not a JSON-RPC 2.0 message."))
        return SessionMessage(JSONRPCError(jsonrpc="2.0", id=None, error=data))

    async with stdio_server() as (read_stream, write_stream):
        forward, received = anyio.create_memory_object_stream[Any](0)

        async def relay() -> None:
            async with forward:
                async for item in read_stream:
                    if not isinstance(item, Exception):
                        await forward.send(item)
                        continue
                    with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                        await write_stream.send(error(item))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(relay)
            await lowlevel.run(received, write_stream, lowlevel.create_initialization_options())
            tasks.cancel_scope.cancel()
