"""The paperscope command line: a thin layer over `paperscope.library`.

Data goes to stdout (plain text, or clean JSON with --json); notices, progress
and errors go to stderr. Domain errors become a message and the exit code of
their class here, and nowhere else.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.parse
import webbrowser
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import click
import typer
from typer.core import TyperGroup

from . import render, settings
from .beir import has_corpus, read_qrels, read_queries
from .errors import FetchError, PaperscopeError, UsageError, storage_error
from .files import atomic_write_text, file_size, read_text
from .render import FORMATS, entries_as_text, entry_as_text, printable
from .text import counted, plural
from .version import __version__

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from .library import Library

GLOBAL_OPTIONS = ("--library", "-L", "--verbose", "-v", "--version")


class _Commands(TyperGroup):
    """paperscope's commands; a global option given after the command is answered with where
    it goes, not click's bare "No such option"."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.NoSuchOption as err:
            if err.option_name not in GLOBAL_OPTIONS:
                raise
            raise click.UsageError(f"{err.option_name} is an option of paperscope itself: give it "
                                   f"before the command, as in: paperscope {err.option_name}"
                                   f"{' DIR' if err.option_name in ('--library', '-L') else ''} "
                                   f"{ctx.invoked_subcommand or 'COMMAND'} ...", err.ctx) from None


app = typer.Typer(
    cls=_Commands,
    name="paperscope",
    help="Semantic search over the abstracts of a curated reading list.\n\n"
         "Run it inside a folder holding catalogue.yaml (or pass --library). Start with:\n\n"
         '  paperscope search "parameter-efficient finetuning"',
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)



class _State:
    library_path: Optional[Path] = None
    verbose: bool = False
    said_waiting: bool = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"paperscope {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    library: Optional[Path] = typer.Option(
        None, "--library", "-L", help="Folder holding catalogue.yaml (default: the current "
        "folder or the nearest one above it; or $PAPERSCOPE_LIBRARY).", file_okay=False),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what happens to stderr."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    settings.single_threaded()  # before NumPy is imported; large builds through torch use every core
    _State.library_path = library
    _State.verbose = verbose
    _State.said_waiting = False
    ctx.obj = library  # for the commands of paperscope.serve, which do not import this module
    if verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(levelname)s %(name)s: %(message)s")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _errors_to_exit_codes(command):
    """Turn paperscope's typed errors into a message on stderr and an exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        if threading.current_thread() is threading.main_thread():  # SIGTERM stops as Ctrl-C does
            signal.signal(signal.SIGTERM, _interrupt)
        try:
            result = command(*args, **kwargs)
            sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
            return result
        except BrokenPipeError:  # `paperscope list | head -1`: the reader has all it wanted
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
        except (PaperscopeError, OSError, sqlite3.Error) as caught:
            err = caught if isinstance(caught, PaperscopeError) else storage_error(caught)
            _err(f"error: {err.message}")
            if err.hint:
                _err(err.hint)
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            _err("interrupted; nothing half-written was kept.")
            raise typer.Exit(130) from None

    return wrapper


def _command(*args, **kwargs):
    def register(function):
        return app.command(*args, **kwargs)(_errors_to_exit_codes(function))

    return register


def _err(message: str) -> None:
    typer.echo(printable(message), err=True)


def _echo(text: str = "", nl: bool = True) -> None:
    """Plain text on stdout, its control and bidi characters made harmless (JSON output goes
    through json.dumps instead, which escapes them)."""
    typer.echo(printable(text), nl=nl)


def _api():
    """paperscope.library, the layer under every command that opens a catalogue, an index or a
    corpus. It loads NumPy and the index code, so it is imported when a command first needs it
    and `paperscope --help` stays instant."""
    from . import library

    return library


def _library() -> Library:
    return _api().Library.open(_State.library_path)


def _print_json(data) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _print_items(items: Iterable[dict], fmt: str) -> None:
    """Objects as one JSON list (as json.dumps(list, indent=2) writes it) or as JSON lines,
    written one at a time: a long list is never held as one text."""
    if fmt == "jsonl":
        for item in items:
            typer.echo(json.dumps(item, ensure_ascii=False))
        return
    opening = "["
    for item in items:
        typer.echo(opening + "\n  " + json.dumps(item, indent=2, ensure_ascii=False).replace("\n", "\n  "),
                   nl=False)
        opening = ","
    typer.echo("[]" if opening == "[" else "\n]")


# Options shared by several commands.
TopK = Annotated[int, typer.Option("-k", "--top", metavar="N", help="How many results to show.")]
Mode = Annotated[str, typer.Option("--mode", "-m", metavar="MODE", help="Ranking: hybrid (BM25 fused with "
                                   "embeddings), dense (embeddings) or lexical (BM25).")]
Sections = Annotated[Optional[list[str]], typer.Option("--section", "-s", metavar="SECTION",
                                                       help="Only this section (repeatable).")]
Kinds = Annotated[Optional[list[str]], typer.Option("--kind", metavar="KIND",
                                                    help="Only paper, blog or repo (repeatable).")]
YearFrom = Annotated[Optional[int], typer.Option("--year-from", metavar="YEAR", help="Only entries from this year on.")]
YearTo = Annotated[Optional[int], typer.Option("--year-to", metavar="YEAR", help="Only entries up to this year.")]
Format = Annotated[str, typer.Option("--format", "-f", metavar="FORMAT",
                                     help="table (for people), json, jsonl (one object a line) or bibtex.")]
DataFormat = Annotated[str, typer.Option("--format", "-f", metavar="FORMAT",
                                         help="table (for people), json or jsonl (one object a line).")]
AsJson = Annotated[bool, typer.Option("--json", help="Shorthand for --format json.")]
IndexDir = Annotated[Optional[Path], typer.Option(
    "--index-dir", metavar="DIR",
    help="Search the index in DIR (built with `build --corpus`) instead of the catalogue's.")]
Tags = Annotated[Optional[list[str]], typer.Option("--tag", "-t", metavar="TAG",
                                                   help="Only entries with this tag (repeatable: any of them).")]
NoBuild = Annotated[bool, typer.Option("--no-build", help="Only edit catalogue.yaml; update the index later.")]
NoWait = Annotated[bool, typer.Option("--no-wait", help="Fail at once if another paperscope process "
                                      "is writing this library.")]
SearchMethod = Annotated[str, typer.Option(
    "--search", metavar="METHOD", help="exact, approximate (a FAISS IVF index, for large corpora) "
    "or auto (approximate above 100,000 passages).")]
PassageScheme = Annotated[Optional[str], typer.Option(
    "--passages", metavar="SCHEME", help="multi-scale (passages of 90, 55 and 35 words: best "
    "quality) or whole (one vector per abstract: a thirteenth of the embedding time). "
    "Default: multi-scale up to 20,000 papers, whole above.")]
CorpusName = Annotated[Optional[str], typer.Option(
    "--corpus", "-c", metavar="NAME",
    help="Search the named corpus (see `paperscope corpus list`) instead of the catalogue.")]
MinScore = Annotated[float, typer.Option(
    "--min-score", metavar="SCORE", min=0.0, max=1.0,
    help="Only hits scoring SCORE or more (0 to 1; the score is about the chance a hit is "
         "relevant, the same in every query).")]


def _print_object(data: dict, fmt: str) -> None:
    """One object as an indented JSON document, or as one JSON line."""
    if fmt == "json":
        _print_json(data)
    else:
        _print_items([data], fmt)


def _console():
    """A rich console on stdout: its width, and whether it is a terminal (FORCE_COLOR and
    TTY_COMPATIBLE count as one; COLUMNS sets the width)."""
    from rich.console import Console

    return Console()


def _data_format(fmt: str, as_json: bool, more: Sequence[str] = ()) -> str:
    """The output format of a command whose output is not catalogue entries (no BibTeX; `more`:
    the command's own formats besides table, json and jsonl)."""
    choices = (*(f for f in FORMATS if f != "bibtex"), *more)
    if fmt.lower() == "bibtex" and not as_json:
        raise UsageError(f"BibTeX is for catalogue entries: use {_one_of(choices)}.")
    return _output_format(fmt, as_json, choices)


def _output_format(fmt: str, as_json: bool, choices: Sequence[str] = FORMATS) -> str:
    fmt = fmt.lower()
    if as_json and fmt not in ("table", "json"):
        raise UsageError(f"--json and --format {fmt} ask for two formats: give one of them.")
    fmt = "json" if as_json else fmt
    if fmt not in choices:
        raise UsageError(f"Unknown format {fmt!r}: choose {_one_of(choices)}.")
    return fmt


def _one_of(choices: Sequence[str]) -> str:
    return f"{', '.join(choices[:-1])} or {choices[-1]}"


class _Progress:
    """A progress bar on stderr when it is a terminal; otherwise, on long work, a plain line
    every `LINE_SECONDS` (for logs and CI), so that long work is never silent: a thread writes it
    even while nothing advances (a model loading, a long batch, a Ray job's first chunk). The
    time left is estimated from the pace since the first advance, so that what came before it
    (loading a model) does not inflate it."""

    LINE_SECONDS = 30.0
    TICK_SECONDS = 5.0  # how often the thread looks

    def __init__(self, description: str):
        self.description = description
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._plain = False  # plain lines instead of a bar (stderr is not a terminal)
        self._done = self._total = 0
        self._unit = ""
        self._first: tuple[float, int] | None = None  # (time, count) at the first advance
        self._last_line = 0.0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._ticker: threading.Thread | None = None

    def start(self, total: int, unit: str = "") -> None:
        if total <= 0:
            return
        if not sys.stderr.isatty():
            self._plain, self._done, self._total, self._unit = True, 0, total, unit
            self._first, self._last_line = None, time.monotonic()
            if self._ticker is None:
                self._stopped.clear()
                self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
                self._ticker.start()
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        columns = [BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        self._bar = Progress("{task.description}", *columns, console=Console(stderr=True),
                             transient=True)
        self._bar.start()
        self._task = self._bar.add_task(f"{self.description} {unit}".strip(), total=total)

    def advance(self, amount: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, amount)
        elif self._plain:
            with self._lock:
                self._done += amount
                now = time.monotonic()
                if self._first is None:
                    self._first = (now, self._done)
                if now - self._last_line >= self.LINE_SECONDS:
                    self._line(now)

    def _tick(self) -> None:
        while not self._stopped.wait(self.TICK_SECONDS):
            with self._lock:
                now = time.monotonic()
                if self._plain and now - self._last_line >= self.LINE_SECONDS:
                    self._line(now)

    def _line(self, now: float) -> None:
        if self._done >= self._total:
            return
        self._last_line = now
        left = "estimating the time left"
        if self._first is not None and self._done > self._first[1] and now > self._first[0]:
            pace = (self._done - self._first[1]) / (now - self._first[0])
            minutes = round((self._total - self._done) / pace / 60)
            left = f"about {minutes} min left" if minutes else "under a minute left"
        _err(f"{self.description}: {self._done}/{self._total} {self._unit} "
             f"({self._done / self._total:.0%}), {left}")

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        self._stopped.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        self._plain = False


def _arxiv_source():
    """The arXiv client, saying on stderr when it waits to try again."""
    from .sources.arxiv_api import ArxivApiSource

    def on_retry(reason: str, delay: float) -> None:
        _err(f"arXiv: {reason}; trying again in {delay:.0f} s")

    return ArxivApiSource(on_retry=on_retry)


def _web_sources() -> list:
    """The arXiv client, the DOI client (OpenAlex, Crossref) and the web pages' client, saying
    on stderr when they wait to try again."""
    from .sources.doi import DoiSource
    from .sources.web import WebSource

    def on_retry(reason: str, delay: float) -> None:
        _err(f"DOI: {reason}; trying again in {delay:.0f} s")

    def on_page_retry(reason: str, delay: float) -> None:
        _err(f"Web: {reason}; trying again in {delay:.0f} s")

    return [_arxiv_source(), DoiSource(on_retry=on_retry), WebSource(on_retry=on_page_retry)]


def _waiting() -> None:
    """Say once per command that it waits for another process (`add` takes the lock twice:
    to edit the catalogue, then to build)."""
    if not _State.said_waiting:
        _State.said_waiting = True
        _err("Another paperscope process is writing this library; waiting for it to finish…")


# -- commands -------------------------------------------------------------------------


@_command()
def ingest(
    from_snapshot: Optional[Path] = typer.Option(
        None, "--from-snapshot", metavar="FILE", dir_okay=False,
        help="Read an arXiv metadata snapshot (JSON lines, optionally .gz) instead of the API."),
    refresh: bool = typer.Option(False, "--refresh", help="Fetch every entry again: arXiv and DOI "
                                 "abstracts, blog posts' and repositories' text."),
    no_build: bool = typer.Option(False, "--no-build", help="Only fetch; do not rebuild the index."),
    no_wait: bool = typer.Option(False, "--no-wait", help="Fail at once if another build runs."),
) -> None:
    """Fetch abstracts of the catalogue's papers and the text of its blog posts and
    repositories, then rebuild the index.

    Only entries missing from the record cache (index/records.json) are fetched: arXiv ids
    from arXiv, DOIs from OpenAlex and Crossref, blog posts' main text from their pages, GitHub
    repositories' READMEs from the GitHub API ($PAPERSCOPE_GITHUB_API). A blog post or
    repository is searched by its summary, then its fetched text.
    Examples:

      paperscope ingest

      paperscope ingest --refresh

      paperscope ingest --from-snapshot arxiv-metadata-oai-snapshot.json
    """
    library = _library()
    bar = _Progress("Reading snapshot" if from_snapshot else "Fetching")
    try:
        report = library.ingest(snapshot=from_snapshot, refresh=refresh, progress=bar.advance,
                                source=None if from_snapshot else _web_sources(),
                                on_plan=bar.start, wait=not no_wait, on_wait=_waiting)
    finally:
        bar.stop()
    asked = report.asked or ["arXiv"]
    source = f"snapshot {from_snapshot}" if from_snapshot else \
        " and ".join(filter(None, [", ".join(asked[:-1]), asked[-1]]))
    cached = f"{report.cached} {'was' if report.cached == 1 else 'were'} already cached"
    noun = "paper" if all(label == "arXiv" for label in asked) else "entry"
    _err(f"Fetched {len(report.fetched)} of {counted(len(report.fetched) + len(report.failures), noun)} "
         f"from {source}; {cached}.")
    if not no_build:
        _build(library, full=False, model=None, no_wait=no_wait)
    if report.unreachable:
        raise FetchError(
            f"{report.unreachable}: {counted(len(report.failures), 'paper')} "
            f"{'was' if len(report.failures) == 1 else 'were'} not fetched "
            "(everything else was kept).", report.failures,
            hint="Check the network, or read an arXiv metadata snapshot instead: "
                 "paperscope ingest --from-snapshot FILE")
    if report.failures:
        lines = "\n".join(f"  {arxiv_id}: {why}" for arxiv_id, why in sorted(report.failures.items()))
        raise FetchError(
            f"{counted(len(report.failures), 'paper')} could not be fetched (everything else was kept):"
            f"\n{lines}",
            report.failures,
            hint="Fetch {0} from arXiv with `paperscope ingest`, or from a snapshot that has {0}.".format(
                "it" if len(report.failures) == 1 else "them")
            if from_snapshot else "Run `paperscope ingest` again later to fetch only these.")


_FROM_BIBTEX = typer.Option(None, "--from-bibtex", metavar="FILE", dir_okay=False,
                            help="A BibTeX file (Zotero's export too): one entry per reference.")
_FROM_CSL_JSON = typer.Option(None, "--from-csl-json", metavar="FILE", dir_okay=False,
                              help="A CSL JSON file (Zotero: Export Library, CSL JSON).")
_SECTION_FIELD = typer.Option(None, "--section-field", metavar="FIELD",
                              help="Take each reference's section from this field's first value "
                              "(keywords, groups...); --section for those without it.")


def _citation_file(from_bibtex: Path | None, from_csl_json: Path | None) -> tuple[str, Path] | None:
    """(format, path) of the reference file to import, if one was given."""
    if from_bibtex and from_csl_json:
        raise UsageError("Give --from-bibtex or --from-csl-json, not both.")
    return ("bibtex", from_bibtex) if from_bibtex else \
        ("csl-json", from_csl_json) if from_csl_json else None


def _report_import(imported) -> None:
    """Say what an import wrote, by kind, and what it left out and why."""
    counts = imported.placement.counts()
    total = sum(counts.values())
    _err(f"Imported {counted(total, 'entry')} ({counts['arXiv']} arXiv, {counts['DOI']} DOI, "
         f"{counts['link']} link) in {counted(len(imported.placement.sections), 'section')}.")
    for key, why in imported.placement.duplicates:
        _err(f"  skipped {key}: {why}")
    for key, why in imported.problems:
        _err(f"  not imported {key}: {why}")


@_command()
def add(
    sources: Optional[list[str]] = typer.Argument(None, metavar="ARXIV_ID_OR_URL...",
                                        help="arXiv ids or arxiv.org links, DOIs (10.…/…, doi:…, "
                                        "https://doi.org/…), or another http(s) link."),
    section: Optional[str] = typer.Option(None, "--section", "-s", metavar="SECTION",
                                          help="Section to add to (created if new; needed when "
                                          "the catalogue has several)."),
    summary: Optional[str] = typer.Option(None, "--summary", metavar="TEXT", help="What search reads for "
                                          "a link (before a blog's or repo's fetched text; for an "
                                          "arXiv paper or DOI while offline)."),
    title: Optional[str] = typer.Option(None, "--title", metavar="TEXT",
                                        help="Title (default: arXiv's, OpenAlex's, the page's)."),
    kind: Optional[str] = typer.Option(None, "--kind", metavar="KIND",
                                       help="paper, blog or repo (blog, repo: fetch the link's "
                                       "own text, a GitHub repository's README)."),
    entry_id: Optional[str] = typer.Option(None, "--id", metavar="ID",
                                           help="The entry's id (default: from the title)."),
    authors: Optional[list[str]] = typer.Option(
        None, "--authors", metavar="NAMES", help="Authors, comma-separated (repeatable)."),
    year: Optional[int] = typer.Option(None, "--year", metavar="YEAR", min=1000, max=9999,
                                       help="Year of publication (four digits)."),
    tag: Optional[list[str]] = typer.Option(None, "--tag", "-t", metavar="TAG", help="A tag (repeatable)."),
    note: Optional[str] = typer.Option(None, "--note", metavar="TEXT",
                                       help="Your own note on the entry (search reads it too)."),
    from_snapshot: Optional[Path] = typer.Option(
        None, "--from-snapshot", metavar="FILE", dir_okay=False,
        help="Take the metadata from an arXiv snapshot file instead of the API."),
    corpus: Optional[str] = typer.Option(
        None, "--corpus", "-c", metavar="NAME",
        help="Take the metadata from an imported corpus (see `paperscope discover`), offline."),
    from_bibtex: Optional[Path] = _FROM_BIBTEX,
    from_csl_json: Optional[Path] = _FROM_CSL_JSON,
    section_field: Optional[str] = _SECTION_FIELD,
    no_build: NoBuild = False,
    no_wait: NoWait = False,
) -> None:
    """Add papers or links to catalogue.yaml (keeping its comments and layout) and rebuild.

    With --from-bibtex or --from-csl-json, every reference of a BibTeX file or a Zotero
    CSL JSON export is added, offline (`ingest` fetches the abstracts later).

    Examples:

      paperscope add 2203.15556 --section "Training Recipe" --tag scaling

      paperscope add 2106.09685 2305.14314 --section "Training Recipe"

      paperscope add 10.18653/v1/2020.acl-main.740 --section "Training Recipe"

      paperscope add https://github.com/tatsu-lab/stanford_alpaca --kind repo

      paperscope add https://kipp.ly/transformer-inference-arithmetic/ --kind blog

    A blog post's main text (HTML only) or a repository's README is fetched and
    searched after --summary, if given. When it cannot be fetched, the entry is
    added only if --title and --summary are given (`paperscope ingest` tries
    again later).

      paperscope add 2512.03402 --corpus arxiv-cl --section "Training Recipe"

      paperscope add --from-bibtex refs.bib --section-field keywords

    \b
    paperscope add https://example.org/post --kind blog --title "A post" \\
        --summary "What it covers." --authors "Ada Lovelace, Alan Turing" \\
        --year 2024
    """
    library = _library()
    citation_file = _citation_file(from_bibtex, from_csl_json)
    if citation_file is not None:
        if sources:
            raise UsageError("Give arXiv ids and links, or a file to import, not both.")
        if any((summary, title, kind, entry_id, authors, year, tag, note, from_snapshot, corpus)):
            raise UsageError("An import takes only --section and --section-field: the file "
                             "describes its entries.")
        with _embedding_feedback("entry") as (on_encoder, _advance):
            imported, report = library.import_citations(
                citation_file[1], citation_file[0], section=section, section_field=section_field,
                build=not no_build, on_encoder=on_encoder, wait=not no_wait, on_wait=_waiting)
        _report_import(imported)
        added = [f["id"] for fields in imported.placement.sections.values() for f in fields]
        for entry_id in added:
            typer.echo(entry_id)
        if added:
            _report_freshness(library, report, first=added)
        return
    if section_field is not None:
        raise UsageError("--section-field is for --from-bibtex and --from-csl-json.")
    if not sources:
        raise UsageError("Name at least one arXiv id or link to add (or a file, with --from-bibtex).")
    names = [name.strip() for value in authors or () for name in value.split(",") if name.strip()]
    with _embedding_feedback("entry") as (on_encoder, _advance):
        results, report = library.add_many(
            sources, section=section, summary=summary, title=title, kind=kind, entry_id=entry_id,
            authors=names, year=year, tags=tag or (), note=note, snapshot=from_snapshot,
            corpus=corpus, api=None if (from_snapshot or corpus) else _web_sources(),
            build=not no_build, on_encoder=on_encoder, wait=not no_wait, on_wait=_waiting)
    for result in results:
        entry = result.entry
        if result.already:
            _err(f"Already in the catalogue as {entry.id!r} ({entry.section}); nothing changed.")
        else:
            new = "new section " if result.created_section else ""
            _err(f"Added {entry.id!r} to {new}{entry.section}: {entry.title}")
            if result.not_fetched:
                _err(f"Its text could not be fetched ({result.not_fetched}): searched by the "
                     "summary given until `paperscope ingest` gets it.")
        typer.echo(entry.id)
    if any(not result.already for result in results):
        _report_freshness(library, report, first=[r.entry.id for r in results])


def _edited(library: Library, result, done: str) -> None:
    """Say what an editing command did, what the index update did and where the index stands."""
    _err(done if result.changed else "Nothing to change.")
    if result.changed:
        _report_freshness(library, result.build, first=[result.entry.id])


def _edit_options(no_build: bool, no_wait: bool) -> dict:
    return {"build": not no_build, "wait": not no_wait, "on_wait": _waiting}


@_command()
def remove(
    entry_id: str = typer.Argument(..., metavar="ID", help="The entry to delete (id or arXiv id)."),
    no_build: NoBuild = False,
    no_wait: NoWait = False,
) -> None:
    """Delete an entry from catalogue.yaml (every other line kept) and update the index.

    Example: paperscope remove stanford-alpaca
    """
    library = _library()
    result = library.remove(entry_id, **_edit_options(no_build, no_wait))
    _edited(library, result, f"Removed {result.entry.id!r} from {result.entry.section}: {result.entry.title}")


@_command()
def move(
    entry_id: str = typer.Argument(..., metavar="ID", help="The entry to move (id or arXiv id)."),
    section: str = typer.Option(..., "--section", "-s", metavar="SECTION", help="Where it goes."),
    create: bool = typer.Option(False, "--create", help="Create the section if there is none."),
    no_build: NoBuild = False,
    no_wait: NoWait = False,
) -> None:
    """Move an entry, as written, to the end of another section.

    Examples:

      paperscope move qlora --section "Inference Optimization"

      paperscope move qlora --section "Quantization" --create
    """
    library = _library()
    result = library.move(entry_id, section, create=create, **_edit_options(no_build, no_wait))
    _edited(library, result, f"Moved {result.entry.id!r} to {result.entry.section}.")


@_command()
def rename(
    old: str = typer.Argument(..., metavar="OLD", help="The entry's id (or arXiv id)."),
    new: str = typer.Argument(..., metavar="NEW", help="Its new id: lower-case letters, digits, dashes."),
    no_build: NoBuild = False,
    no_wait: NoWait = False,
) -> None:
    """Give an entry a new id (its text is not embedded again).

    Example: paperscope rename stanford-alpaca alpaca
    """
    library = _library()
    result = library.rename(old, new, **_edit_options(no_build, no_wait))
    _edited(library, result, f"Renamed {old!r} to {result.entry.id!r}.")
    if result.changed:
        typer.echo(result.entry.id)


@_command()
def edit(
    entry_id: str = typer.Argument(..., metavar="ID", help="The entry to edit (id or arXiv id)."),
    no_build: NoBuild = False,
    no_wait: NoWait = False,
) -> None:
    """Edit one entry's YAML in $EDITOR (or $VISUAL); it is checked before it is written back.

    Saving invalid YAML shows the problem and, on a terminal, offers to edit again; an empty
    or unchanged file changes nothing.

    Example: EDITOR=nano paperscope edit lora
    """

    command = os.environ.get("EDITOR") or os.environ.get("VISUAL")
    if not command:
        raise UsageError("No editor: set $EDITOR (or $VISUAL).",
                         "For example: EDITOR=nano paperscope edit ID")
    library = _library()
    entry = library.entry(entry_id)
    handle, name = tempfile.mkstemp(prefix=f"paperscope-{entry.id}-", suffix=".yaml")
    os.close(handle)
    path = Path(name)

    def editor(text: str) -> str:
        path.write_text(text, encoding="utf-8")
        try:
            code = subprocess.call([*shlex.split(command), str(path)])
        except OSError as err:
            raise UsageError(f"Cannot run the editor {command!r}: {err.strerror}.") from None
        if code != 0:
            raise UsageError(f"The editor exited with status {code}; nothing was changed.")
        return read_text(path, "The edited entry")

    def again(error) -> bool:
        if not sys.stdin.isatty():
            return False
        _err(f"error: {error.message}")
        return typer.confirm("Edit it again?", default=True, err=True)

    try:
        result = library.edit(entry.id, editor, again, **_edit_options(no_build, no_wait))
    except PaperscopeError as err:
        if path.exists() and path.stat().st_size:
            err.hint = "\n".join(filter(None, [err.hint, f"Your text is kept in {path}."]))
        raise
    path.unlink(missing_ok=True)
    _edited(library, result, f"Updated {result.entry.id!r}.")


@_command("open")
def open_entry(
    entry_id: str = typer.Argument(..., metavar="ID", help="An entry id or arXiv id."),
) -> None:
    """Open an entry's link in the web browser (printing it when there is none, or when piped).

    Example: paperscope open lora
    """
    url = _library().entry(entry_id).url
    if sys.stdout.isatty() and webbrowser.open(url):
        _err(f"Opened {url}")
    else:
        typer.echo(url)


@_command()
def build(
    full: bool = typer.Option(False, "--full", help="Embed every entry again, reusing nothing."),
    model: Optional[str] = typer.Option(
        None, "--model", metavar="NAME", help="Embedding model: a sentence-transformers name or a local folder "
        "(default: $PAPERSCOPE_MODEL or the packaged all-MiniLM-L6-v2)."),
    no_wait: bool = typer.Option(False, "--no-wait", help="Fail at once if another build runs."),
    corpus: Optional[Path] = typer.Option(
        None, "--corpus", metavar="PATH", help="Index a BEIR corpus (corpus.jsonl[.gz] with _id, "
        "title, text, or a folder holding one) instead of the catalogue."),
    index_dir: Optional[Path] = typer.Option(
        None, "--index-dir", metavar="DIR", help="With --corpus: where to keep its index "
        "(default: a folder in $PAPERSCOPE_CACHE or ~/.cache/paperscope)."),
    scheme: PassageScheme = None,
) -> None:
    """Rebuild the index after editing catalogue.yaml, embedding only what changed.

    Examples:

      paperscope build

      paperscope build --corpus scifact --index-dir /tmp/scifact-index

    (the last: a BEIR dataset folder, such as BEIR's scifact.zip unzipped)
    """
    if corpus is not None:
        collection = _api().open_collection(beir=corpus, index_dir=index_dir)
        _build_collection(collection, "document", full=full, model=model, scheme=scheme,
                          no_wait=no_wait)
        _err(f"Index of {collection.source} is in {collection.store.directory}")
        return
    if index_dir is not None or scheme is not None:
        raise UsageError("--index-dir and --passages go with --corpus; the catalogue's index is its "
                         "index/ folder, in multi-scale passages.")
    _build(_library(), full=full, model=model, no_wait=no_wait)


def _build_collection(collection, noun: str, *, full: bool = False, model: Optional[str] = None,
                      search: str = "auto", scheme: Optional[str] = None, no_wait: bool = False,
                      embedder=None) -> None:
    """Build a corpus's or BEIR file's index with a progress bar, and report it."""
    with _embedding_feedback(noun) as (on_encoder, advance):
        report = collection.build(full=full, model=model, search=search, scheme=scheme,
                                  progress=advance, on_encoder=on_encoder, wait=not no_wait,
                                  on_wait=_waiting, embedder=embedder)
    _report_build(report, noun)


@contextlib.contextmanager
def _embedding_feedback(noun: str):
    """(on_encoder, progress) callbacks: a line when an encoder starts, then a bar."""
    bar = _Progress("Embedding")

    def on_encoder(kind: str, count: int, reason: str) -> None:
        if reason:
            _err(f"Embedding everything again: {reason}.")
        _err(f"Embedding {counted(count, noun)} ({kind} encoder)…")
        bar.start(count, plural(noun))

    try:
        yield on_encoder, bar.advance
    except KeyboardInterrupt:
        bar.stop()
        _err(f"interrupted: the {plural(noun)} embedded in finished chunks are kept (a chunk is "
             "committed about every minute), the index is as it was; run the same command again "
             "to go on from them.")
        raise typer.Exit(130) from None
    finally:
        bar.stop()


def _build(library: Library, *, full: bool, model: Optional[str], no_wait: bool) -> None:
    with _embedding_feedback("entry") as (on_encoder, advance):
        report, _waiting_entries = library.build(full=full, model=model, progress=advance,
                                                 on_encoder=on_encoder, wait=not no_wait,
                                                 on_wait=_waiting)
    _report_freshness(library, report, summaries=True)


def _report_freshness(library: Library, report=None, *, first: Iterable[str] = (),
                      summaries: bool = False) -> None:
    """Say what a build did (`report`) and where the index stands now, in the words of
    `Library.freshness`: the one definition of "up to date" every command reports. Entries
    in `first` are named first; `summaries`: count the entries that need a summary too."""
    fresh = library.freshness()
    if report is not None and (report.written or fresh.up_to_date):
        _report_build(report)
    elif report is not None:
        _err(f"Nothing to embed: the index holds the catalogue's {counted(report.total, 'entry')}, "
             f"but it is {fresh.state}, not up to date.")
    if fresh.waiting:
        _err(fresh.waiting_notice(first=list(first)))
    if fresh.index == "out of date":
        _err("The index is out of date with the catalogue: `paperscope build` updates it "
             "(and `paperscope search` does on the way).")
    elif fresh.index == "none":
        _err("There is no index yet: `paperscope build` makes it (and `paperscope search` does "
             "on the way).")
    if summaries and fresh.needs_summary:
        _err(f"{counted(len(fresh.needs_summary), 'entry')} "
             f"{'needs' if len(fresh.needs_summary) == 1 else 'need'} a summary and "
             f"{'is' if len(fresh.needs_summary) == 1 else 'are'} searched by title until then "
             "(`paperscope status` names them).")


def _report_build(report, noun: str = "entry") -> None:
    if report.written:
        resumed = f", {report.resumed:,} from earlier chunks" if report.resumed else ""
        _err(f"Index built: {len(report.embedded):,} embedded, {report.reused:,} reused{resumed}, "
             f"{len(report.removed)} removed; {counted(report.total, noun)} with {report.model}"
             + (f" on {report.device}" if report.embedded else "")
             + (f"; {report.search} search." if report.search != "exact" else "."))
    else:
        _err(f"Index already up to date ({counted(report.total, noun)}).")


def _filters(section, kind, year_from, year_to, tag):
    return _api().Filters(sections=tuple(section or ()), kinds=tuple(kind or ()),
                   year_from=year_from, year_to=year_to, tags=tuple(tag or ()))


@_command()
def search(
    query: str = typer.Argument(..., help="A question or keywords, in quotes.", show_default=False),
    k: TopK = 10,
    mode: Mode = "hybrid",
    section: Sections = None,
    kind: Kinds = None,
    year_from: YearFrom = None,
    year_to: YearTo = None,
    tag: Tags = None,
    fmt: Format = "table",
    as_json: AsJson = False,
    corpus: CorpusName = None,
    index_dir: IndexDir = None,
    min_score: MinScore = 0.0,
) -> None:
    """Find the entries that best answer a question.

    The score, from 0 to 1, is about the chance that a hit is relevant, and means the same
    in every query: calibrated on judged questions from the hit's similarity in meaning, the
    share of the query's words it holds and its place among the candidates. Under 0.3 a hit
    is a weak match ("weak" in JSON); when even the best is, a note says so. The ranking
    itself is the fused one, so a lower hit can score above a higher one. An entry named
    exactly by the query comes first with 1.000.

    Examples:

      paperscope search "parameter-efficient finetuning" -k 5

      paperscope search "quantization" --section "Inference Optimization" --json

      paperscope search "speculative decoding" --corpus arxiv-cl --year-from 2025

      paperscope search "adapters" --tag peft

      paperscope search "quantization" --min-score 0.5
    """
    fmt = _output_format(fmt, as_json)
    filters = _filters(section, kind, year_from, year_to, tag)
    if corpus or index_dir:
        collection = _api().open_collection(corpus=corpus, index_dir=index_dir)
        _show_hits(collection.search(query, k=k, mode=mode, filters=filters, min_score=min_score),
                   fmt, query, None)
        return
    library = _library()
    _show_hits(library.search(query, k=k, mode=mode, filters=filters, min_score=min_score), fmt,
               query, library)


@_command()
def related(
    entry_id: str = typer.Argument(..., metavar="ID", help="An entry id (see `paperscope list`) or arXiv id."),
    k: TopK = 5,
    mode: Mode = "hybrid",
    section: Sections = None,
    kind: Kinds = None,
    year_from: YearFrom = None,
    year_to: YearTo = None,
    tag: Tags = None,
    fmt: Format = "table",
    as_json: AsJson = False,
    corpus: CorpusName = None,
    index_dir: IndexDir = None,
    min_score: MinScore = 0.0,
) -> None:
    """Find the entries closest to a given one, with the terms they share.

    The score, from 0 to 1, is about the chance that a hit is judged related (calibrated on
    judged related entries); under 0.3 it is a weak match.

    Examples:

      paperscope related lora -k 3

      paperscope related 2508.08192 --corpus arxiv-cl
    """
    fmt = _output_format(fmt, as_json)
    filters = _filters(section, kind, year_from, year_to, tag)
    if corpus or index_dir:
        collection = _api().open_collection(corpus=corpus, index_dir=index_dir)
        _show_hits(collection.related(entry_id, k=k, mode=mode, filters=filters, min_score=min_score),
                   fmt, "", None)
        return
    library = _library()
    _show_hits(library.related(entry_id, k=k, mode=mode, filters=filters, min_score=min_score), fmt,
               "", library)


def _show_hits(outcome, fmt: str, query: str, library: Optional[Library]) -> None:
    for notice in outcome.notices:
        _err(f"note: {notice}")
    if fmt == "bibtex":
        if library is None:
            raise UsageError("BibTeX needs catalogue entries; a corpus index has none.")
        _echo_bibtex(library, [hit.document.id for hit in outcome.hits])
    elif fmt in ("json", "jsonl"):
        _print_items([render.hit_json(hit) for hit in outcome.hits], fmt)
    elif not outcome.hits:
        _err("No matching entries.")
    elif (console := _console()).is_terminal:
        from .lexical import DISPLAY_STOPWORDS, Tokenizer

        console.print(render.hits_for_terminal(outcome.hits, Tokenizer(DISPLAY_STOPWORDS), query,
                                               console.width), soft_wrap=True)
    else:
        _echo(render.hits_as_text(outcome.hits))


def _echo_bibtex(library: Library, ids: list[str]) -> None:
    _echo(library.cite(ids), nl=False)


@_command()
def cite(
    entry_ids: Optional[list[str]] = typer.Argument(None, metavar="[ID]...",
                                                    help="Entry ids or arXiv ids (default: every entry)."),
) -> None:
    """Print BibTeX for entries, with stable citation keys.

    Examples:

      paperscope cite lora qlora >> references.bib

      paperscope cite > reading-list.bib
    """
    _echo_bibtex(_library(), entry_ids or [])


@_command("list")
def list_entries(
    section: Optional[str] = typer.Option(None, "--section", "-s", metavar="SECTION", help="Only this section."),
    tag: Tags = None,
    fmt: Format = "table",
    as_json: AsJson = False,
) -> None:
    """List the catalogue's entries, section by section.

    Examples:

      paperscope list --section "Training Recipe"

      paperscope list --tag to-read
    """
    fmt = _output_format(fmt, as_json)
    library = _library()
    entries = library.entries(section=section, tags=tag or ())
    records = library.records()
    if fmt in ("json", "jsonl"):
        _print_items((_api().entry_json(e, records.get(e.record_key or "")) for e in entries), fmt)
        return
    if fmt == "bibtex":
        _echo_bibtex(library, [e.id for e in entries])
        return
    console = _console()
    if entries:
        typer.echo(entries_as_text(entries, console.width if console.is_terminal else None))
    elif not library.catalogue.entries:
        _err("The catalogue has no entries yet. Add one with: paperscope add ARXIV_ID_OR_URL")
    else:
        _err("No entry matches.")


@_command()
def show(
    entry_id: str = typer.Argument(..., metavar="ID", help="An entry id or arXiv id."),
    all_authors: bool = typer.Option(False, "--all-authors", help="Name every author "
                                     "(default: the first three of a longer list, then how many others)."),
    corpus: Optional[str] = typer.Option(None, "--corpus", "-c", metavar="NAME",
                                         help="Show a paper of this corpus (by its arXiv id) "
                                         "instead of a catalogue entry."),
    fmt: Format = "table",
    as_json: AsJson = False,
) -> None:
    """Show one entry: authors, year, link and abstract or summary, wrapped to the terminal.

    Examples:

      paperscope show qlora

      paperscope show llama --all-authors

      paperscope show lora --format bibtex

      paperscope show 2406.14088 --corpus arxiv-cl
    """
    if corpus:
        fmt = _data_format(fmt, as_json)
        paper = _api().Corpus.open(corpus).paper_json(entry_id)
        if fmt != "table":
            _print_object(paper, fmt)
        else:
            typer.echo(entry_as_text(paper, _console().width, all_authors))
        return
    fmt = _output_format(fmt, as_json)
    library = _library()
    entry = library.entry(entry_id)
    if fmt == "bibtex":
        _echo_bibtex(library, [entry.id])
        return
    record = library.records().get(entry.record_key) if entry.record_key else None
    data = _api().entry_json(entry, record)
    if fmt != "table":
        _print_object(data, fmt)
        return
    typer.echo(entry_as_text(data, _console().width, all_authors))
    if entry.record_key and not data["abstract"] and not entry.summary:
        _err("No text yet: fetch its page's text with `paperscope ingest`." if entry.record_key.startswith("url:")
             else "No abstract yet: fetch it with `paperscope ingest`.")
    elif not entry.record_key and not entry.summary:
        _err(f"No summary yet: write 3 to 6 sentences in its `summary` (paperscope edit {entry.id}); "
             "search reads its title until then.")


@_command()
def status(
    check: bool = typer.Option(False, "--check", help="Exit 1 unless the index is up to date: "
                               "nothing to build, no abstract to fetch, not damaged (for CI)."),
    verify: bool = typer.Option(False, "--verify", help="Also hash every byte of the index files "
                                "(the everyday check reads sizes and each file's ends)."),
    fmt: DataFormat = "table",
    as_json: AsJson = False,
) -> None:
    """Say whether the index matches the catalogue, and what it holds.

    Example: paperscope status --check --verify
    """
    fmt = _data_format(fmt, as_json)
    info = _library().status(verify=verify)
    if fmt != "table":
        _print_object(info, fmt)
    else:
        state = info["state"]
        _echo(f"Library:   {info['library']}")
        _echo(f"Catalogue: {counted(info['entries'], 'entry')} ({info['arxiv_entries']} on arXiv)")
        if state == "damaged":
            _echo(f"Index:     DAMAGED: {info['problem']}")
        elif state == "no index":
            _echo("Index:     none yet.")
        else:
            shown = "OUT OF DATE" if state == "out of date" else \
                f"waiting for {counted(len(info['missing_text']), 'abstract')}" \
                if state == "waiting for abstracts" else state
            _echo(f"Index:     {counted(info['indexed'], 'entry')}, {shown}, "
                  f"{info['index_bytes'] / 1024:.0f} KiB")
            _echo(f"Model:     {info['model']}")
            _echo(f"Built:     {info['built_at']}")
        width = _console().width
        labels = {"new": "new", "stale": "stale", "metadata_changed": "metadata changed",
                  "removed": "removed", "missing_text": "waiting for an abstract",
                  "needs_summary": "needs a summary"}
        for key, label in labels.items():
            if info[key] and not (state == "damaged" and key == "new"):
                ids = info[key][:12] + ([f"and {len(info[key]) - 12} more (see --json)"]
                                        if len(info[key]) > 12 else [])
                _echo(textwrap.fill(", ".join(ids), width - 1, initial_indent=f"  {label}: ",
                                    subsequent_indent="    ", break_on_hyphens=False))
        if info["rebuild_reason"]:
            _echo(f"  every entry is embedded again at the next build: {info['rebuild_reason']}")
        if state == "damaged":
            _echo("Repair it with `paperscope build --full`.")
        elif info["missing_text"]:
            _echo("Fetch the abstracts with `paperscope ingest`, which rebuilds the index too\n"
                  "(offline: `paperscope ingest --from-snapshot FILE`).")
        elif state == "no index":
            _echo("Build it with `paperscope build` (or just search: the first search builds it).")
        elif state == "out of date" and info["rebuild_reason"]:
            _echo("Run `paperscope build`.")
        elif state == "out of date":
            _echo("Run `paperscope build` (or just search: a search brings it up to date).")
    if check and not info["up_to_date"]:
        _err(f"status --check: the index is {info['state']}, not up to date.")
        raise typer.Exit(1)


@_command("eval")
def evaluate(
    dataset: Path = typer.Argument(..., help="A folder in BEIR layout: queries.jsonl, qrels/SPLIT.tsv "
                                   "and, for a corpus, corpus.jsonl[.gz]. Without a corpus the "
                                   "catalogue's index is evaluated."),
    split: str = typer.Option("test", "--split", metavar="NAME", help="Which qrels/SPLIT.tsv to use."),
    mode: Optional[list[str]] = typer.Option(None, "--mode", "-m", metavar="MODE", help="Modes to evaluate "
                                             "(repeatable; default: all three)."),
    index_dir: Optional[Path] = typer.Option(None, "--index-dir", metavar="DIR",
                                             help="Where the corpus index is kept (default: the cache)."),
    related: bool = typer.Option(False, "--related", help="Evaluate `related` instead of `search`: "
                                 "each query id in the qrels is an entry id, judged against the "
                                 "entries related to it (queries.jsonl is not needed)."),
    fmt: DataFormat = "table",
    as_json: AsJson = False,
) -> None:
    """Measure retrieval quality: nDCG@10, Recall@100, MRR@10 and latency per mode.

    Examples:

      paperscope eval scifact --split train   (BEIR's scifact.zip, unzipped)

      paperscope eval evaluation/catalogue

      paperscope eval evaluation/related --related
    """
    fmt = _data_format(fmt, as_json)
    queries = {} if related else read_queries(dataset)
    qrels = read_qrels(dataset, split)
    if has_corpus(dataset):
        collection = _api().open_collection(beir=dataset, index_dir=index_dir)
        _build_collection(collection, "document")
    else:
        library = _library()
        collection = library.collection
        for notice in library.index()[1]:
            _err(f"note: {notice}")
    index = collection.open()
    bar = _Progress("Evaluating")
    bar.start(len(mode or _api().MODES) * (len(qrels) if related else sum(1 for q in qrels if q in queries)), "queries")
    try:
        scores = _api().run_evaluation(collection, queries, qrels, mode or None, progress=bar.advance, related=related)
    finally:
        bar.stop()
    if fmt != "table":
        _print_object({"dataset": str(dataset), "split": split, "documents": index.count,
                       "model": index.model_name, "modes": [s.to_json() for s in scores]}, fmt)
        return
    _echo(f"{dataset} ({split}): {counted(scores[0].queries, 'query')}, {counted(index.count, 'document')}, "
               f"{index.model_name}")
    _echo(f"{'mode':<8} {'nDCG@10':>8} {'R@100':>7} {'MRR@10':>7} {'ms/query':>9} {'p95':>7}")
    for s in scores:
        _echo(f"{s.mode:<8} {s.ndcg_at_10:>8.4f} {s.recall_at_100:>7.4f} {s.mrr_at_10:>7.4f} "
                   f"{s.latency_ms_median:>9.1f} {s.latency_ms_p95:>7.1f}")


# -- corpora and discovery ----------------------------------------------------------

corpus_app = typer.Typer(
    name="corpus", no_args_is_help=True,
    help="Import slices of arXiv (its metadata snapshot, or its OAI-PMH interface) as named "
         "corpora, keep them up to date, search them and discover papers for the catalogue."
         "\n\nExample:\n\n"
         "\b\npaperscope corpus import arxiv-metadata-oai-snapshot.json \\\n"
         "    --category cs.CL --since 2025-01 --name arxiv-cl")
app.add_typer(corpus_app)


def _corpus_command(*args, **kwargs):
    def register(function):
        return corpus_app.command(*args, **kwargs)(_errors_to_exit_codes(function))

    return register




@_corpus_command("import")
def corpus_import(
    snapshot: Optional[Path] = typer.Argument(None, metavar="[SNAPSHOT]", help="arXiv's metadata "
                                              "snapshot (arxiv-metadata-oai-snapshot.json, or a slice "
                                              "of it; .gz works).", dir_okay=False, show_default=False),
    name: str = typer.Option(..., "--name", "-n", metavar="NAME", help="The corpus's name."),
    from_arxiv: bool = typer.Option(False, "--from-arxiv", help="No snapshot: harvest the papers "
                                    "from arXiv's OAI-PMH interface (needs --since; later "
                                    "`paperscope corpus update NAME` keeps it up)."),
    category: Optional[list[str]] = typer.Option(
        None, "--category", metavar="CAT", help="Only papers in this category (repeatable; "
        "cs.CL, or a prefix such as cs or astro-ph)."),
    since: Optional[str] = typer.Option(None, "--since", metavar="DATE",
                                        help="Only papers first posted on or after YYYY[-MM[-DD]]."),
    until: Optional[str] = typer.Option(None, "--until", metavar="DATE",
                                        help="Only papers first posted up to YYYY[-MM[-DD]]."),
    limit: Optional[int] = typer.Option(None, "--limit", metavar="N", min=1,
                                        help="Stop after N papers."),
    no_build: bool = typer.Option(False, "--no-build", help="Only import; embed later with "
                                  "`paperscope corpus build NAME`."),
    replace: bool = typer.Option(False, "--replace", help="Replace a corpus of this name imported "
                                 "before (the vectors of papers that stay are reused)."),
    search: SearchMethod = "auto",
    scheme: PassageScheme = None,
) -> None:
    """Import papers from an arXiv metadata snapshot into a named corpus, then index it.

    The snapshot is streamed, so memory stays small whatever its size. Embedding is the long
    part: whole abstracts (`--passages whole`, the default above 20,000 papers) take about 50
    minutes per 100,000 on a 2-core laptop CPU (seconds on a GPU); smaller corpora default to
    multi-scale passages, about 13 vectors a paper and several times slower, for a little more
    quality, unless they would take more than 10 minutes here (then whole, as a line says). It
    is committed in chunks of about 45 seconds of work, so Ctrl-C and `paperscope corpus build
    NAME` later resume where it stopped.

    Examples:

    \b
    paperscope corpus import arxiv-metadata-oai-snapshot.json \\
        --category cs.CL --since 2025-01 --name arxiv-cl

    \b
    paperscope corpus import snapshot.jsonl.gz --category cs --limit 20000 \\
        --name cs-sample --no-build

    \b
    paperscope corpus import --from-arxiv --category cs.CL \\
        --since 2026-11-01 --name cl-new
    """
    if scheme is not None:
        _api().check_scheme(scheme)  # before the import, not after it
    selection = _api().SnapshotFilter(tuple(category or ()), since, until)
    corpus = _api().Corpus(name)
    if from_arxiv or snapshot is None:
        if snapshot is not None or not from_arxiv:
            raise UsageError("Give a SNAPSHOT file or --from-arxiv (one of them).")
        if limit is not None:
            raise UsageError("--limit goes with a SNAPSHOT file; --from-arxiv takes every paper "
                             "of --category since --since.")

        def on_retry(reason: str, delay: float) -> None:
            _err(f"arXiv: {reason}; trying again in {delay:.0f} s")

        _err(f"Harvesting arXiv's papers since {since} (one request every 3 s)…")
        harvest = corpus.import_arxiv(selection, replace=replace, on_retry=on_retry,
                                      on_batch=lambda r: _err(f"… {r.added:,} papers so far"))
        _err(f"Imported {counted(harvest.added, 'paper')} into corpus {name!r} from "
             f"{counted(harvest.harvested, 'harvested record')}.")
    else:
        _import_snapshot(corpus, snapshot, selection, limit=limit, replace=replace)
    if no_build:
        _err(f"Index it with: paperscope corpus build {name}")
        return
    _build_collection(corpus.collection, "paper", search=search, scheme=scheme)
    _err(f'Search it with: paperscope search "QUESTION" --corpus {name}')


def _import_snapshot(corpus, snapshot: Path, selection, *, limit: Optional[int], replace: bool) -> None:
    bar = _Progress("Reading snapshot")
    bar.start(file_size(snapshot), "bytes")
    try:
        report = corpus.import_snapshot(snapshot, selection, limit=limit, progress=bar.advance,
                                        replace=replace)
    finally:
        bar.stop()
    skipped = sum(report.skipped.values())
    _err(f"Imported {counted(report.kept, 'paper')} into corpus {corpus.name!r} from "
         f"{counted(report.read, 'record')}"
         + (f"; skipped {skipped:,} unusable ({_reasons(report.skipped)})" if skipped else "")
         + (f"; {report.duplicates:,} repeated ids ignored" if report.duplicates else "") + ".")


def _reasons(skipped: dict[str, int]) -> str:
    return ", ".join(f"{count:,} {reason}" for reason, count in sorted(skipped.items()))


@_corpus_command("build")
def corpus_build(
    name: str = typer.Argument(..., metavar="NAME", help="The corpus (see `paperscope corpus list`)."),
    full: bool = typer.Option(False, "--full", help="Embed every paper again, reusing nothing."),
    model: Optional[str] = typer.Option(None, "--model", metavar="NAME", help="Embedding model "
                                        "(default: $PAPERSCOPE_MODEL or the packaged one)."),
    search: SearchMethod = "auto",
    scheme: PassageScheme = None,
    no_wait: bool = typer.Option(False, "--no-wait", help="Fail at once if another build runs."),
    ray: bool = typer.Option(False, "--ray", help="Embed on a Ray cluster: $RAY_ADDRESS, else a "
                             "local one started for the build (needs paperscope[ray])."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", metavar="HOST:PORT",
                                              help="The Ray cluster to embed on (implies --ray)."),
) -> None:
    """Index a corpus, or finish an interrupted build without embedding again what was done.

    Chunk files made elsewhere (benchmarks/gpu_corpus.py on a GPU machine, other processes) and
    copied into the corpus's index/chunks/ folder are used when their model, passage scheme and
    texts match. With --ray the embedding runs on a Ray cluster (Ray Data actors, one a GPU),
    each finished range committed at once, so an interrupted build resumes as any other; keep
    Ray on a private network: it has no authentication of its own.

    Examples:

    \b
    paperscope corpus build arxiv-cl
    RAY_ADDRESS=10.0.0.5:6379 paperscope corpus build arxiv-cl --ray
    """
    embedder = _api().ray_embedder(ray_address, on_note=_err) if ray or ray_address else None
    _build_collection(_api().Corpus.open(name).collection, "paper", full=full, model=model, search=search,
                      scheme=scheme, no_wait=no_wait, embedder=embedder)
    _err(f'Search it with: paperscope search "QUESTION" --corpus {name}')


@_corpus_command("update")
def corpus_update(
    name: str = typer.Argument(..., metavar="NAME", help="The corpus (see `paperscope corpus list`)."),
    since: Optional[str] = typer.Option(None, "--since", metavar="DAY", help="Harvest from this "
                                        "day (YYYY-MM-DD) instead of the last harvest's."),
    search: SearchMethod = "auto",
    no_wait: bool = typer.Option(False, "--no-wait", help="Fail at once if another build runs."),
) -> None:
    """Bring a corpus up to date with arXiv: harvest what was added, changed or deleted since
    its last harvest (else since its newest paper), keep what matches its categories and dates,
    and index it, embedding only new or changed papers.

    Harvesting goes through arXiv's OAI-PMH interface (https://oaipmh.arxiv.org/oai, or
    $PAPERSCOPE_ARXIV_OAI), one request every 3 seconds; arXiv refreshes it daily, Sunday to
    Thursday. Interrupted, the next run asks the same days again and finishes; run twice, it
    changes nothing.

    Example: paperscope corpus update arxiv-cl
    """
    corpus = _api().Corpus.open(name)

    def on_retry(reason: str, delay: float) -> None:
        _err(f"arXiv: {reason}; trying again in {delay:.0f} s")

    with _embedding_feedback("paper") as (on_encoder, advance):
        report = corpus.update(since=since, on_retry=on_retry, search=search, progress=advance,
                               on_encoder=on_encoder, wait=not no_wait, on_wait=_waiting)
    _err(f"Harvested {counted(report.harvested, 'record')} from {report.since}: "
         f"{report.added:,} new, {report.changed:,} changed, {report.deleted:,} removed, "
         f"{report.unchanged:,} unchanged, {report.outside:,} outside the corpus's selection.")
    _report_build(report.build, "paper")


@_corpus_command("list")
def corpus_list(
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """List the corpora, with their size, selection and index.

    Example: paperscope corpus list
    """
    rows = [_api().Corpus(name).summary() for name in _api().list_corpora()]
    if as_json:
        _print_json(rows)
        return
    if not rows:
        _err(f"No corpora yet (they live in {_api().corpora_dir()}). Create one with: "
             "paperscope corpus import SNAPSHOT --name NAME")
        return
    for row in rows:
        selection = row["filter"] or {}
        what = ", ".join(selection.get("categories") or ["all categories"])
        if selection.get("since") or selection.get("until"):
            what += f", {selection.get('since') or '…'} to {selection.get('until') or '…'}"
        indexed = (f"{row['indexed']:,} indexed ({row['search']} search)" if row["indexed"] is not None
                   else f"index unusable ({row['problem']})" if row["problem"]
                   else f"not indexed: paperscope corpus build {row['name']}")
        _echo(f"{row['name']}: {counted(row['documents'], 'paper')} ({what}); {indexed}")


@_corpus_command("remove")
def corpus_remove(
    name: str = typer.Argument(..., metavar="NAME", help="The corpus to delete."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask (needed when stdin is not a terminal)."),
) -> None:
    """Delete a corpus and its index (the snapshot file is not touched).

    Asks first on a terminal: its embeddings may have taken hours. Example:

      paperscope corpus remove arxiv-cl
    """
    corpus = _api().Corpus.open(name)
    if not yes:
        summary = corpus.summary()
        what = f"corpus {name!r} ({counted(summary['documents'] or 0, 'paper')}" + (
            f", {summary['indexed']:,} embedded" if summary["indexed"] else "") + ")"
        if not sys.stdin.isatty():
            raise UsageError(f"Removing the {what} cannot be undone: add --yes to confirm.")
        if not typer.confirm(f"Delete the {what}? This cannot be undone.", default=False, err=True):
            _err("Nothing was removed.")
            return
    corpus.remove()
    _err(f"Removed corpus {name!r}.")


def _feed_id(corpus: str, entries: Sequence[str], sections: Sequence[str]) -> str:
    """The Atom feed's id: the same for the same corpus and choice of entries, whatever the
    day it starts from (a feed reader takes a new id for a new feed)."""
    chosen = "".join(f":entry={e}" for e in sorted(entries)) + "".join(f":section={s}" for s in sorted(sections))
    return f"urn:paperscope:discover:{urllib.parse.quote(corpus + chosen, safe=':=')}"


@_command()
def discover(
    corpus: str = typer.Option(..., "--corpus", "-c", metavar="NAME", help="The corpus to look in."),
    entry: Optional[list[str]] = typer.Option(None, "--entry", "-e", metavar="ID",
                                              help="Papers close to this entry (repeatable)."),
    section: Sections = None,
    since: Optional[str] = typer.Option(None, "--since", metavar="DATE",
                                        help="Only papers first posted on or after YYYY[-MM[-DD]] "
                                        "(what is new near the list)."),
    new: bool = typer.Option(False, "--new",
                             help="Only papers first posted since the corpus's last update "
                             "began (what `corpus update` brought)."),
    k: TopK = 20,
    fmt: str = typer.Option("table", "--format", "-f", metavar="FORMAT",
                            help="table (for people), json, jsonl (one object a line), "
                            "markdown, or atom (a feed for a feed reader)."),
    as_json: AsJson = False,
) -> None:
    """Find papers in a corpus that belong near catalogue entries but are not in the catalogue.

    Without --entry or --section, the whole catalogue is the starting point. Each paper comes
    with the entries it is closest to and the words they share; read one with
    `paperscope show ARXIV_ID --corpus NAME` and add it with
    `paperscope add ARXIV_ID --corpus NAME` (no network needed for either).

    Examples:

      paperscope discover --corpus arxiv-cl --entry lora -k 5

      paperscope discover --corpus arxiv-cl --section "Training Recipe"

      paperscope discover -c arxiv-cl --since 2026-11-25 --format atom > new.xml

      paperscope discover -c arxiv-cl --new -k 10
    """
    fmt = _data_format(fmt, as_json, more=("markdown", "atom"))
    if since is not None:
        _api().check_day(since)
    chosen = _api().Corpus.open(corpus)
    since = _api().discovery_since(chosen, since, new)
    library = _library()
    entries = [library.entry(key) for key in entry or ()]
    if section:
        entries += library.entries(sections=section)
    catalogue_index, notices = library.index()
    for notice in notices:
        _err(f"note: {notice}")
    corpus_index = chosen.collection.open()
    found = _api().find_papers(catalogue_index, corpus_index,
                               entries or library.catalogue.entries, known=library.catalogue.entries,
                               k=k, since=since)
    if fmt == "atom":
        _echo(render.atom_feed(
            [{"id": d.document.meta.get("url") or f"urn:paperscope:{corpus}:{d.document.id}",
              "title": d.document.title, "url": d.document.meta.get("url"),
              "date": d.document.meta.get("date"), "authors": d.document.meta.get("authors"),
              "summary": d.document.text + "\n\nClose to: " + "; ".join(
                  f"{c.entry_id} ({c.score:.2f}{': ' + ', '.join(c.shared_terms) if c.shared_terms else ''})"
                  for c in d.closest)} for d in found],
            title=f"paperscope: papers of {corpus} near the reading list"
                  + (f", since {since}" if since else ""),
            feed_id=_feed_id(corpus, entry or (), section or ())), nl=False)
        return
    if fmt == "markdown":
        _echo(render.discoveries_as_markdown(
            [d.to_json() for d in found], title=f"Papers of {corpus} near the reading list"
            + (f", since {since}" if since else "")), nl=False)
        return
    if fmt in ("json", "jsonl"):
        _print_items([d.to_json() for d in found], fmt)
        return
    if not found:
        newest = corpus_index.newest_year() if since else None  # read only when it is needed
        if since and newest is not None and newest < int(since[:4]):
            _err(f"Nothing found: the newest papers of {corpus} are from {newest}. Bring it up to "
                 f"date with: paperscope corpus update {corpus}")
        else:
            _err("Nothing found.")
    console = _console()
    _echo(render.discoveries_as_text([d.to_json() for d in found],
                                     console.width if console.is_terminal else None))


# -- the reading list as Markdown -------------------------------------------------------

export_app = typer.Typer(help="Write the catalogue in another format.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("markdown")
@_errors_to_exit_codes
def export_markdown(
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE", dir_okay=False,
                                          help="Write to FILE (replaced whole) instead of stdout."),
    years: bool = typer.Option(False, "--years", help="Add each entry's year, as ` (2021)`."),
    tags: bool = typer.Option(False, "--tags", help="Add each entry's tags, as `code` words."),
    title: Optional[str] = typer.Option(None, "--title", metavar="TEXT",
                                        help="Start with a `# TEXT` heading."),
) -> None:
    """Write the reading list as Markdown: a heading per section, numbered links.

    Examples:

      paperscope export markdown --title "Reading list" --output README.md

      paperscope export markdown --years --tags | less
    """
    from .markdown import catalogue_to_markdown

    library = _library()
    text = catalogue_to_markdown(library.catalogue, years=years, tags=tags, title=title,
                                 records=library.records() if years else None)
    _print_or_write(text, output, f"{counted(len(library.catalogue.entries), 'entry')} in "
                                  f"{counted(len(library.catalogue.sections), 'section')}")


@export_app.command("csl-json")
@_errors_to_exit_codes
def export_csl_json(
    entry_ids: Optional[list[str]] = typer.Argument(None, metavar="[ID...]",
                                                    help="Entries to export (default: all)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE", dir_okay=False,
                                          help="Write to FILE (replaced whole) instead of stdout."),
) -> None:
    """Write the catalogue as CSL JSON, which Zotero and citation processors import.

    Examples:

      paperscope export csl-json --output reading-list.json

      paperscope export csl-json lora qlora
    """
    library = _library()
    text = library.csl_json(entry_ids or [])
    _print_or_write(text, output, counted(len(entry_ids or library.catalogue.entries), 'entry'))


def _print_or_write(text: str, output: Optional[Path], what: str) -> None:
    """Print an export, or replace `output` with it whole and say so (`what` was written)."""
    if output is None:
        _echo(text, nl=False)
        return
    if not output.parent.is_dir():
        raise UsageError(f"There is no folder {output.parent} to write {output.name} in.")
    atomic_write_text(output, text)
    _err(f"Wrote {what} to {output}.")


@_command()
def init(
    from_markdown: Optional[Path] = typer.Option(
        None, "--from-markdown", metavar="FILE", dir_okay=False,
        help="A Markdown reading list: `1. [Title](url)` items under `## Section` headings."),
    from_bibtex: Optional[Path] = _FROM_BIBTEX,
    from_csl_json: Optional[Path] = _FROM_CSL_JSON,
    section: Optional[str] = typer.Option(None, "--section", "-s", metavar="SECTION",
                                          help="The section of imported references "
                                          "(default: Reading list)."),
    section_field: Optional[str] = _SECTION_FIELD,
    force: bool = typer.Option(False, "--force", help="Replace an existing catalogue.yaml."),
) -> None:
    """Create catalogue.yaml (here, or in --library DIR) from a Markdown reading list,
    a BibTeX file or a CSL JSON export (Zotero).

    arXiv links become arXiv entries; every other link is marked `needs_summary` and is
    searched by its title until you write its summary. A reference becomes an arXiv entry
    (eprint, arXiv links), else a DOI entry, else a link; its abstract is the summary of a
    link.

    Examples:

      paperscope init --from-markdown README.md

      paperscope init --from-bibtex refs.bib --section-field keywords

      paperscope init --from-csl-json zotero.json --section "To read"
    """
    from .markdown import write_catalogue_from_markdown

    folder = _State.library_path or Path.cwd()
    citation_file = _citation_file(from_bibtex, from_csl_json)
    if (from_markdown is None) == (citation_file is None):
        raise UsageError("Give one of --from-markdown, --from-bibtex or --from-csl-json.")
    if citation_file is not None:
        _init_from_citations(folder, *citation_file, force=force, section=section,
                             section_field=section_field)
        return
    if section is not None or section_field is not None:
        raise UsageError("--section and --section-field are for --from-bibtex and --from-csl-json "
                         "(a Markdown list takes its sections from its headings).")
    assert from_markdown is not None
    target, made = write_catalogue_from_markdown(from_markdown, folder, force=force)
    catalogue = made.catalogue
    arxiv = sum(1 for entry in catalogue.entries if entry.arxiv_id)
    _err(f"Wrote {target}: {counted(len(catalogue.entries), 'entry')} in "
         f"{counted(len(catalogue.sections), 'section')}, "
         f"{arxiv} with an arXiv id.")
    for reason in made.skipped:
        _err(f"  left out {reason}")
    if made.needs_summary:
        need = "needs" if len(made.needs_summary) == 1 else "need"
        _err(f"{counted(len(made.needs_summary), 'entry')} {need} a summary (search reads titles until "
             f"then): {', '.join(entry.id for entry in made.needs_summary)}")
    prefix = f"paperscope --library {shlex.quote(str(folder))}" if _State.library_path else "paperscope"
    _err(f"Next:\n  1. {prefix} ingest   fetches the arXiv abstracts, then builds the index\n"
         f"     (offline: {prefix} ingest --from-snapshot FILE)")
    if made.needs_summary:
        _err(f"  2. write a summary for each entry marked `needs_summary: true`, then: {prefix} build")
    _err(f'Or search at once: {prefix} search "QUESTION" (it builds the index on the way; entries '
         "without their abstract or summary are searched by title until then).")
    if made.title:
        _err(f"Regenerate the list with: {prefix} export markdown --title {shlex.quote(made.title)}")


def _init_from_citations(folder: Path, fmt: str, source: Path, *, force: bool,
                         section: str | None, section_field: str | None) -> None:
    from .citations import write_catalogue_from_citations

    target, imported = write_catalogue_from_citations(source, fmt, folder, force=force,
                                                      section=section, section_field=section_field)
    _err(f"Wrote {target}.")
    _report_import(imported)
    prefix = f"paperscope --library {shlex.quote(str(folder))}" if _State.library_path else "paperscope"
    _err(f"Next: {prefix} ingest   fetches the abstracts of arXiv and DOI entries, then builds "
         "the index")


def main() -> None:
    was_devnull = _stdout_is_devnull()
    try:
        app()
    except SystemExit as done:
        # Help is printed by rich, which answers a closed pipe (`--help | head -1`) by pointing
        # stdout at /dev/null and exiting 1: the reader has all it wanted, as for data commands.
        if done.code == 1 and not was_devnull and _stdout_is_devnull():
            raise SystemExit(0) from None
        raise


def _stdout_is_devnull() -> bool:
    try:
        return os.path.samestat(os.fstat(sys.stdout.fileno()), os.stat(os.devnull))
    except (OSError, ValueError):
        return False


# -- servers: the web page and JSON API, and MCP (paperscope.serve) ---------------------

from .serve.commands import mcp_command, serve_command  # noqa: E402

_command("serve")(serve_command)
_command("mcp")(mcp_command)
