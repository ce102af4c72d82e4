"""Batch calls: ``amap`` / ``map`` over many prompts, concurrent, in order, resumable.

.. code-block:: python

    results = await llmrelay.Client().amap(
        "gpt-4.1-mini", ["What is 2+2?", {"id": "q2", "prompt": "Name a prime", "seed": 1}],
        concurrency=16, journal="run.journal", temperature=0,
    )
    for r in results:                       # input order, one result per item
        print(r.id, r.text if r.ok else r.error)

**Items** are prompt strings, lists of messages, or dicts ``{"id": ..., "prompt" | "messages":
..., <per-item arguments>}`` (any generation parameter or call option, e.g. ``temperature``,
``system``, ``tags``; they override the batch-wide keyword arguments). An item's id is its
``id`` (a non-empty string or an integer) or else its position in the input. Two items with the
same id (``1`` and ``"1"`` count as the same) raise ``InvalidRequestError`` before anything runs,
as does a malformed item.

**Concurrency**: a pool of ``concurrency`` workers, so never more than ``concurrency`` calls are
in flight. Calls pass ``wait_for_rate_limit=True`` unless told otherwise, so when the engine has a
rate limiter the workers wait for capacity (up to each call's deadline) instead of failing over.

**Failures**: a failed item gets its typed error in ``BatchResult.error`` and the batch goes on;
with ``fail_fast=True`` the first failure cancels the calls in flight and is raised. A
``KeyboardInterrupt`` (or cancellation) stops the batch the same way.

**Journal** (``journal=PATH``): an append-only JSONL file. The first line is a header; every
later line records one finished item (``id``, a fingerprint ``h`` of the request, then either
``text``/``usage``/``cost``/... or ``error``), written the moment the item finishes, and synced to
disk in small groups. Run the same batch again with the same journal and every item whose record
matches its request (same id and fingerprint: model, messages and parameters) is not called again:
its recorded result is returned (``resumed=True``). Items that failed are re-run only with
``retry_failed=True``; an item whose request changed is re-run. A partly written last line (a
crash mid-write) is dropped and its item re-run, so nothing is done twice and nothing is lost. A
journal is locked while a batch uses it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import inspect
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .._sync import run_sync
from ..client import Client, default_client, split_kwargs
from ..core.engine import OPTION_NAMES, Engine, ModelRef
from ..core.layers import Cost
from ..errors import InvalidRequestError
from ..providers.resolve import Target
from ..types import PARAM_NAMES, Message, MessagesInput, Response, Usage, normalize_messages
from .journal import Journal, json_default, restore_outcome, result_record

__all__ = ["BatchItem", "BatchResult", "Journal", "amap", "fingerprint", "map", "parse_item"]

#: What an item id may be.
ItemId = str | int
OnResult = Callable[["BatchResult"], Any]

_ITEM_KEYS = frozenset(("id", "prompt", "messages"))
_ITEM_ARGS = PARAM_NAMES | OPTION_NAMES | {"extra"}
#: Per-item arguments that change where a call goes (the batch-wide check is skipped for them).
_ROUTING_ARGS = frozenset(("api_key", "base_url", "fallbacks"))
#: Options that change the answer, and so belong in the request fingerprint.
_CONTENT_OPTIONS = frozenset(("system", "response_model", "max_reasks"))


# --------------------------------------------------------------------------- items and results


@dataclass(slots=True)
class BatchItem:
    """One parsed item. ``source`` (e.g. ``"in.jsonl:7"``) locates it in error messages."""

    index: int
    id: ItemId
    messages: MessagesInput
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    source: str | None = None

    @property
    def where(self) -> str:
        return self.source or f"items[{self.index}]"


@dataclass(slots=True)
class BatchResult:
    """The outcome of one item: its ``response`` or its typed ``error``."""

    index: int
    id: ItemId
    response: Response | None = None
    error: Exception | None = None
    #: True when the result was read back from the journal instead of being called again.
    resumed: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def text(self) -> str | None:
        return self.response.text if self.response is not None else None

    @property
    def usage(self) -> Usage | None:
        return self.response.usage if self.response is not None else None

    @property
    def cost(self) -> Cost | None:
        return self.response.cost if self.response is not None else None

    def unwrap(self) -> Response:
        """The response, or raise the item's error."""
        if self.error is not None:
            raise self.error
        assert self.response is not None
        return self.response

    def to_dict(self) -> dict[str, Any]:
        """One output record: ``id``, ``text`` (or ``error``), ``usage`` and ``cost`` (USD)."""
        r = self.response
        if r is None:
            err = self.error
            return {
                "id": self.id,
                "error": {"type": type(err).__name__, "message": _error_text(err)},
                "usage": None,
                "cost": None,
            }
        out: dict[str, Any] = {"id": self.id, "text": r.text, "finish_reason": r.finish_reason}
        if r.tool_calls:
            out["tool_calls"] = [tc.to_dict() for tc in r.tool_calls]
        out["usage"] = r.usage.to_dict()
        out["cost"] = r.cost.usd if isinstance(r.cost, Cost) else None
        return out


def _error_text(err: BaseException | None) -> str:
    if err is None:
        return ""
    return " ".join(str(err).split()) or type(err).__name__


def _check_id(value: Any) -> ItemId:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequestError(
            f"`id` must be a string or an integer, not {type(value).__name__} ({value!r})"
        )
    if isinstance(value, str) and not value:
        raise InvalidRequestError("`id` is an empty string; give every item a distinct id")
    return value


def _check_messages(value: Any, what: str) -> MessagesInput:
    if isinstance(value, str):
        if not value.strip():
            raise InvalidRequestError(f"{what} is empty; give it some text")
        return value
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        if not value:
            raise InvalidRequestError(f"{what} is an empty list; give at least one message")
        try:
            return normalize_messages(value)
        except InvalidRequestError as exc:
            raise InvalidRequestError(f"{what}: {exc.message}") from None
    raise InvalidRequestError(
        f"{what} must be a prompt string or a list of messages, not {type(value).__name__}"
    )


def parse_item(
    value: Any, index: int, *, default_id: ItemId | None = None, source: str | None = None
) -> BatchItem:
    """Check one input item and return it parsed; raise ``InvalidRequestError`` saying why not.

    The id is the item's ``id`` field, else ``default_id``, else ``index``.
    """
    own_id: ItemId = index if default_id is None else default_id
    if isinstance(value, BatchItem):
        return dataclasses.replace(value, index=index)
    if isinstance(value, str):
        return BatchItem(index, own_id, _check_messages(value, "the prompt"), {}, source)
    if isinstance(value, Message):
        return BatchItem(index, own_id, [value], {}, source)
    if isinstance(value, Mapping):
        if "prompt" in value and "messages" in value:
            raise InvalidRequestError("an item has both `prompt` and `messages`; give one")
        if "prompt" in value:
            if not isinstance(value["prompt"], str):
                raise InvalidRequestError("`prompt` must be a string (use `messages` for a list)")
            msgs = _check_messages(value["prompt"], "`prompt`")
        elif "messages" in value:
            raw = value["messages"]
            if isinstance(raw, str):
                raise InvalidRequestError("`messages` must be a list (use `prompt` for a string)")
            msgs = _check_messages(raw, "`messages`")
        else:
            hint = "; wrap a single message as {'messages': [...]}" if "role" in value else ""
            raise InvalidRequestError(
                "an item dict needs `prompt` (a string) or `messages` (a list of messages)" + hint
            )
        unknown = sorted(str(k) for k in value if k not in _ITEM_ARGS and k not in _ITEM_KEYS)
        if unknown:
            raise InvalidRequestError(
                f"unknown item field(s) {', '.join(unknown)}; an item takes id, prompt or "
                "messages, and any generation parameter or call option (temperature, "
                "max_tokens, system, tags, ...)"
            )
        item_id = _check_id(value["id"]) if "id" in value else own_id
        kwargs = {str(k): v for k, v in value.items() if k not in _ITEM_KEYS}
        if kwargs:
            split_kwargs(kwargs)  # a bad value (temperature=7) is reported here, not mid-batch
        return BatchItem(index, item_id, msgs, kwargs, source)
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return BatchItem(index, own_id, _check_messages(value, "the message list"), {}, source)
    raise InvalidRequestError(
        f"an item must be a prompt string, a list of messages or a dict, not {type(value).__name__}"
    )


def _parse_items(prompts: Iterable[Any]) -> list[BatchItem]:
    if isinstance(prompts, str | bytes | Mapping) or not isinstance(prompts, Iterable):
        raise InvalidRequestError(
            "prompts must be a list (or other iterable) of items, not a single "
            f"{type(prompts).__name__}; wrap one prompt as [prompt]"
        )
    items: list[BatchItem] = []
    seen: dict[str, BatchItem] = {}
    for i, value in enumerate(prompts):
        try:
            item = parse_item(value, i)
        except InvalidRequestError as exc:
            where = value.where if isinstance(value, BatchItem) else f"items[{i}]"
            raise InvalidRequestError(f"{where}: {exc.message}") from None
        key = str(item.id)
        first = seen.get(key)
        if first is not None:
            raise InvalidRequestError(
                f"duplicate item id {item.id!r}: {first.where} and {item.where} (ids are compared "
                "as text; an item without an id takes its position). Give every item a distinct id"
            )
        seen[key] = item
        items.append(item)
    return items


# --------------------------------------------------------------------------- fingerprints


def _model_label(model: ModelRef) -> str:
    if isinstance(model, str):
        return model
    if isinstance(model, Target):
        return model.label
    return str(getattr(model, "name", type(model).__name__))


def fingerprint(model: ModelRef, item: BatchItem, base: Mapping[str, Any]) -> str:
    """A short hash of what decides an item's answer: model, messages, parameters, system."""
    merged = {**base, **item.kwargs}
    content = {
        k: v for k, v in merged.items() if k in PARAM_NAMES or k == "extra" or k in _CONTENT_OPTIONS
    }
    payload = orjson.dumps(
        [_model_label(model), item.messages, content],
        default=json_default,
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
    )
    return hashlib.blake2b(payload, digest_size=12).hexdigest()


# --------------------------------------------------------------------------- running a batch


def _restore_result(rec: Mapping[str, Any], item: BatchItem, response_model: Any) -> BatchResult:
    out = restore_outcome(rec, response_model)
    if isinstance(out, Response):
        return BatchResult(item.index, item.id, response=out, resumed=True)
    return BatchResult(item.index, item.id, error=out, resumed=True)


def _check_concurrency(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequestError(
            f"concurrency must be a positive integer (calls in flight at once), not {value!r}"
        )
    return value


def _preflight(client: Any, model: ModelRef, kwargs: dict[str, Any]) -> None:
    """Resolve the model once so an unknown model or a missing key fails before any call."""
    engine = getattr(client, "engine", None)
    if not isinstance(engine, Engine):
        return
    _, opts = split_kwargs(kwargs)
    engine.preflight(model, opts)


async def _notify(on_result: OnResult | None, res: BatchResult) -> None:
    if on_result is not None:
        out = on_result(res)
        if inspect.isawaitable(out):
            await out


async def amap(
    model: ModelRef,
    prompts: Iterable[Any],
    *,
    client: Client | None = None,
    concurrency: int = 8,
    journal: str | os.PathLike[str] | None = None,
    on_result: OnResult | None = None,
    fail_fast: bool = False,
    retry_failed: bool = False,
    **call_kwargs: Any,
) -> list[BatchResult]:
    """Call ``model`` once per item, ``concurrency`` at a time; results in input order.

    ``on_result(result)`` (sync or async) runs as each item finishes, and first for every item
    restored from the journal. ``call_kwargs`` are generation parameters and call options for
    every item (``wait_for_rate_limit`` defaults to True). See the module docstring.
    """
    _check_concurrency(concurrency)
    items = _parse_items(prompts)
    call_kwargs.setdefault("wait_for_rate_limit", True)
    split_kwargs(call_kwargs)  # unknown argument names fail here, before anything runs
    if client is None:
        client = default_client()
    results: list[BatchResult | None] = [None] * len(items)
    jr = Journal.open(journal) if journal is not None else None
    try:
        todo: list[tuple[BatchItem, str]] = []
        for item in items:
            fp = fingerprint(model, item, call_kwargs) if jr is not None else ""
            rec = jr.records.get(str(item.id)) if jr is not None else None
            res = None
            if rec is not None and rec.get("h") == fp and (rec.get("ok") or not retry_failed):
                rm = item.kwargs.get("response_model", call_kwargs.get("response_model"))
                try:
                    res = _restore_result(rec, item, rm)
                except Exception:  # a record this version cannot read back: run the item again
                    res = None
            if res is None:
                todo.append((item, fp))
            else:
                results[item.index] = res
                await _notify(on_result, res)
        if todo:
            if not any(k in item.kwargs for item, _ in todo for k in _ROUTING_ARGS):
                _preflight(client, model, call_kwargs)
            await _run(
                client, model, todo, results, jr, on_result, fail_fast, concurrency, call_kwargs
            )
    finally:
        if jr is not None:
            await jr.aclose()
    done = [r for r in results if r is not None]
    assert len(done) == len(results)
    return done


async def _run(
    client: Client,
    model: ModelRef,
    todo: list[tuple[BatchItem, str]],
    results: list[BatchResult | None],
    jr: Journal | None,
    on_result: OnResult | None,
    fail_fast: bool,
    concurrency: int,
    call_kwargs: dict[str, Any],
) -> None:
    """The worker pool: each worker takes the next item until none are left or one aborts."""
    queue = iter(todo)
    abort: list[BaseException] = []
    tasks: list[asyncio.Task[None]] = []

    def stop(exc: BaseException) -> None:
        abort.append(exc)
        me = asyncio.current_task()
        for t in tasks:
            if t is not me:
                t.cancel()

    async def worker() -> None:
        for item, fp in queue:
            if abort:
                return
            kwargs = {**call_kwargs, **item.kwargs} if item.kwargs else call_kwargs
            try:
                resp = await client.achat(model, item.messages, **kwargs)
                res = BatchResult(item.index, item.id, response=resp)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                res = BatchResult(item.index, item.id, error=exc)
            except BaseException as exc:  # KeyboardInterrupt / SystemExit inside a call
                stop(exc)
                return
            results[item.index] = res
            try:
                if jr is not None:
                    jr.write(result_record(res.id, fp, res.response, res.error))
                await _notify(on_result, res)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                stop(exc)
                return
            if fail_fast and res.error is not None:
                res.error.add_note(
                    f"batch item {item.id!r} ({item.where}) failed; fail_fast stopped the batch"
                )
                stop(res.error)
                return

    for _ in range(min(concurrency, len(todo))):
        tasks.append(asyncio.get_running_loop().create_task(worker()))
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    if abort:
        raise abort[0]
    for o in outcomes:
        if isinstance(o, BaseException):
            raise o


def map(
    model: ModelRef,
    prompts: Iterable[Any],
    **kwargs: Any,
) -> list[BatchResult]:
    """Sync :func:`amap` (same arguments). Ctrl-C stops the batch with every finished item
    journaled, then raises ``KeyboardInterrupt``."""
    holder: list[asyncio.Task[Any]] = []

    async def main() -> list[BatchResult]:
        task = asyncio.current_task()
        if task is not None:
            holder.append(task)
        return await amap(model, prompts, **kwargs)

    try:
        return run_sync(main())
    except KeyboardInterrupt:
        if holder and not holder[0].done():
            task = holder[0]
            task.cancel()
            run_sync(_settle(task))
        raise


async def _settle(task: asyncio.Task[Any]) -> None:
    """Let a cancelled batch finish its clean-up (cancel workers, close the journal)."""
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # retrieved, so it is not reported as never retrieved
