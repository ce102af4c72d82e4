"""Generate a small value that satisfies a JSON schema (for fakes and the ``test`` provider).

Covers what pydantic emits: objects, arrays, strings (with enum/const/format), numbers,
integers, booleans, null, ``anyOf``/``oneOf``/``allOf``, ``$ref`` into ``$defs``/``definitions``
and ``minItems``/``minimum``/``minLength`` bounds.
"""

from __future__ import annotations

from typing import Any

__all__ = ["instance_from_schema"]

_FORMATS = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00",
    "email": "user@example.com",
    "uri": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def instance_from_schema(
    schema: dict[str, Any], root: dict[str, Any] | None = None, depth: int = 0
) -> Any:
    root = root if root is not None else schema
    if depth > 20:
        return None
    if "$ref" in schema:
        ref = schema["$ref"]
        target: Any = root
        for part in ref.lstrip("#/").split("/"):
            if part:
                target = target.get(part, {}) if isinstance(target, dict) else {}
        return instance_from_schema(target, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return instance_from_schema(options[0], root, depth + 1)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            v = instance_from_schema(part, root, depth + 1)
            if isinstance(v, dict):
                merged.update(v)
        return merged
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    if t == "object" or (t is None and "properties" in schema):
        props = schema.get("properties", {})
        return {k: instance_from_schema(v, root, depth + 1) for k, v in props.items()}
    if t == "array":
        items = schema.get("items", {})
        n = max(1, int(schema.get("minItems", 1)))
        return [instance_from_schema(items, root, depth + 1) for _ in range(n)]
    if t == "string":
        fmt = schema.get("format")
        if fmt in _FORMATS:
            return _FORMATS[fmt]
        s = "example"
        min_len = int(schema.get("minLength", 0))
        return s + "x" * max(0, min_len - len(s))
    if t == "integer":
        lo = schema.get("minimum", schema.get("exclusiveMinimum"))
        v = 42
        if lo is not None and v < lo:
            v = int(lo) + 1
        hi = schema.get("maximum")
        if hi is not None and v > hi:
            v = int(hi)
        return v
    if t == "number":
        lo = schema.get("minimum")
        v = 4.2
        if lo is not None and v < lo:
            v = float(lo) + 1
        hi = schema.get("maximum")
        if hi is not None and v > hi:
            v = float(hi)
        return v
    if t == "boolean":
        return True
    if t == "null":
        return None
    return {}
