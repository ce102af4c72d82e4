"""Catalog rows and their files: JSON, YAML (the ``yaml`` extra) and SQLite.

A catalog document is ``{"schema_version": 1, "catalog_version": ..., "as_of": ..., "models":
[row, ...]}``; a row is the flat, documented form of an :class:`LLMProfile`::

    {"provider": "openai", "model": "gpt-4.1-mini", "aliases": [...], "family": "gpt",
     "context_window": 1047576, "max_output_tokens": 32768,
     "prices": {"input": 0.4, "output": 1.6, "cached_input": 0.1, "reasoning": null,
                "source": "https://...", "as_of": "2026-11-24", "note": null},
     "capabilities": {"vision": true, "tools": true, "json_schema": true, ...},
     "modalities": {"input": ["text", "image"], "output": ["text"]},
     "release_date": "2025-04-14", "deprecation_date": null, "shutdown_date": null,
     "replacement": null, "retirement": "refused", "retired_tiers": [],
     "price_schedule": [{"from": "2026-12-01", "until": null, "input": 0.8, ...}],
     "price_windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "01:00",
                        "end": "04:00", "multiplier": 2, "source": "https://..."}],
     "rejected_params": [{"param": "temperature", "when": "always", "source": "https://..."},
                         {"param": "reasoning_effort", "accepts": ["low", "medium", "high"]}],
     "tools_api": null, "verified_at": "2026-12-03", "sources": ["https://..."],
     "reasoning": {"style": "level", "values": {"low": "LOW", "high": "HIGH"}, ...}}

Schema version 2 added ``price_schedule``, ``retirement``, ``retired_tiers``,
``rejected_params``, ``tools_api``, ``verified_at``, ``sources``, ``reasoning``
(``llmrelay.types.ReasoningMap``) and the ``native_json_schema`` capability. Version-1 files
(none of these) are read as they are: every new field is optional.
A ``price_schedule`` period gives the prices that change; the others are the row's ``prices``.
Schema version 3 added ``price_windows`` (recurring UTC time-of-day prices: weekdays, a start
and an end ``HH:MM`` with the end exclusive and at most ``24:00``, and either a ``multiplier``
of the day's price or the window's own amounts) and ``prices.promotion_source`` (the price in
force is a sale; ``llmrelay catalog check`` lists one with no end date). Older files are read
as they are.

Unknown keys are errors (a typo must not silently drop a price). Every problem is a
``ConfigFileError`` naming the file, the row and the field.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from ..errors import ConfigFileError, ConfigurationError, shown, shown_names
from ..types.reasoning import ReasoningMap
from .pricing import period_row, schedule_from_list, window_row, windows_from_list
from .profiles import (
    LLMCapabilities,
    LLMProfile,
    MediaType,
    ModelFamily,
    ParamRule,
    Pricing,
    rules_from_rows,
)

__all__ = [
    "SCHEMA_VERSION",
    "codec",
    "dump_json",
    "dump_sqlite",
    "dump_yaml",
    "load_document",
    "load_json",
    "load_sqlite",
    "load_yaml",
    "merge_rows",
    "profile_from_row",
    "profile_to_row",
]

SCHEMA_VERSION = 3
#: Versions this llmrelay reads (1: before dated prices, lifecycle kinds and param rules;
#: 2: before time-of-day price windows and promotion flags).
READABLE_VERSIONS = (1, 2, 3)

_ROW_KEYS = frozenset(
    {
        "provider",
        "model",
        "aliases",
        "family",
        "display_name",
        "description",
        "context_window",
        "max_output_tokens",
        "prices",
        "capabilities",
        "modalities",
        "release_date",
        "deprecation_date",
        "shutdown_date",
        "replacement",
        "lifecycle_source",
        "tokenizer",
        "price_schedule",
        "price_windows",
        "retirement",
        "retired_tiers",
        "rejected_params",
        "tools_api",
        "verified_at",
        "sources",
        "reasoning",
    }
)
#: The ``prices`` table of a row holds the fields of ``Pricing``, by the same names.
_PRICE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Pricing))
_PRICE_KEYS = frozenset(_PRICE_FIELDS)
_CAP_KEYS: dict[str, str] = {
    "streaming": "supports_streaming",
    "tools": "supports_tools",
    "vision": "supports_vision",
    "json_mode": "supports_json_mode",
    "json_schema": "supports_json_schema",
    "system_prompt": "supports_system_prompt",
    "reasoning": "supports_reasoning",
    "prompt_caching": "supports_prompt_caching",
    "native_json_schema": "supports_native_json_schema",
}
_DOC_KEYS = frozenset({"schema_version", "catalog_version", "as_of", "notes", "models"})


def _err(msg: str, path: str | None, key: str | None = None) -> ConfigFileError:
    return ConfigFileError(msg, path=path, key=key)


def _expect_str(v: Any, what: str, path: str | None, key: str) -> None:
    if v is not None and not isinstance(v, str):
        raise _err(f"{what} must be a string, not {shown(v)}", path, key)


def profile_from_row(
    row: Any, *, path: str | None = None, index: int | None = None, origin: str = "user"
) -> LLMProfile:
    """Build and validate a profile from a row; ``ConfigFileError`` names what is wrong."""
    where = f"models[{index}]" if index is not None else "model"
    if not isinstance(row, Mapping):
        raise _err(f"{where} must be a table/object, not {type(row).__name__}", path, where)
    label = "/".join(  # never format a caller's object: its __format__ may raise or leak
        v if type(v) is str else "None" if v is None else shown(v)
        for v in (row.get("provider"), row.get("model"))
    )
    key = f"{where} ({label})"
    unknown = set(row) - _ROW_KEYS
    if unknown:
        raise _err(
            f"unknown field(s) {shown_names(unknown)}; known fields: "
            f"{', '.join(sorted(_ROW_KEYS))}",
            path,
            key,
        )
    for req in ("provider", "model"):
        if not isinstance(row.get(req), str) or not row[req].strip():
            raise _err(f"{req} must be a non-empty string, not {shown(row.get(req))}", path, key)
    prices = row.get("prices") or {}
    caps = row.get("capabilities") or {}
    mods = row.get("modalities") or {}
    for name, table, known in (
        ("prices", prices, _PRICE_KEYS),
        ("capabilities", caps, frozenset(_CAP_KEYS)),
        ("modalities", mods, frozenset({"input", "output"})),
    ):
        if not isinstance(table, Mapping):
            raise _err(f"{name} must be a table/object, not {shown(table)}", path, key)
        bad = set(table) - known
        if bad:
            raise _err(
                f"unknown {name} field(s) {', '.join(sorted(bad))}; known: "
                f"{', '.join(sorted(known))}",
                path,
                key,
            )
    for c, v in caps.items():
        if not isinstance(v, bool):
            raise _err(f"capabilities.{c} must be true or false, not {shown(v)}", path, key)
    aliases = row.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise _err(f"aliases must be a list of strings, not {shown(aliases)}", path, key)
    for f in (
        "display_name",
        "description",
        "replacement",
        "lifecycle_source",
        "tokenizer",
        "tools_api",
        "verified_at",
    ):
        _expect_str(row.get(f), f, path, key)
    for f in ("retired_tiers", "sources"):
        items = row.get(f) or []
        if not isinstance(items, list) or not all(isinstance(a, str) and a for a in items):
            raise _err(f"{f} must be a list of strings, not {shown(items)}", path, key)
    retirement = row.get("retirement") or "refused"
    _expect_str(retirement, "retirement", path, key)
    for f in ("source", "as_of", "note", "promotion_source"):
        _expect_str(prices.get(f), f"prices.{f}", path, key)
    try:
        pricing = Pricing(**{f: prices.get(f) for f in _PRICE_FIELDS})

        def media(side: str) -> frozenset[MediaType]:
            items = mods.get(side)
            if items is None:
                return frozenset({MediaType.TEXT})
            if not isinstance(items, list):
                raise ConfigurationError(f"modalities.{side} must be a list, not {shown(items)}")
            return frozenset(MediaType.parse(m, where=f"modalities.{side}: ") for m in items)

        in_mods = media("input")
        cap_kwargs = {_CAP_KEYS[k]: v for k, v in caps.items()}
        if "vision" not in caps and MediaType.IMAGE in in_mods:
            cap_kwargs["supports_vision"] = True
        capabilities = LLMCapabilities(
            max_context_window=row.get("context_window"),
            max_output_tokens=row.get("max_output_tokens"),
            input_modalities=in_mods,
            output_modalities=media("output"),
            pricing=pricing,
            **cap_kwargs,
        )
        return LLMProfile(
            price_schedule=schedule_from_list(row.get("price_schedule"), prices),
            price_windows=windows_from_list(row.get("price_windows")),
            retirement=retirement,
            retired_tiers=tuple(row.get("retired_tiers") or ()),
            rejected_params=rules_from_rows(row.get("rejected_params")),
            tools_api=row.get("tools_api"),
            verified_at=row.get("verified_at"),
            sources=tuple(row.get("sources") or ()),
            reasoning=ReasoningMap.of_row(row.get("reasoning")),
            provider=row["provider"],
            name=row["model"],
            capabilities=capabilities,
            family=ModelFamily.parse(row.get("family") or "other"),
            aliases=tuple(aliases),
            display_name=row.get("display_name"),
            description=row.get("description"),
            release_date=row.get("release_date"),
            deprecation_date=row.get("deprecation_date"),
            shutdown_date=row.get("shutdown_date"),
            replacement=row.get("replacement"),
            lifecycle_source=row.get("lifecycle_source"),
            tokenizer=row.get("tokenizer"),
            origin=origin,
        )
    except ConfigFileError:
        raise
    except ConfigurationError as exc:
        msg = exc.message.removeprefix(f"model {label}: ")
        raise _err(msg, path, key) from None


def _rule_row(r: ParamRule) -> dict[str, Any]:
    row = {f.name: getattr(r, f.name) for f in dataclasses.fields(ParamRule)}
    row["accepts"] = list(r.accepts)
    return row


def _iso(d: date | None) -> str | None:
    return None if d is None else d.isoformat()


def profile_to_row(p: LLMProfile) -> dict[str, Any]:
    """The row form of a profile (inverse of :func:`profile_from_row`)."""
    c = p.capabilities
    pr = c.pricing
    row: dict[str, Any] = {
        "provider": p.provider,
        "model": p.name,
        "aliases": list(p.aliases),
        "family": p.family.value,
        "display_name": p.display_name,
        "description": p.description,
        "context_window": c.max_context_window,
        "max_output_tokens": c.max_output_tokens,
        "prices": {f: getattr(pr, f) for f in _PRICE_FIELDS},
        "capabilities": {k: getattr(c, attr) for k, attr in _CAP_KEYS.items()},
        "modalities": {
            "input": sorted(m.value for m in c.input_modalities),
            "output": sorted(m.value for m in c.output_modalities),
        },
        "release_date": _iso(p.release_date),
        "deprecation_date": _iso(p.deprecation_date),
        "shutdown_date": _iso(p.shutdown_date),
        "replacement": p.replacement,
        "lifecycle_source": p.lifecycle_source,
        "tokenizer": p.tokenizer,
        "price_schedule": [period_row(x) for x in p.price_schedule],
        "price_windows": [window_row(w) for w in p.price_windows],
        "retirement": p.retirement,
        "retired_tiers": list(p.retired_tiers),
        "rejected_params": [_rule_row(r) for r in p.rejected_params],
        "tools_api": p.tools_api,
        "verified_at": _iso(p.verified_at),
        "sources": list(p.sources),
        "reasoning": None if p.reasoning is None else p.reasoning.to_row(),
    }
    return row


def merge_rows(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` wins field by field; the ``prices``, ``capabilities`` and ``modalities``
    tables are merged one level deep (a user file may change one price of a bundled model)."""
    out = dict(base)
    for k, v in override.items():
        if k in ("prices", "capabilities", "modalities") and isinstance(v, Mapping):
            inner = out.get(k)
            out[k] = {**(inner if isinstance(inner, Mapping) else {}), **v}
        else:
            out[k] = v
    return out


# --------------------------------------------------------------------------- documents


def _document(data: Any, path: str | None) -> tuple[dict[str, Any], list[Any]]:
    if isinstance(data, list):  # a bare list of rows
        return {"schema_version": SCHEMA_VERSION}, data
    if not isinstance(data, Mapping):
        raise _err(
            f"a catalog must be an object with a 'models' list, not {type(data).__name__}", path
        )
    unknown = set(data) - _DOC_KEYS
    if unknown:
        raise _err(
            f"unknown top-level field(s) {', '.join(sorted(unknown))}; known: "
            f"{', '.join(sorted(_DOC_KEYS))}",
            path,
        )
    version = data.get("schema_version", SCHEMA_VERSION)
    if version not in READABLE_VERSIONS:
        raise _err(
            f"schema_version {shown(version)} is not supported (this llmrelay reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}): a newer llmrelay wrote it; upgrade "
            "llmrelay, or remove the newer fields and set schema_version to 3",
            path,
            "schema_version",
        )
    rows = data.get("models")
    if not isinstance(rows, list):
        raise _err(f"'models' must be a list of model rows, not {shown(rows)}", path, "models")
    meta = {k: v for k, v in data.items() if k != "models"}
    return meta, rows


def load_document(
    data: Any, *, path: str | None = None, origin: str = "user"
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validate a parsed document; returns its metadata and its rows (each checked by
    building its profile). Raises ``ConfigFileError`` on the first problem."""
    meta, rows = _document(data, path)
    seen: set[tuple[str, str]] = set()
    for i, row in enumerate(rows):
        p = profile_from_row(row, path=path, index=i, origin=origin)
        if (p.provider, p.name) in seen:
            raise _err(f"{p.id} is listed twice", path, f"models[{i}]")
        seen.add((p.provider, p.name))
    return meta, [dict(r) for r in rows]


def _read(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise _err(f"cannot read the catalog file: {exc.strerror or exc}", str(path)) from None


Loaded = tuple[dict[str, Any], list[dict[str, Any]]]


def load_json(path: str | os.PathLike[str], *, origin: str = "user") -> Loaded:
    raw = _read(path)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _err(f"not valid JSON: {exc}", str(path)) from None
    return load_document(data, path=str(path), origin=origin)


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:
        raise ConfigurationError(
            "reading or writing YAML catalogs needs PyYAML: pip install llmrelay[yaml]"
        ) from None
    return yaml


def load_yaml(path: str | os.PathLike[str], *, origin: str = "user") -> Loaded:
    yaml = _yaml()
    raw = _read(path)
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise _err(f"not valid YAML: {exc}", str(path)) from None
    return load_document(_dates_to_str(data), path=str(path), origin=origin)


def _dates_to_str(obj: Any) -> Any:
    """YAML turns 2025-04-14 into a date; rows hold ISO strings."""
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, dict):
        return {k: _dates_to_str(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_dates_to_str(v) for v in obj]
    return obj


def _doc(meta: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, **meta, "models": [dict(r) for r in rows]}


def dump_json(
    path: str | os.PathLike[str], meta: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]
) -> None:
    Path(path).write_bytes(orjson.dumps(_doc(meta, rows), option=orjson.OPT_INDENT_2) + b"\n")


def dump_yaml(
    path: str | os.PathLike[str], meta: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]
) -> None:
    yaml = _yaml()
    Path(path).write_text(yaml.safe_dump(_doc(meta, rows), sort_keys=False), "utf-8")


_SQL_SCHEMA = """
CREATE TABLE IF NOT EXISTS catalog_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS catalog_models (
    position INTEGER NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    context_window INTEGER,
    input_per_mtok REAL,
    output_per_mtok REAL,
    shutdown_date TEXT,
    row_json TEXT NOT NULL,
    PRIMARY KEY (provider, model)
);
"""


def dump_sqlite(
    path: str | os.PathLike[str], meta: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]
) -> None:
    """Write the catalog to a SQLite database (tables ``catalog_meta``, ``catalog_models``;
    one JSON row per model plus a few columns for SQL queries). Replaces what was there."""
    con = sqlite3.connect(str(path))
    try:
        with con:
            con.executescript(_SQL_SCHEMA)
            con.execute("DELETE FROM catalog_meta")
            con.execute("DELETE FROM catalog_models")
            full = {"schema_version": SCHEMA_VERSION, **meta}
            con.executemany(
                "INSERT INTO catalog_meta (key, value) VALUES (?, ?)",
                [(k, orjson.dumps(v).decode()) for k, v in full.items()],
            )
            con.executemany(
                "INSERT INTO catalog_models VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        i,
                        r["provider"],
                        r["model"],
                        r.get("context_window"),
                        (r.get("prices") or {}).get("input"),
                        (r.get("prices") or {}).get("output"),
                        r.get("shutdown_date"),
                        orjson.dumps(r).decode(),
                    )
                    for i, r in enumerate(rows)
                ],
            )
    except sqlite3.Error as exc:
        raise _err(f"cannot write the catalog database: {exc}", str(path)) from None
    finally:
        con.close()


def load_sqlite(path: str | os.PathLike[str], *, origin: str = "user") -> Loaded:
    p = str(path)
    if not Path(p).is_file():
        raise _err("the catalog database does not exist", p)
    try:
        con = sqlite3.connect(f"file:{Path(p).as_posix()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise _err(f"cannot open the catalog database: {exc}", p) from None
    try:
        meta = {k: orjson.loads(v) for k, v in con.execute("SELECT key, value FROM catalog_meta")}
        rows = [
            orjson.loads(r)
            for (r,) in con.execute("SELECT row_json FROM catalog_models ORDER BY position")
        ]
    except (sqlite3.Error, orjson.JSONDecodeError) as exc:
        raise _err(
            f"not a llmrelay catalog database ({exc}); write one with LLMRegistry.save()", p
        ) from None
    finally:
        con.close()
    return load_document({**meta, "models": rows}, path=p, origin=origin)


Loader = Callable[..., Loaded]
Dumper = Callable[[str | os.PathLike[str], Mapping[str, Any], Iterable[Mapping[str, Any]]], None]

#: Each file format's reader and writer.
_CODECS: dict[str, tuple[Loader, Dumper]] = {
    "json": (load_json, dump_json),
    "yaml": (load_yaml, dump_yaml),
    "sqlite": (load_sqlite, dump_sqlite),
}


def codec(path: str | os.PathLike[str], format: str | None = None) -> tuple[Loader, Dumper]:
    """The reader and writer of ``format`` (else of ``path``'s extension)."""
    fmt = format or format_for(path)
    found = _CODECS.get(fmt)
    if found is None:
        raise ConfigurationError(f"unknown catalog format {shown(fmt)}; use json, yaml or sqlite")
    return found


def format_for(path: str | os.PathLike[str]) -> str:
    """``json``, ``yaml`` or ``sqlite`` from the file extension."""
    ext = Path(path).suffix.lower()
    if ext == ".json":
        return "json"
    if ext in (".yaml", ".yml"):
        return "yaml"
    if ext in (".db", ".sqlite", ".sqlite3"):
        return "sqlite"
    raise ConfigurationError(
        f"cannot tell the catalog format of {str(path)!r} from its extension; use .json, "
        ".yaml/.yml or .db/.sqlite/.sqlite3"
    )
