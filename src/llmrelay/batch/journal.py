"""The batch journal: the append-only JSONL file that makes a batch resumable.

The first line is a header; each later line is the record of one finished item (see
``llmrelay.batch.runner`` for the format and how a run resumes). :class:`Journal` owns the file
(lock,
torn last line, grouped fsyncs); :func:`result_record` and :func:`restore_outcome` turn an item's
outcome into a record and back.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import time
from collections.abc import Mapping
from typing import Any

import orjson

from ..catalog.costs import Cost
from ..core.codec import dumps, response_from_dict, response_to_dict
from ..errors import (
    AllAttemptsFailedError,
    InvalidRequestError,
    LLMRelayError,
    StateStoreError,
    _rebuild,
)
from ..types import Response

__all__ = [
    "Journal",
    "error_record",
    "restore_error",
    "restore_outcome",
    "result_record",
]

_HEADER_KEY = "llmrelay_batch_journal"
#: The version this llmrelay writes: item records hold the response as a codec record
#: (``{"id", "h", "t", "ok": true, "response": {...}}``). Version 1 journals (the response's
#: fields flat in the record) are still read and resumed.
_VERSION = 2
_READS = (1, 2)
_HEADER_PREFIX = b'{"' + _HEADER_KEY.encode() + b'"'
_ERROR_BASE_ATTRS = frozenset(
    ("message", "provider", "model", "status", "headers", "retry_after", "request_id", "body")
)


def error_record(exc: BaseException) -> dict[str, Any]:
    rec: dict[str, Any] = {"type": type(exc).__name__}
    if isinstance(exc, LLMRelayError):
        rec["message"] = exc.message
        for k in ("provider", "model", "status", "retry_after", "request_id"):
            v = getattr(exc, k, None)
            if v is not None:
                rec[k] = v
        extra = {
            k: (v if isinstance(v, str | int | float | bool) else None)
            for k, v in vars(exc).items()
            if k not in _ERROR_BASE_ATTRS and k != "trace" and not k.startswith("_")
        }
        if extra:
            rec["attrs"] = extra
        if isinstance(exc, AllAttemptsFailedError):
            rec["errors"] = [error_record(e) for e in exc.exceptions]
    else:
        rec["message"] = str(exc)
    return rec


def restore_error(rec: Mapping[str, Any]) -> Exception:
    name = str(rec.get("type", "LLMRelayError"))
    message = str(rec.get("message", ""))
    from .. import errors

    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, LLMRelayError):
        state: dict[str, Any] = dict.fromkeys(_ERROR_BASE_ATTRS)
        state.update(headers={}, trace=[], message=message)
        attrs = rec.get("attrs")
        if isinstance(attrs, Mapping):
            state.update(attrs)
        for k in ("provider", "model", "status", "retry_after", "request_id"):
            if k in rec:
                state[k] = rec[k]
        if issubclass(cls, AllAttemptsFailedError):
            subs = rec.get("errors")
            children = [restore_error(e) for e in subs] if isinstance(subs, list) else []
            group = cls(message, children)
            del state["message"]  # read-only on an exception group
            group.__dict__.update(state)
            return group
        return _rebuild(cls, message, state)
    builtin = getattr(builtins, name, None)
    if isinstance(builtin, type) and issubclass(builtin, Exception):
        try:
            return builtin(message)
        except Exception:
            pass
    return LLMRelayError(f"{name}: {message}")


def result_record(
    item_id: str | int, fp: str, response: Response | None, error: BaseException | None
) -> dict[str, Any]:
    """The journal record of one finished item: its ``response``, or else its ``error``."""
    rec: dict[str, Any] = {"id": item_id, "h": fp, "t": round(time.time(), 3)}
    if response is None:
        rec["ok"] = False
        rec["error"] = error_record(error) if error is not None else {}
        return rec
    rec["ok"] = True
    rec["response"] = response_to_dict(response)
    return rec


def _legacy_record(rec: Mapping[str, Any]) -> dict[str, Any]:
    """A version-1 record (text, tool calls, finish reason, provider, model, usage, total usage
    and cost flat in the item record) as a codec record."""
    return {
        "v": 1,  # the codec reads version 1 records (no reasoning, no signatures)
        "text": rec.get("text"),
        "tool_calls": rec.get("tool_calls", []),
        "finish_reason": rec.get("finish_reason"),
        "raw_finish_reason": None,
        "usage": rec.get("usage"),
        "total_usage": rec.get("total_usage"),
        "provider": rec.get("provider"),
        "model": rec.get("model"),
        "alias": None,
        "id": None,
        "request_id": None,
        "latency_s": 0.0,
        "time_to_first_token_s": None,
        "cost": rec.get("cost"),
        "cache_hit": False,
        "adjusted_params": {},
    }


def restore_outcome(rec: Mapping[str, Any], response_model: Any) -> Response | Exception:
    """What a record holds: the response (validated into ``response_model`` when one is
    given), or the error the item failed with. Raises ``InvalidResponseError`` for a response
    record that cannot be read back (the batch then runs the item again)."""
    if not rec.get("ok"):
        err = rec.get("error")
        return restore_error(err if isinstance(err, Mapping) else {})
    data = rec["response"] if "response" in rec else _legacy_record(rec)
    resp = response_from_dict(data, cost_type=Cost)
    if response_model is not None:
        from ..core.structured import parse_structured

        resp.object = parse_structured(response_model, resp.text)
    return resp


# --------------------------------------------------------------------------- the journal file


class Journal:
    """The append-only record of finished items (see the module docstring for the format).

    Open with :meth:`open` (reads what is there, drops a torn last line, takes the lock);
    :meth:`write` appends one record at once; :meth:`aclose` syncs and unlocks.
    """

    def __init__(self, path: str, fd: int, records: dict[str, dict[str, Any]], bad: int) -> None:
        self.path = path
        self._fd = fd
        #: The last record of each item id (as text).
        self.records = records
        #: Lines that could not be read (other than a torn last line); their items re-run.
        self.bad_lines = bad
        #: Bytes of a partly written last line that were dropped on open.
        self.torn_bytes = 0
        self._dirty = False
        self._syncer: asyncio.Task[None] | None = None
        self._sync_error: OSError | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Journal:
        if not isinstance(path, str | os.PathLike):
            raise InvalidRequestError(
                f"journal must be a file path (a str or os.PathLike), not {type(path).__name__}"
            )
        p = os.fspath(path)
        try:
            flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
            fd = os.open(p, flags, 0o666)
        except OSError as exc:
            raise InvalidRequestError(
                f"cannot open the batch journal {p}: {exc.strerror or exc}"
            ) from None
        try:
            _lock(fd, p)
            return cls._load(p, fd)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def _load(cls, p: str, fd: int) -> Journal:
        chunks: list[bytes] = []
        os.lseek(fd, 0, os.SEEK_SET)
        while block := os.read(fd, 1 << 20):
            chunks.append(block)
        data = b"".join(chunks)
        end = data.rfind(b"\n") + 1
        lines = data[:end].split(b"\n")[:-1]
        tail = data[end:]
        not_journal = InvalidRequestError(
            f"{p} is not an llmrelay batch journal (it does not start with a journal header); "
            "pass another journal path, or delete the file to start over"
        )
        if lines:
            try:
                head = orjson.loads(lines[0])
            except orjson.JSONDecodeError:
                raise not_journal from None
            if not isinstance(head, dict) or _HEADER_KEY not in head:
                raise not_journal
            if head[_HEADER_KEY] not in _READS:
                raise InvalidRequestError(
                    f"the batch journal {p} has version {head[_HEADER_KEY]!r}; this llmrelay "
                    f"reads versions {_READS[0]} to {_READS[-1]}. Delete it to start over"
                )
        elif tail and not (_HEADER_PREFIX.startswith(tail[:32]) or tail.startswith(_HEADER_PREFIX)):
            raise not_journal
        records: dict[str, dict[str, Any]] = {}
        bad = 0
        for line in lines[1:]:
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                bad += 1
                continue
            if not isinstance(rec, dict) or "id" not in rec or not isinstance(rec.get("h"), str):
                bad += 1
                continue
            records[str(rec["id"])] = rec
        journal = cls(p, fd, records, bad)
        if tail:  # a crash in the middle of a write: drop the fragment, its item runs again
            os.ftruncate(fd, end)
            journal.torn_bytes = len(tail)
        if not lines:
            journal._append({_HEADER_KEY: _VERSION, "created": round(time.time(), 3)})
            os.fsync(fd)
        return journal

    def _append(self, rec: Mapping[str, Any]) -> None:
        view = memoryview(dumps(rec) + b"\n")
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            raise StateStoreError(
                f"could not write the batch journal {self.path}: {exc.strerror or exc}"
            ) from exc

    def write(self, rec: Mapping[str, Any]) -> None:
        """Append one record now; it is synced to disk with the next group."""
        self._append(rec)
        self._dirty = True
        if self._syncer is None or self._syncer.done():
            self._syncer = asyncio.get_running_loop().create_task(self._sync_loop())

    async def _sync_loop(self) -> None:
        while self._dirty:
            self._dirty = False
            try:
                await asyncio.to_thread(os.fsync, self._fd)
            except OSError as exc:
                self._sync_error = exc
                return

    async def aclose(self) -> None:
        """Wait for the last sync, then release the lock and close the file."""
        try:
            if self._syncer is not None:
                await asyncio.shield(self._syncer)
            if self._dirty and self._sync_error is None:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)
        if self._sync_error is not None:
            exc = self._sync_error
            raise StateStoreError(
                f"could not sync the batch journal {self.path}: {exc.strerror or exc}"
            ) from exc


def _lock(fd: int, path: str) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise InvalidRequestError(
            f"the batch journal {path} is in use by another running batch; wait for it to "
            "finish or pass a different journal path"
        ) from None
