"""What ``Client(metrics=..., log=...)`` plugs into its engine: metrics, the request log, or both.

The pieces live in :mod:`llmrelay.observe`; this module assembles them from the client's
arguments and the ``[log]`` settings (:mod:`llmrelay.settings.requestlog`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigurationError, shown
from ..observe.metrics import Metrics
from ..observe.recorders import CompositeRecorder
from ..observe.requestlog import RequestLog
from .requestlog import log_settings

if TYPE_CHECKING:
    from ..core.layers import Recorder

__all__ = ["ClientRecorders", "client_recorders"]


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
            out.metrics = Metrics()
    elif callable(getattr(metrics, "get_metrics", None)) and callable(
        getattr(metrics, "record", None)
    ):
        out.metrics = metrics
    else:
        raise ConfigurationError(f"metrics must be True, False or a Metrics, not {shown(metrics)}")
    if log is not None and log is not False:
        if isinstance(log, RequestLog):
            out.log = log
        elif log is True:
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
