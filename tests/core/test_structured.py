"""Structured output: strict JSON schemas, validation into the model, re-asks, usage accounting.

End to end against the fake's OpenAI dialect (which answers ``json_schema`` requests with an
instance of the schema) and against ``TestModel`` scripted replies for the re-ask paths.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar

import pydantic
import pytest
from pydantic import BaseModel, Field

import llmrelay
from llmrelay import InvalidRequestError, Response, StructuredOutputError, TestModel, Usage
from llmrelay.core.structured import extract_json, structured_spec
from llmrelay.testing.fake import FakeUpstream, Reply

from ..conftest import CANARY_KEY

MODEL = "openai/gpt-4.1-mini"


class UserProfile(BaseModel):
    name: str
    age: int
    interests: list[str]


VALID = '{"name": "Ada", "age": 36, "interests": ["math"]}'


class Color(StrEnum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    street: str
    city: str
    postcode: str | None = None


class Pet(BaseModel):
    kind: Literal["cat", "dog"]
    name: str


class Person(BaseModel):
    """Nested models, lists, optional fields, enums, defaults and descriptions."""

    name: str = Field(description="full name", min_length=1)
    favourite: Color
    home: Address = Field(description="where they live")
    previous: list[Address]
    work: Address | None = None
    pets: list[Pet] = []
    score: float = 0.5
    nickname: str | None = None


class Node(BaseModel):
    value: int
    children: list[Node] = []
    parent: Node | None = Field(None, description="the parent node")


@pytest.fixture
def client() -> llmrelay.Client:
    return llmrelay.Client()


def assert_strict(schema: Any, path: str = "#") -> None:
    """Every object is closed and requires all its properties; no construct strict mode rejects."""
    if isinstance(schema, list):
        for i, s in enumerate(schema):
            assert_strict(s, f"{path}/{i}")
        return
    if not isinstance(schema, dict):
        return
    assert "default" not in schema, path
    assert "oneOf" not in schema, path
    assert "allOf" not in schema, path
    assert "$ref" not in schema or len(schema) == 1, f"$ref with siblings at {path}"
    assert "minLength" not in schema, path
    if schema.get("type") == "object":
        assert schema["additionalProperties"] is False, path
        assert schema["required"] == list(schema["properties"]), path
    for key, value in schema.items():
        if key in ("properties", "$defs"):
            for name, sub in value.items():
                assert_strict(sub, f"{path}/{key}/{name}")
        elif key in ("items", "anyOf"):
            assert_strict(value, f"{path}/{key}")


# --------------------------------------------------------------------------- OpenAI dialect


async def test_openai_json_schema_request_and_validated_object(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    r = await client.achat(
        MODEL,
        "Tell me about a user",
        api_key=CANARY_KEY,
        base_url=fake.openai_base_url,
        response_model=UserProfile,
    )
    assert isinstance(r.object, UserProfile)
    assert r.object == UserProfile.model_validate_json(r.text)
    assert r.total_usage == r.usage
    assert r.usage.output_tokens > 0
    assert len(fake.requests) == 1
    rf = fake.requests[-1].body["response_format"]
    assert rf["type"] == "json_schema"
    assert rf["json_schema"]["name"] == "UserProfile"
    assert rf["json_schema"]["strict"] is True
    schema = rf["json_schema"]["schema"]
    assert schema["required"] == ["name", "age", "interests"]
    assert schema["additionalProperties"] is False
    await client.aclose()


async def test_openai_complex_model_round_trip(fake: FakeUpstream, client: llmrelay.Client) -> None:
    r = await client.achat(
        MODEL, "a person", api_key=CANARY_KEY, base_url=fake.openai_base_url, response_model=Person
    )
    assert isinstance(r.object, Person)
    assert r.object.favourite is Color.RED
    assert isinstance(r.object.home, Address)
    sent = fake.requests[-1].body["response_format"]["json_schema"]
    assert sent["strict"] is True
    assert_strict(sent["schema"])
    await client.aclose()


async def test_openai_reask_sends_the_bad_answer_and_the_errors(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    fake.push(Reply.ok('{"name": "Ada", "age": "thirty"}', input_tokens=11, output_tokens=7))
    r = await client.achat(
        MODEL,
        "a user",
        api_key=CANARY_KEY,
        base_url=fake.openai_base_url,
        response_model=UserProfile,
    )
    assert isinstance(r.object, UserProfile)
    assert len(fake.requests) == 2
    msgs = fake.requests[-1].body["messages"]
    assert msgs[-2] == {"role": "assistant", "content": '{"name": "Ada", "age": "thirty"}'}
    assert msgs[-1]["role"] == "user"
    assert "age: Input should be a valid integer" in msgs[-1]["content"]
    assert "interests: Field required" in msgs[-1]["content"]
    assert '"thirty"' in msgs[-1]["content"]
    assert r.total_usage is not None
    assert r.total_usage.input_tokens == 11 + r.usage.input_tokens
    assert r.total_usage.output_tokens == 7 + r.usage.output_tokens
    await client.aclose()


# --------------------------------------------------------------------------- re-asks (TestModel)


async def test_invalid_json_then_valid_succeeds_with_summed_usage(client: llmrelay.Client) -> None:
    model = TestModel(
        [
            Response(text="Sure! Here it is: {name: Ada", usage=Usage(10, 5)),
            Response(text=VALID, usage=Usage(30, 8, cached_tokens=4)),
        ]
    )
    r = await client.achat(model, "who?", response_model=UserProfile)
    assert r.object == UserProfile(name="Ada", age=36, interests=["math"])
    assert r.usage == Usage(30, 8, cached_tokens=4)
    assert r.total_usage == Usage(40, 13, cached_tokens=4)
    assert len(model.calls) == 2
    reask = model.calls[1].messages
    assert [m.role for m in reask] == ["user", "assistant", "user"]
    assert reask[1].content == "Sure! Here it is: {name: Ada"
    assert "Invalid JSON" in reask[2].text()
    assert "'UserProfile'" in reask[2].text()
    assert [a.outcome for a in r.trace] == ["success", "success"]
    assert r.trace[0].reason is not None
    assert "did not validate" in r.trace[0].reason
    # The schema request goes with every attempt.
    for call in model.calls:
        assert call.params.response_format is not None
        assert call.params.response_format["json_schema"]["name"] == "UserProfile"


async def test_wrong_types_then_valid(client: llmrelay.Client) -> None:
    model = TestModel(['{"name": "Ada", "age": "old", "interests": "math"}', VALID])
    r = await client.achat(model, "who?", response_model=UserProfile, system="Be exact.")
    assert r.object.age == 36
    text = model.calls[1].messages[-1].text()
    assert "2 validation errors" in text
    assert "- age: Input should be a valid integer" in text
    assert '(got "old")' in text
    assert "- interests: Input should be a valid array" in text
    assert model.calls[1].messages[0].role == "system"  # the system message stays first


async def test_reask_after_a_truncated_answer_asks_for_a_shorter_one(
    client: llmrelay.Client,
) -> None:
    model = TestModel([Response(text='{"name": "Ada", "age": 3', finish_reason="length"), VALID])
    r = await client.achat(model, "who?", response_model=UserProfile)
    assert r.object.age == 36
    assert "cut off at the output token limit" in model.calls[1].messages[-1].text()


async def test_every_attempt_invalid_raises_structured_output_error(
    client: llmrelay.Client,
) -> None:
    model = TestModel(
        [
            Response(text="no", usage=Usage(3, 1)),
            Response(text='{"name": 1}', usage=Usage(5, 2)),
        ]
    )
    with pytest.raises(StructuredOutputError) as info:
        await client.achat(model, "who?", response_model=UserProfile)
    err = info.value
    assert err.raw == '{"name": 1}'
    assert isinstance(err.validation_error, pydantic.ValidationError)
    assert err.total_usage == Usage(8, 3)
    assert len(err.trace) == 2
    assert all(a.outcome == "success" for a in err.trace)
    assert "no re-asks left" in (err.trace[-1].reason or "")
    assert "did not validate into UserProfile after 2 attempts" in str(err)
    assert err.provider == "test"
    assert err.model == "test-model"
    assert len(model.calls) == 2


async def test_max_reasks_zero_disables_reasking(client: llmrelay.Client) -> None:
    model = TestModel(["not json", VALID])
    with pytest.raises(StructuredOutputError) as info:
        await client.achat(model, "who?", response_model=UserProfile, max_reasks=0)
    assert len(model.calls) == 1
    assert info.value.raw == "not json"
    assert "after 1 attempt:" in str(info.value)


async def test_max_reasks_two_makes_three_attempts(client: llmrelay.Client) -> None:
    model = TestModel(["x", "y", VALID])
    r = await client.achat(model, "who?", response_model=UserProfile, max_reasks=2)
    assert r.object.name == "Ada"
    assert len(model.calls) == 3
    # Each re-ask carries the whole conversation so far.
    assert [m.role for m in model.calls[2].messages] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]


@pytest.mark.parametrize("bad", [-1, True, 1.5, "1"])
async def test_bad_max_reasks_is_rejected_before_any_call(
    client: llmrelay.Client, bad: Any
) -> None:
    model = TestModel([VALID])
    with pytest.raises(InvalidRequestError, match="max_reasks"):
        await client.achat(model, "who?", response_model=UserProfile, max_reasks=bad)
    assert model.calls == []


async def test_fenced_json_is_accepted(client: llmrelay.Client) -> None:
    model = TestModel([f"Here you go:\n```json\n{VALID}\n```\n"])
    r = await client.achat(model, "who?", response_model=UserProfile)
    assert r.object.name == "Ada"
    assert len(model.calls) == 1


def test_extract_json() -> None:
    assert extract_json('  {"a": 1} ') == '{"a": 1}'
    assert extract_json('```\n{"a": 1}\n```') == '{"a": 1}'
    assert extract_json("```JSON\r\n[1, 2]\r\n```") == "[1, 2]"
    assert extract_json("plain text") == "plain text"


async def test_provider_error_during_a_reask_keeps_the_whole_trace(
    client: llmrelay.Client,
) -> None:
    model = TestModel(["not json", llmrelay.AuthenticationError("key revoked", status=401)])
    with pytest.raises(llmrelay.AuthenticationError) as info:
        await client.achat(model, "who?", response_model=UserProfile)
    assert [a.outcome for a in info.value.trace] == ["success", "error"]


def test_sync_chat_with_response_model() -> None:
    r = llmrelay.Client().chat(TestModel([VALID]), "who?", response_model=UserProfile)
    assert isinstance(r.object, UserProfile)


async def test_default_test_model_answers_complex_schemas(client: llmrelay.Client) -> None:
    model = TestModel()  # answers structured requests with an instance of the schema
    r = await client.achat(model, "a person", response_model=Person)
    assert isinstance(r.object, Person)
    assert r.object.pets
    assert isinstance(r.object.pets[0], Pet)


# --------------------------------------------------------------------------- bad response models


class NotAModel:
    name: str


@pytest.mark.parametrize(
    ("bad", "hint"),
    [
        (dict, "pydantic BaseModel subclass, not dict"),
        (NotAModel, "not NotAModel"),
        ("UserProfile", "not 'UserProfile'"),
        (UserProfile(name="a", age=1, interests=[]), "not an instance of UserProfile"),
        (BaseModel, "pydantic.BaseModel itself"),
    ],
)
async def test_response_model_must_be_a_pydantic_model_class(
    client: llmrelay.Client, bad: Any, hint: str
) -> None:
    model = TestModel([VALID])
    with pytest.raises(InvalidRequestError, match="response_model") as info:
        await client.achat(model, "who?", response_model=bad)
    assert hint in str(info.value)
    assert model.calls == []


async def test_response_model_and_response_format_together_is_an_error(
    client: llmrelay.Client,
) -> None:
    with pytest.raises(InvalidRequestError, match="not both"):
        await client.achat(TestModel(), "hi", response_model=UserProfile, response_format="json")


# --------------------------------------------------------------------------- schemas


def test_strict_schema_for_nested_models_lists_optionals_and_enums() -> None:
    spec = structured_spec(Person)
    assert spec.strict is True
    assert spec.not_strict_reason is None
    assert spec.response_format == {
        "type": "json_schema",
        "json_schema": {"name": "Person", "schema": spec.schema, "strict": True},
    }
    schema = spec.schema
    assert_strict(schema)
    props = schema["properties"]
    assert schema["required"] == list(Person.model_fields)
    # default None dropped; the nullable type remains
    assert props["nickname"] == {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "title": "Nickname",
    }
    # other defaults and rejected keywords become hints in the description
    assert props["score"]["description"] == "default: 0.5"
    assert props["name"]["description"] == "full name (minLength: 1)"
    # a $ref with a sibling description is inlined (and closed)
    assert props["home"]["description"] == "where they live"
    assert props["home"]["properties"]["street"] == {"title": "Street", "type": "string"}
    assert schema["$defs"]["Color"]["enum"] == ["red", "green"]
    assert props["favourite"] == {"$ref": "#/$defs/Color"}


def test_strict_schema_for_a_recursive_model() -> None:
    spec = structured_spec(Node)
    assert spec.strict is True
    schema = spec.schema
    assert schema["type"] == "object"
    assert "$ref" not in schema
    assert_strict(schema)
    assert schema["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert schema["properties"]["parent"]["description"] == "the parent node"


def test_discriminated_union_becomes_any_of() -> None:
    class Cat(BaseModel):
        kind: Literal["cat"]
        lives: int

    class Dog(BaseModel):
        kind: Literal["dog"]
        good: bool

    class Owner(BaseModel):
        pet: Cat | Dog = Field(discriminator="kind")

    spec = structured_spec(Owner)
    assert spec.strict is True
    pet = spec.schema["properties"]["pet"]
    assert "anyOf" in pet
    assert "oneOf" not in pet
    assert "discriminator" not in pet
    assert_strict(spec.schema)


class WithDict(BaseModel):
    counts: dict[str, int]


class WithAny(BaseModel):
    payload: Any


class WithTuple(BaseModel):
    point: tuple[int, int]


class Items(pydantic.RootModel[list[int]]):
    pass


@pytest.mark.parametrize(
    ("model", "reason", "answer"),
    [
        (WithDict, "free-form keys", '{"counts": {"a": 1}}'),
        (WithAny, "any type", '{"payload": [1]}'),
        (WithTuple, "prefixItems", '{"point": [1, 2]}'),
        (Items, "root of the schema is not an object", "[1, 2]"),
    ],
)
async def test_schemas_that_cannot_be_strict_are_sent_unchanged_with_strict_false(
    client: llmrelay.Client, model: type[BaseModel], reason: str, answer: str
) -> None:
    spec = structured_spec(model)
    assert spec.strict is False
    assert spec.not_strict_reason is not None
    assert reason in spec.not_strict_reason
    assert spec.schema == model.model_json_schema()
    double = TestModel([answer])
    r = await client.achat(double, "hi", response_model=model)
    assert r.object == model.model_validate_json(answer)
    rf = double.calls[0].params.response_format
    assert rf is not None
    assert rf["json_schema"]["strict"] is False


def test_schema_is_built_once_per_model_class() -> None:
    calls = []

    class Counted(BaseModel):
        x: int

        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            calls.append(1)
            return super().model_json_schema(*args, **kwargs)

    first = structured_spec(Counted)
    assert structured_spec(Counted) is first
    assert len(calls) == 1


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]


def test_schema_name_is_sanitised() -> None:
    assert structured_spec(Page[int]).name == "Page_int_"
    long = pydantic.create_model("A" * 80, x=(int, ...))
    assert structured_spec(long).name == "A" * 64


def test_model_without_a_json_schema_is_an_invalid_request() -> None:
    class HasCallable(BaseModel):
        fn: Any = Field(default=None)
        cb: pydantic.InstanceOf[NotAModel]

    with pytest.raises(InvalidRequestError, match="has no JSON schema"):
        structured_spec(HasCallable)
