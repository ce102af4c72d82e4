"""Structured output: ``response_model=<pydantic model>`` in, a validated instance out.

When a call has a ``response_model``, the engine (``Engine.complete_messages``) uses
:func:`prepare` to ask the provider for JSON matching the model's JSON schema through the
wire-neutral request
``params.response_format = {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``
(each adapter translates it natively: OpenAI passes it through, Anthropic forces a tool, Gemini
sets ``responseJsonSchema``), validates ``Response.text`` with ``model_validate_json`` and, when
validation fails, re-asks the same deployment with the validation errors (:func:`reask_message`,
``max_reasks`` times, default 1) -- all inside one logical call, so cost, budget, cache and the
request log see it once. The usage of every attempt is summed into ``Response.total_usage``;
the validated object is ``Response.object``.

The schema is made compatible with OpenAI's strict mode when possible (every object closed with
``additionalProperties: false`` and all its properties required, ``$ref`` with sibling keys
inlined, ``oneOf`` as ``anyOf``, keywords strict mode rejects moved into the description and
enforced by validation instead). Schemas that cannot be strict -- free-form dicts, ``Any``
values, tuples, a non-object root, ``not``/``if``/multi-part ``allOf`` -- are sent unchanged with
``strict: false``. The result is cached per model class (:func:`structured_spec`).
"""

from __future__ import annotations

import copy
import dataclasses
import re
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import InvalidRequestError, StructuredOutputError, shown
from ..types import GenerationParams, Message, Response, Usage

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError


__all__ = [
    "StructuredSpec",
    "failure",
    "parse_structured",
    "prepare",
    "reask_message",
    "structured_spec",
    "validates",
]

#: Keywords strict mode rejects that only constrain values: moved into the description (the
#: model still reads them) and enforced by pydantic validation (and a re-ask) instead.
_CONSTRAINT_KEYS = (
    "minLength",
    "maxLength",
    "minProperties",
    "maxProperties",
    "uniqueItems",
    "contains",
    "minContains",
    "maxContains",
)
#: Keywords that change the shape of the data in ways strict mode cannot express.
_STRUCTURAL_KEYS = (
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "patternProperties",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "prefixItems",
)
_STRICT_FORMATS = frozenset(
    ("date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid")
)
_TYPED_KEYS = ("type", "$ref", "anyOf", "oneOf", "allOf", "enum", "const")
_LOOKAROUND = re.compile(r"(?<!\\)\(\?(?:=|!|<=|<!)")
_MAX_OBJECT_DEPTH = 10
_NAME_BAD_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n(.*?)\r?\n?[ \t]*```", re.DOTALL)


@dataclass(frozen=True, slots=True)
class StructuredSpec:
    """What is sent for one response model (built once per class and cached).

    ``response_format`` is shared by every call with this model: do not mutate it.
    """

    model: type[BaseModel]
    name: str
    schema: dict[str, Any]
    strict: bool
    #: Why the schema could not be made strict (None when it is strict).
    not_strict_reason: str | None
    response_format: dict[str, Any]


_SPECS: weakref.WeakKeyDictionary[type, StructuredSpec] = weakref.WeakKeyDictionary()


def structured_spec(response_model: Any) -> StructuredSpec:
    """The JSON-schema request for ``response_model`` (a pydantic ``BaseModel`` subclass).

    Raises ``InvalidRequestError`` for anything else, saying what to pass.
    """
    spec = _SPECS.get(response_model) if isinstance(response_model, type) else None
    if spec is not None:
        return spec
    model = _check_model(response_model)
    from pydantic.errors import PydanticInvalidForJsonSchema, PydanticUserError

    try:
        original = model.model_json_schema()
    except (PydanticInvalidForJsonSchema, PydanticUserError) as exc:
        raise InvalidRequestError(
            f"response_model {model.__name__} has no JSON schema: {exc}. Use JSON-compatible "
            "field types (str, int, float, bool, lists, nested models, enums, ...)"
        ) from exc
    try:
        schema = make_strict(copy.deepcopy(original))
        strict, reason = True, None
    except _NotStrict as exc:
        schema, strict, reason = original, False, exc.reason
    name = _NAME_BAD_CHARS.sub("_", model.__name__)[:64] or "response"
    spec = StructuredSpec(
        model=model,
        name=name,
        schema=schema,
        strict=strict,
        not_strict_reason=reason,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": strict},
        },
    )
    _SPECS[model] = spec
    return spec


def _check_model(response_model: Any) -> type[BaseModel]:
    from pydantic import BaseModel

    if isinstance(response_model, type) and issubclass(response_model, BaseModel):
        if response_model is BaseModel:
            raise InvalidRequestError(
                "response_model is pydantic.BaseModel itself; pass your own subclass with "
                "the fields you want, e.g. class Answer(BaseModel): text: str"
            )
        return response_model
    if isinstance(response_model, BaseModel):
        raise InvalidRequestError(
            f"response_model must be a pydantic model class, not an instance of "
            f"{type(response_model).__name__}; pass response_model={type(response_model).__name__}"
        )
    what = response_model.__name__ if isinstance(response_model, type) else shown(response_model)
    raise InvalidRequestError(
        f"response_model must be a pydantic BaseModel subclass, not {what[:80]}; define one, "
        "e.g. class Answer(BaseModel): text: str, and pass response_model=Answer"
    )


# --------------------------------------------------------------------------- strict schemas


class _NotStrict(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def make_strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite a JSON schema (in place) for OpenAI strict mode; raise ``_NotStrict`` if it
    cannot be done."""
    out = _walk(schema, schema, (), 0)
    types = out.get("type")
    if types != "object" or "anyOf" in out:
        raise _NotStrict("the root of the schema is not an object")
    return out


def _walk(node: Any, root: dict[str, Any], stack: tuple[str, ...], depth: int) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise _NotStrict(f"a schema node is {node!r}, not an object")
    for key in ("$defs", "definitions"):
        defs = node.get(key)
        if isinstance(defs, dict):
            node[key] = {k: _walk(v, root, stack, 0) for k, v in defs.items()}
    ref = node.get("$ref")
    if ref is not None and len(node) > 1:
        return _inline_ref(node, ref, root, stack, depth)
    for key in _STRUCTURAL_KEYS:
        if key in node:
            raise _NotStrict(f"strict mode cannot express {key!r}")
    node.pop("discriminator", None)
    _move_constraints(node)
    all_of = node.get("allOf")
    if all_of is not None:
        if not isinstance(all_of, list) or len(all_of) != 1:
            raise _NotStrict("strict mode cannot express 'allOf' with several parts")
        part = node.pop("allOf")[0]
        merged = {**(part if isinstance(part, dict) else {}), **node}
        return _walk(merged, root, stack, depth)
    if "oneOf" in node:
        if "anyOf" in node:
            raise _NotStrict("a node with both 'oneOf' and 'anyOf'")
        node["anyOf"] = node.pop("oneOf")
    if "anyOf" in node:
        variants = node["anyOf"]
        if not isinstance(variants, list) or not variants:
            raise _NotStrict("an empty 'anyOf'")
        node["anyOf"] = [_walk(v, root, stack, depth) for v in variants]
    if not any(k in node for k in _TYPED_KEYS):
        raise _NotStrict("a value of any type (typing.Any or an untyped field)")
    types = node.get("type")
    type_list = types if isinstance(types, list) else [types]
    if "object" in type_list:
        _close_object(node, root, stack, depth)
    if "array" in type_list:
        items = node.get("items")
        if not isinstance(items, dict) or not any(k in items for k in _TYPED_KEYS):
            raise _NotStrict("an array whose items have no type")
        node["items"] = _walk(items, root, stack, depth)
    return node


def _inline_ref(
    node: dict[str, Any], ref: Any, root: dict[str, Any], stack: tuple[str, ...], depth: int
) -> dict[str, Any]:
    """Strict mode allows no keys next to ``$ref``: inline the definition (siblings win)."""
    if not isinstance(ref, str) or not ref.startswith("#"):
        raise _NotStrict(f"a $ref that is not local: {ref!r}")
    rest = {k: v for k, v in node.items() if k != "$ref"}
    if ref in stack:
        # Recursive: inlining would not end. A lone $ref inside anyOf may carry siblings.
        rest["anyOf"] = [{"$ref": ref}]
        return _walk(rest, root, stack, depth)
    target: Any = root
    for part in ref[1:].split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, dict) or part not in target:
            raise _NotStrict(f"a $ref that does not resolve: {ref!r}")
        target = target[part]
    if not isinstance(target, dict):
        raise _NotStrict(f"a $ref that does not resolve to a schema: {ref!r}")
    resolved = copy.deepcopy(target)
    if target is root:
        resolved.pop("$defs", None)
        resolved.pop("definitions", None)
    return _walk({**resolved, **rest}, root, (*stack, ref), depth)


def _close_object(
    node: dict[str, Any], root: dict[str, Any], stack: tuple[str, ...], depth: int
) -> None:
    extra = node.get("additionalProperties")
    if extra is not None and extra is not False:
        raise _NotStrict("an object with free-form keys (a dict field)")
    if depth >= _MAX_OBJECT_DEPTH:
        raise _NotStrict(f"objects nested deeper than {_MAX_OBJECT_DEPTH} levels")
    props = node.get("properties") or {}
    if not isinstance(props, dict):
        raise _NotStrict("'properties' is not an object")
    node["properties"] = {k: _walk(v, root, stack, depth + 1) for k, v in props.items()}
    node["required"] = list(props)
    node["additionalProperties"] = False


def _move_constraints(node: dict[str, Any]) -> None:
    """Drop ``default: None``; move what strict mode rejects into the description."""
    notes: list[str] = []
    if "default" in node:
        default = node.pop("default")
        if default is not None:
            notes.append(f"default: {_short_json(default)}")
    for key in _CONSTRAINT_KEYS:
        if key in node:
            notes.append(f"{key}: {_short_json(node.pop(key))}")
    fmt = node.get("format")
    if fmt is not None and fmt not in _STRICT_FORMATS:
        notes.append(f"format: {node.pop('format')}")
    pattern = node.get("pattern")
    if isinstance(pattern, str) and _LOOKAROUND.search(pattern):
        notes.append(f"pattern: {node.pop('pattern')}")
    if notes:
        desc = node.get("description")
        text = "; ".join(notes)
        node["description"] = f"{desc} ({text})" if desc else text


def _short_json(value: Any) -> str:
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


# --------------------------------------------------------------------------- validation


def extract_json(text: str) -> str:
    """The JSON in a reply: the text itself, or the inside of a Markdown code fence."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        return stripped
    m = _FENCE.search(stripped)
    return m.group(1).strip() if m else stripped


def parse_structured(model: type[BaseModel], text: str) -> BaseModel:
    """Validate a reply into ``model`` (raises ``pydantic.ValidationError``)."""
    return model.model_validate_json(extract_json(text))


def validates(spec: StructuredSpec, resp: Response) -> bool:
    """Does a cached answer still validate into the response model? (Sets ``resp.object``.)"""
    from pydantic import ValidationError

    try:
        resp.object = parse_structured(spec.model, resp.text)
    except ValidationError:
        return False
    return True


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


def describe_errors(exc: ValidationError, limit: int = 20) -> str:
    """One line per validation error: where, what, and what was given."""
    lines = []
    errors = exc.errors(include_url=False)
    for err in errors[:limit]:
        line = f"- {_loc(tuple(err.get('loc', ())))}: {err.get('msg', 'invalid')}"
        if err.get("type") not in ("json_invalid", "missing") and "input" in err:
            line += f" (got {_short_json(err['input'])[:100]})"
        lines.append(line)
    if len(errors) > limit:
        lines.append(f"- ... and {len(errors) - limit} more")
    return "\n".join(lines)


def reask_message(spec: StructuredSpec, exc: ValidationError, truncated: bool = False) -> Message:
    """The user message that asks the model to correct an answer that did not validate."""
    n = exc.error_count()
    cut = (
        "It was cut off at the output token limit: keep the answer shorter.\n" if truncated else ""
    )
    return Message(
        "user",
        f"Your previous answer is not valid for the required JSON schema {spec.name!r} "
        f"({n} validation error{'s' if n != 1 else ''}):\n{describe_errors(exc)}\n{cut}"
        "Reply again with only the corrected JSON object that matches the schema, "
        "with no other text.",
    )


# --------------------------------------------------------------------------- the call


def _check_reasks(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRequestError(
            f"max_reasks must be a whole number >= 0 (0 disables re-asking), not {value!r}"
        )
    return value


def prepare(
    response_model: Any, params: GenerationParams, max_reasks: Any
) -> tuple[StructuredSpec, GenerationParams]:
    """Check the structured-output arguments and ask the provider for JSON of the schema."""
    spec = structured_spec(response_model)
    _check_reasks(max_reasks)
    if params.response_format is not None:
        raise InvalidRequestError(
            "pass either response_model (validated structured output) or response_format "
            "(raw JSON mode), not both"
        )
    return spec, dataclasses.replace(params, response_format=spec.response_format)


def failure(
    spec: StructuredSpec, last: Response, exc: ValidationError, attempts: int, total: Usage
) -> StructuredOutputError:
    """The error for output that never validated, after ``attempts`` tries."""
    return StructuredOutputError(
        f"the model's output did not validate into {spec.model.__name__} after {attempts} "
        f"attempt{'s' if attempts != 1 else ''}:\n{describe_errors(exc, limit=5)}",
        raw=last.text,
        validation_error=exc,
        total_usage=total,
        provider=last.provider or None,
        model=last.model or None,
        request_id=last.request_id,
    )


def next_reask(
    spec: StructuredSpec,
    resp: Response,
    exc: ValidationError,
    n: int,
    max_reasks: int,
    trace: list[Any],
    total: Usage,
    msgs: list[Message],
) -> list[Message]:
    """After the ``n``-th answer (from 0) did not validate: the messages of the re-ask (the
    answer, then what was wrong), or raise :func:`failure` when no re-ask is left. Notes the
    decision on the last trace entry. Shared by plain and streamed calls."""
    left = n < max_reasks
    trace[-1].reason = (
        f"output did not validate into {spec.model.__name__} ({exc.error_count()} "
        f"errors); {'re-asking' if left else 'no re-asks left'}"
    )
    if not left:
        err = failure(spec, resp, exc, n + 1, total)
        err.trace = trace
        raise err from None
    return [
        *msgs,
        Message("assistant", resp.text or "(no output)"),
        reask_message(spec, exc, truncated=resp.finish_reason == "length"),
    ]
