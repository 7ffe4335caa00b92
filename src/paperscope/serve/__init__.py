"""Servers over one resident library: a web page and JSON API (`paperscope serve`) and an MCP
server over stdio (`paperscope mcp`).

Both are thin adapters over `paperscope.library`: `resident.Resident` holds one opened library
generation (catalogue, records, index and query encoder) and swaps in a new one, whole, when
the index or catalogue changes on disk; the adapters turn its answers into HTTP or MCP
responses and never open index files themselves. Nothing here writes to the library."""
