"""``llmrelay batch``: run every line of a JSONL file through a model, concurrently and resumably.

    llmrelay batch in.jsonl -o out.jsonl -m gpt-4.1-mini --concurrency 16

**Input** (a file, or ``-`` for stdin): one item per line. A line is a JSON object
``{"id": ..., "prompt": "..."}`` or ``{"id": ..., "messages": [...]}`` (plus any per-item
parameter: ``temperature``, ``max_tokens``, ``system``, ...), a JSON array of messages, a JSON
string, or plain text (the whole line is the prompt). A line that starts with ``{``, ``[`` or ``"``
must be valid JSON. Blank lines are skipped. An item without an ``id`` takes its line number.
A malformed line is reported on stderr with its line number and skipped; the rest runs.

**Output**: one JSON line per item, in input order: ``id``, ``text`` (or ``error`` with ``type``
and ``message``), ``finish_reason``, ``usage`` and ``cost`` (USD, null when unknown). It is
written when the batch ends (through a temporary file, so it is never half-written).

**Resuming**: every finished item is recorded in a journal (``<output>.journal`` unless
``--journal`` says otherwise) the moment it finishes. Run the same command again after a crash or
Ctrl-C and finished items are not called again: their recorded results go to the output. The
journal is kept after a complete run, so re-running a finished batch costs nothing; delete it to
start over. Items that failed are re-run only with ``--retry-failed``; an item whose line changed
is re-run.

**Progress** goes to stderr: a progress bar when ``rich`` is installed and stderr is a terminal,
otherwise a count every few seconds; then a summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable
from typing import IO, Any, TextIO

from ..batch.runner import BatchItem, BatchResult, parse_item
from ..errors import InvalidRequestError
from ._output import Console, scrub
from .chat import _model, call_kwargs
from .main import EXIT_INTERRUPTED, error_line

__all__ = ["EXIT_ITEMS_FAILED", "EXIT_MALFORMED_INPUT", "Progress", "read_items", "run"]

#: Exit code: the batch ran to the end, but at least one item failed (see the output file).
EXIT_ITEMS_FAILED = 6
#: Exit code: the batch ran to the end and every item succeeded, but input lines were skipped.
EXIT_MALFORMED_INPUT = 7

#: Failed items listed one by one on stderr before "... and N more".
_SHOWN_FAILURES = 10
_JSON_START = ("{", "[", '"')


def read_items(
    stream: IO[bytes], name: str, err: Console
) -> tuple[list[BatchItem], list[int], int]:
    """Parse every line. Returns (items, their line numbers, malformed line count); each
    malformed line is reported on ``err`` as ``name:LINE: skipped: why``."""
    import orjson

    items: list[BatchItem] = []
    lines: list[int] = []
    malformed = 0
    for lineno, raw in enumerate(stream, 1):
        where = f"{name}:{lineno}"
        try:
            text = raw.decode("utf-8")
            if lineno == 1:
                text = text.removeprefix("\ufeff")
            s = text.strip()
            if not s:
                continue
            value: Any = s
            if s.startswith(_JSON_START):
                try:
                    value = orjson.loads(s)
                except orjson.JSONDecodeError as exc:
                    raise InvalidRequestError(f"not valid JSON ({exc})") from None
            item = parse_item(value, len(items), default_id=lineno, source=where)
        except UnicodeDecodeError:
            msg = "not valid UTF-8"
        except InvalidRequestError as exc:
            msg = exc.message
        else:
            items.append(item)
            lines.append(lineno)
            continue
        malformed += 1
        err.line(f"{where}: skipped: {scrub(msg)}", style="yellow")
    return items, lines, malformed


class Progress:
    """Counts finished items on stderr: a rich bar on a terminal, else a line every
    ``interval`` seconds. Call it with each ``BatchResult``."""

    def __init__(
        self,
        total: int,
        file: TextIO,
        *,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.done = self.failed = self.resumed = 0
        self._file = file
        self._interval = interval
        self._clock = clock
        self._last = clock()
        self._bar: Any = None
        self._task: Any = None
        console = Console(file)
        if console.is_rich and total:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = progress = _rich_progress(
                file,
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self._task = progress.add_task("batch", total=total)
            progress.start()

    def __call__(self, res: BatchResult) -> None:
        self.done += 1
        self.failed += not res.ok
        self.resumed += res.resumed
        if self._bar is not None:
            desc = f"batch ({self.failed} failed)" if self.failed else "batch"
            self._bar.update(self._task, completed=self.done, description=desc)
            return
        now = self._clock()
        if now - self._last >= self._interval and self.done < self.total:
            self._last = now
            self._file.write(f"llmrelay batch: {self.counts()}\n")
            self._file.flush()

    def counts(self) -> str:
        text = f"{self.done}/{self.total} done"
        if self.failed:
            text += f", {self.failed} failed"
        if self.resumed:
            text += f" ({self.resumed} from the journal)"
        return text

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _rich_progress(file: TextIO, *columns: Any) -> Any:
    from rich.console import Console as RichConsole
    from rich.progress import Progress as RichProgress

    return RichProgress(*columns, console=RichConsole(file=file), transient=False)


def _paths(args: argparse.Namespace) -> tuple[str, str]:
    out = args.output
    journal = args.journal or f"{out}.journal"
    real = {os.path.realpath(p) for p in (out, journal)}
    if len(real) < 2:
        raise InvalidRequestError("--journal must be a different file from -o/--output")
    if args.input != "-" and os.path.realpath(args.input) in real:
        raise InvalidRequestError(
            f"the input file {args.input} would be overwritten; pick another -o/--journal path"
        )
    return out, journal


def _read_input(path: str, err: Console) -> tuple[list[BatchItem], list[int], int]:
    if path == "-":
        if sys.stdin is None:
            raise InvalidRequestError("no input: pass a JSONL file or pipe it on stdin with '-'")
        return read_items(sys.stdin.buffer, "<stdin>", err)
    try:
        with open(path, "rb") as f:
            return read_items(f, path, err)
    except OSError as exc:
        raise InvalidRequestError(
            f"cannot read the input file {path}: {exc.strerror or exc}"
        ) from None


async def _run_batch(
    model: str,
    items: list[BatchItem],
    kwargs: dict[str, Any],
    args: argparse.Namespace,
    journal: str,
    progress: Progress,
) -> list[BatchResult]:
    from ..client import Client

    client = Client()
    try:
        return await client.amap(
            model,
            items,
            concurrency=args.concurrency,
            journal=journal,
            on_result=progress,
            retry_failed=args.retry_failed,
            **kwargs,
        )
    finally:
        await client.aclose()


def _write_output(path: str, results: list[BatchResult]) -> None:
    import orjson

    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            for r in results:
                rec = r.to_dict()
                if "error" in rec:
                    rec["error"]["message"] = scrub(rec["error"]["message"])
                f.write(orjson.dumps(rec) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise InvalidRequestError(
            f"cannot write the output file {path}: {exc.strerror or exc}"
        ) from None


def _report_failures(results: list[BatchResult], lines: list[int], err: Console) -> None:
    failed = [r for r in results if not r.ok]
    for r in failed[:_SHOWN_FAILURES]:
        assert r.error is not None
        text = error_line(r.error).removeprefix("error: ")
        err.line(f"item {r.id!r} (line {lines[r.index]}) failed: {text}", style="red")
    if len(failed) > _SHOWN_FAILURES:
        err.line(f"... and {len(failed) - _SHOWN_FAILURES} more failed items (see the output)")


def run(args: argparse.Namespace) -> int:
    model = _model(args.model)
    out, journal = _paths(args)
    err = Console(sys.stderr)
    items, lines, malformed = _read_input(args.input, err)
    kwargs = call_kwargs(args)
    progress = Progress(len(items), sys.stderr)
    try:
        results = asyncio.run(_run_batch(model, items, kwargs, args, journal, progress))
    except KeyboardInterrupt:
        progress.stop()
        err.line(
            f"interrupted: {progress.counts()}; finished items are kept in {journal}. "
            "Run the same command again to resume",
            style="yellow",
        )
        return EXIT_INTERRUPTED
    finally:
        progress.stop()
    _write_output(out, results)
    _report_failures(results, lines, err)
    failed = sum(not r.ok for r in results)
    resumed_failures = sum(not r.ok and r.resumed for r in results)
    summary = f"llmrelay batch: {len(results) - failed} ok, {failed} failed"
    if malformed:
        summary += f", {malformed} malformed line{'s' if malformed != 1 else ''} skipped"
    if progress.resumed:
        summary += f" ({progress.resumed} from the journal)"
    err.line(f"{summary} -> {out}")
    if resumed_failures:
        err.line(
            f"note: {resumed_failures} failed item(s) were read from the journal, not retried; "
            "pass --retry-failed to run them again",
            style="yellow",
        )
    if failed:
        return EXIT_ITEMS_FAILED
    if malformed:
        return EXIT_MALFORMED_INPUT
    return 0
