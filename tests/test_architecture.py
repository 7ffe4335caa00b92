"""The import graph of src/paperscope (docs/architecture.md, "Module map"): no circle, the
layers import downwards only, the CLI reaches the index code through the library alone, and
every module is named in docs/architecture.md."""

import ast
from pathlib import Path

from .conftest import REPO

PACKAGE = REPO / "src" / "paperscope"

# From the edge inwards; a module may import modules of its own layer or below, never above.
LAYERS = [
    {"cli", "__main__"},
    {"serve.commands", "serve.web", "serve.mcp", "serve.resident", "serve.server", "serve"},
    {"library"},
    {"corpora", "discover", "evaluate", "ingest", "citations", "markdown", "sources.corpus"},
    {"collection", "distributed"},
    {"indexer", "search"},
    {"onnx_encoder"},
    {"index", "chunks", "embedding", "lexical"},
    {"spelling"},
    {"catalogue", "beir", "bibtex", "render", "settings", "text", "files", "records", "errors",
     "version", "sources", "sources.base", "sources.ids", "sources.arxiv_api", "sources.oaipmh",
     "sources.snapshot", "sources.http", "sources.doi", "sources.web"},
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """The paperscope modules `path` imports at run time (TYPE_CHECKING blocks left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path).split(".")[:-1] if path.name != "__init__.py" else \
        _module_name(path).split(".")
    type_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                 and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                 for node in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only or not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
        target = ".".join([*base, *(node.module.split(".") if node.module else [])])
        names = [target] if node.module else [f"{target}.{alias.name}".lstrip(".") for alias in node.names]
        for name in names:
            name = name.strip(".")
            if (PACKAGE / (name.replace(".", "/") + ".py")).is_file() or \
                    (PACKAGE / name.replace(".", "/") / "__init__.py").is_file():
                found.add(name)
    return found - {_module_name(path)}


GRAPH = {_module_name(path): _imports(path) for path in PACKAGE.rglob("*.py")}


def _layer(module: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if module in layer)


def test_every_module_has_a_layer():
    assert {module for module in GRAPH if module} <= set().union(*LAYERS)


def test_nothing_imports_upwards():
    upward = [(a, b) for a, targets in GRAPH.items() if a for b in targets if b and _layer(b) < _layer(a)]
    assert upward == []


def test_the_import_graph_has_no_circle():
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join([*path, module])
        if module in done:
            return
        for target in GRAPH.get(module, ()):
            visit(target, (*path, module))
        done.add(module)

    for module in GRAPH:
        visit(module, ())


def test_the_cli_reaches_the_index_code_through_the_library_only():
    assert not GRAPH["cli"] & {"index", "indexer", "search", "collection", "corpora"}


def test_docs_architecture_names_every_module():
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    def named(module: str) -> bool:
        path = module.replace(".", "/")
        return any(f"`{form}`" in text for form in (f"{path}.py", f"{path}/__init__.py"))

    missing = [module for module in GRAPH if module and module != "serve" and not named(module)]
    assert missing == []
