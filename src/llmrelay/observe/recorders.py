"""What recorders share: several recorders on one engine, and the cost rules they all apply.

An engine takes one ``recorder``; :class:`CompositeRecorder` fans each finished call out to
several (metrics, the request log, OpenTelemetry spans, your own). A recorder that raises is
reported once on the ``llmrelay.recorders`` logger and never fails the call or the others.

Cost rules (the request log and the metrics agree): a known cost is used as is; a cache hit
costs ``0.0`` (nothing was spent); a call or attempt that reported no tokens costs ``0.0``;
anything else without a price is unknown -- ``(None, False)``, never a silent 0.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigurationError, shown

if TYPE_CHECKING:
    from ..core.layers import CallRecord, Recorder
    from ..core.trace import Attempt
    from ..types import Usage
    from .metrics import Metrics
    from .requestlog import RequestLog

__all__ = [
    "ClientRecorders",
    "CompositeRecorder",
    "attempt_cost",
    "call_cost",
    "client_recorders",
]

logger = logging.getLogger("llmrelay.recorders")


def _no_tokens(u: Usage | None) -> bool:
    return u is None or (u.input_tokens == 0 and u.output_tokens == 0)


def call_cost(rec: CallRecord) -> tuple[float | None, bool]:
    """``(cost_usd, known)`` of a logical call."""
    if rec.cache_hit:
        return 0.0, True
    c = rec.cost
    if c is not None and c.known and c.usd is not None:
        return c.usd, True
    if c is None and _no_tokens(rec.usage):
        return 0.0, True
    return None, False


def attempt_cost(a: Attempt) -> tuple[float | None, bool]:
    """``(cost_usd, known)`` of one attempt."""
    if a.cost_usd is not None:
        return a.cost_usd, True
    if a.outcome in ("skipped", "cache_hit") or _no_tokens(a.usage):
        return 0.0, True
    return None, False


class CompositeRecorder:
    """Passes every finished call to each recorder in turn."""

    __slots__ = ("_failed", "recorders")

    def __init__(self, recorders: Iterable[Recorder]) -> None:
        items = list(recorders)
        for r in items:
            if not callable(getattr(r, "record", None)):
                raise ConfigurationError(
                    f"every recorder needs a record(call_record) method; {type(r).__name__} "
                    "has none"
                )
        self.recorders: tuple[Recorder, ...] = tuple(items)
        self._failed: set[int] = set()

    def __repr__(self) -> str:
        return f"CompositeRecorder([{', '.join(type(r).__name__ for r in self.recorders)}])"

    def record(self, rec: CallRecord) -> None:
        for r in self.recorders:
            try:
                r.record(rec)
            except Exception:
                if id(r) not in self._failed:
                    self._failed.add(id(r))
                    logger.exception(
                        "recorder %s failed; the call is not affected (reported once)",
                        type(r).__name__,
                    )


@dataclass(slots=True)
class ClientRecorders:
    """What ``Client(metrics=..., log=...)`` builds (see :func:`client_recorders`)."""

    metrics: Metrics | None = None
    log: RequestLog | None = None
    #: The log was opened here (the client closes it) rather than passed in.
    owns_log: bool = False
    #: Store prompts and answers (``[log] content`` when ``log=True``).
    log_content: bool = False
    recorder: Recorder | None = None


def client_recorders(
    metrics: bool | Metrics = False,
    log: bool | str | os.PathLike[str] | RequestLog | None = None,
) -> ClientRecorders:
    """The recorders of ``Client(metrics=..., log=...)``.

    ``metrics``: True for a new :class:`~llmrelay.observe.metrics.Metrics`, or one to share.
    ``log``: True for the configured log (``[log]`` / ``LLMRELAY_LOG_*``, default the SQLite file
    ``~/.local/share/llmrelay/requests.db``), a SQLite path or ``postgresql://`` DSN, or a
    :class:`~llmrelay.observe.requestlog.RequestLog` to share. None/False: no log, no file written.
    """
    out = ClientRecorders()
    if isinstance(metrics, bool):
        if metrics:
            from .metrics import Metrics

            out.metrics = Metrics()
    elif callable(getattr(metrics, "get_metrics", None)) and callable(
        getattr(metrics, "record", None)
    ):
        out.metrics = metrics
    else:
        raise ConfigurationError(f"metrics must be True, False or a Metrics, not {shown(metrics)}")
    if log is not None and log is not False:
        from .requestlog import RequestLog

        if isinstance(log, RequestLog):
            out.log = log
        elif log is True:
            from ..settings.requestlog import log_settings

            settings = log_settings()
            out.log, out.owns_log = RequestLog(settings.target), True
            out.log_content = settings.content
        elif isinstance(log, str | os.PathLike):
            out.log, out.owns_log = RequestLog(log), True
        else:
            raise ConfigurationError(
                "log must be True (the configured log), a SQLite path, a postgresql:// DSN or a "
                f"RequestLog, not {type(log).__name__}"
            )
    parts: list[Recorder] = [r for r in (out.metrics, out.log) if r is not None]
    if len(parts) == 1:
        out.recorder = parts[0]
    elif parts:
        out.recorder = CompositeRecorder(parts)
    return out
