"""`paperscope mcp`: a Model Context Protocol server over stdio (the official `mcp` SDK).

Tools: search, related, show and cite, with typed inputs and the JSON of the CLI's --json
(and of the web API); the catalogue is the resource paperscope://catalogue and each entry
paperscope://entries/{id}. A paperscope error becomes a tool error with its message and hint.
Nothing but the protocol is written to stdout.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field

from .. import __version__, render
from ..collection import Filters
from ..errors import PaperscopeError
from .resident import MAX_K, MAX_QUERY_CHARS, Resident

Mode = Literal["hybrid", "dense", "lexical"]
Kind = Literal["paper", "blog", "repo"]
INSTRUCTIONS = ("paperscope searches a curated reading list of research papers, blog posts and "
                "repositories by meaning. Use `search` with a question or keywords, `related` "
                "to find entries close to one, `show` for an entry's abstract and `cite` for "
                "BibTeX. Entry ids come from the results (for example `lora`).")


def build_server(resident: Resident):
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError

    server = MCPServer("paperscope", version=__version__, instructions=INSTRUCTIONS,
                       log_level="WARNING")

    def answer(call):
        try:
            return call()
        except PaperscopeError as err:
            raise ToolError(str(err)) from None

    @server.tool(description="Rank the reading list's entries for a question or keywords. Each "
                 "hit has rank, score, id, title, section, kind, year, url, arxiv_id and the "
                 "best-matching sentence (snippet).")
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
    ) -> dict[str, Any]:
        def run():
            generation = resident.current()
            filters = Filters(sections=tuple(sections or ()), kinds=tuple(kinds or ()),
                              year_from=year_from, year_to=year_to, tags=tuple(tags or ()))
            outcome = generation.search(query, k=k, mode=mode, filters=filters)
            return {"query": query, "hits": [render.hit_json(hit) for hit in outcome.hits],
                    "notices": outcome.notices}
        return answer(run)

    @server.tool(description="The entries closest to one entry (by id or arXiv id), itself "
                 "excluded, each with the terms the two share (shared_terms).")
    def related(
        id: Annotated[str, Field(min_length=1, max_length=200, description="An entry id or arXiv id.")],
        k: Annotated[int, Field(ge=1, le=MAX_K, description="How many results.")] = 5,
        mode: Annotated[Mode, Field(description="hybrid, dense or lexical.")] = "hybrid",
    ) -> dict[str, Any]:
        def run():
            generation = resident.current()
            entry = generation.entry(id)
            outcome = generation.related(entry.id, k=k, mode=mode)
            return {"id": entry.id, "hits": [render.hit_json(hit) for hit in outcome.hits],
                    "notices": outcome.notices}
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

    @server.resource("paperscope://entries/{id}", name="entry", mime_type="application/json",
                     description="One entry (as `paperscope show ID --json`).")
    def entry(id: str) -> str:
        try:
            return json.dumps(resident.current().entry_json(id), ensure_ascii=False)
        except PaperscopeError as err:  # the message and hint, not a traceback on stderr
            raise ResourceNotFoundError(str(err)) from None

    return server
