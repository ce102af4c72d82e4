"""Every Gemini recording in tests/recordings, replayed over a real socket through
``llmrelay.Client``: what the client returns (text, tool calls with ids and signatures, usage,
finish reason, reasoning, typed errors) and the request it sent, compared with the recorded
request where the recording kept one.

The recordings are real Gemini / Vertex AI traffic (vercel/ai fixtures, pydantic-ai and
llm-gemini cassettes). ``test_every_gemini_recording_is_replayed_here`` fails when a Gemini
recording is added to the manifest without a test here.
"""

from __future__ import annotations

import ast
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import llmrelay
from llmrelay.providers.adapters.gemini import SIGNATURE_SENTINEL

from ..conftest import CANARY_KEY
from ..recordings.replay import (
    Exchange,
    ReceivedRequest,
    RecordedResponse,
    ReplayServer,
    entry,
    events,
    exchanges,
    load_manifest,
    string_values,
)

WEATHER = {
    "name": "weather",
    "description": "Get the weather in a location",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}


@pytest.fixture
async def client() -> AsyncIterator[llmrelay.Client]:
    c = llmrelay.Client()
    yield c
    await c.aclose()


def chosen(rid: str) -> list[Exchange]:
    e = entry(rid)
    every = exchanges(e)
    return [every[i] for i in e.interactions] if e.interactions else every


def served(*rids: str) -> list[RecordedResponse]:
    """The responses of these recordings, in order (the interactions each entry names)."""
    return [ex.response for rid in rids for ex in chosen(rid)]


def recorded_body(rid: str, n: int = 0) -> Any:
    ex = chosen(rid)[n]
    assert ex.request is not None
    assert ex.request.body is not None
    return json.loads(ex.request.body)


def signatures(rid: str) -> list[str]:
    """The recording's thoughtSignatures in order, read from its JSON (not by the adapter)."""
    return string_values([events(ex.response) for ex in chosen(rid)], "thoughtSignature")


def kw(server: ReplayServer, **more: Any) -> dict[str, Any]:
    return {"api_key": CANARY_KEY, "base_url": server.url + "/v1beta", "retries": 0, **more}


def sent(server: ReplayServer, n: int = -1) -> Any:
    return server.received[n].json()


def check_sent(req: ReceivedRequest, model: str, *, stream: bool) -> None:
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    assert req.method == "POST"
    assert req.path_qs == f"/v1beta/models/{model}:{method}"
    headers = {k.lower(): v for k, v in req.headers}
    assert headers["x-goog-api-key"] == CANARY_KEY  # in the header, never in the URL
    assert CANARY_KEY not in req.path_qs


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


def same_contents(ours: Sequence[Any], theirs: Sequence[Any]) -> None:
    """Our contents equal the recorded ones (a recorded content without a role is a user's)."""
    assert [{"role": "user", **c} for c in ours] == [{"role": "user", **c} for c in theirs]


# --------------------------------------------------------------------------- plain answers


async def test_gemini3_text(client: llmrelay.Client) -> None:
    rid = "gemini3-text"
    async with ReplayServer(served(rid)) as server:
        r = await client.achat(
            "gemini/gemini-3-pro-preview", "How many r's in strawberry?", **kw(server)
        )
    check_sent(server.received[0], "gemini-3-pro-preview", stream=False)
    assert sent(server) == {"contents": [user("How many r's in strawberry?")]}
    assert r.text.startswith("There are **3** r's in strawberry.")
    assert (r.finish_reason, r.raw_finish_reason) == ("stop", "STOP")
    assert r.usage.input_tokens == 9
    assert (r.usage.output_tokens, r.usage.reasoning_tokens) == (28 + 244, 244)
    assert (r.id, r.model, r.provider) == (
        "Un6LacrVMcjUxs0PmJfWoQc",
        "gemini-3-pro-preview",
        "gemini",
    )
    assert r.tool_calls == []
    (sig,) = signatures(rid)
    assert [(p.signature, p.id) for p in r.reasoning_parts] == [(sig, f"text:{len(r.text)}")]
    assert r.reasoning == ""


@pytest.mark.parametrize(
    ("rid", "thoughts", "rid_"),
    [
        ("gemini3-reasoning", 282, "YH6LaZT7ENmPxN8P-r2J8Aw"),
        ("gemini3-reasoning-2", 258, "DniLab2dFPeSxN8PpqXY4Ag"),
    ],
)
async def test_gemini3_reasoning_effort(
    client: llmrelay.Client, rid: str, thoughts: int, rid_: str
) -> None:
    async with ReplayServer(served(rid)) as server:
        r = await client.achat(
            "gemini/gemini-3-pro-preview", "r's?", reasoning_effort="high", **kw(server)
        )
    assert sent(server)["generationConfig"] == {
        "thinkingConfig": {"thinkingLevel": "HIGH", "includeThoughts": True}
    }
    assert r.adjusted_params == {}
    assert r.text.startswith('There are **3** "r"s in strawberry.')
    assert r.usage.reasoning_tokens == thoughts
    assert r.id == rid_
    assert [p.signature for p in r.reasoning_parts] == signatures(rid)


async def test_max_tokens_answer_without_parts(client: llmrelay.Client) -> None:
    rid = "gemini-max-tokens-empty-content"
    async with ReplayServer(served(rid)) as server:
        r = await client.achat(
            "gemini/gemini-2.5-pro",
            [
                {"role": "system", "content": "You are a helpful chatbot."},
                {"role": "user", "content": "What is the capital of France?"},
            ],
            max_tokens=5,
            **kw(server),
        )
    ours, theirs = sent(server), recorded_body(rid)
    same_contents(ours["contents"], theirs["contents"])
    assert ours["systemInstruction"]["parts"] == theirs["systemInstruction"]["parts"]
    assert ours["generationConfig"]["maxOutputTokens"] == 5
    assert (r.text, r.finish_reason, r.raw_finish_reason) == ("", "length", "MAX_TOKENS")
    assert (r.usage.input_tokens, r.usage.reasoning_tokens) == (15, 2)


# --------------------------------------------------------------------------- tool loops


async def test_gemini3_tool_call_then_the_second_turn(client: llmrelay.Client) -> None:
    """The call's id (made from the response id) and its signature go back in turn 2."""
    rid = "gemini3-tool-call-thought-signature"
    msgs: list[Any] = [llmrelay.Message.user("What is the weather in San Francisco?")]
    async with ReplayServer(served(rid, "gemini3-text")) as server:
        r = await client.achat("gemini/gemini-3-pro-preview", msgs, tools=[WEATHER], **kw(server))
        (call,) = r.tool_calls
        assert call.id == "call_JniLacKqGqH0xs0P0O776As_0"
        assert call.name == "weather"
        assert call.parsed_arguments() == {"location": "San Francisco"}
        assert call.signature == signatures(rid)[0]
        assert (r.finish_reason, r.raw_finish_reason) == ("tool_calls", "STOP")
        assert (r.usage.input_tokens, r.usage.output_tokens) == (29, 15 + 1801)
        msgs += [r.message(), llmrelay.Message.tool(call.id, '{"temperature": 18}')]
        r2 = await client.achat("gemini/gemini-3-pro-preview", msgs, tools=[WEATHER], **kw(server))
    first = sent(server, 0)
    assert first["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "weather",
                    "description": WEATHER["description"],
                    "parametersJsonSchema": WEATHER["parameters"],
                }
            ]
        }
    ]
    assert sent(server, 1)["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {
                        "name": "weather",
                        "args": {"location": "San Francisco"},
                        "id": call.id,
                    },
                    "thoughtSignature": call.signature,
                }
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "weather",
                        "response": {"temperature": 18},
                        "id": call.id,
                    }
                }
            ],
        },
    ]
    assert r2.text.startswith("There are **3**")


async def test_gemini3_streamed_tool_call_then_the_second_turn(client: llmrelay.Client) -> None:
    rid = "gemini3-tool-call-stream"
    msgs: list[Any] = [llmrelay.Message.user("weather?")]
    model = "gemini/gemini-3-pro-preview"
    async with ReplayServer(served(rid, "gemini3-stream-empty-text-thought-signature")) as server:
        s = client.astream(model, msgs, tools=[WEATHER], **kw(server))
        deltas = [d async for c in s for d in c.tool_calls]
        r = s.response
        assert r is not None
        cid = "call_b36LacjwM668nsEP2tbsgQQ_0"
        assert [(d.index, d.id, d.name, d.arguments, d.signature) for d in deltas] == [
            (0, cid, "weather", '{"location":"San Francisco"}', signatures(rid)[0])
        ]  # the delta that completes the call carries its signature (a relay passes it on)
        assert [(t.id, t.signature) for t in r.tool_calls] == [(cid, signatures(rid)[0])]
        assert r.finish_reason == "tool_calls"
        assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.reasoning_tokens) == (
            29,
            60,
            45,
        )
        msgs += [r.message(), llmrelay.Message.tool(cid, "foggy")]
        s2 = client.astream(model, msgs, tools=[WEATHER], **kw(server))
        text = "".join([c.delta async for c in s2])
        r2 = s2.response
    check_sent(server.received[0], "gemini-3-pro-preview", stream=True)
    model_turn = sent(server, 1)["contents"][1]
    assert model_turn["parts"] == [
        {
            "functionCall": {"name": "weather", "args": {"location": "San Francisco"}, "id": cid},
            "thoughtSignature": signatures(rid)[0],
        }
    ]
    assert sent(server, 1)["contents"][2]["parts"][0]["functionResponse"] == {
        "name": "weather",
        "response": {"result": "foggy"},
        "id": cid,
    }
    assert text == "4"
    assert r2 is not None
    assert r2.text == "4"


async def test_llm_gemini_stream_with_function_call_id(client: llmrelay.Client) -> None:
    """streamGenerateContent without alt=sse answered a gzip JSON array; Gemini's own
    functionCall.id is kept."""
    rid = "gemini3-stream-tool-call-id-gzip"
    tool = {"name": "pelican_name_generator", "parameters": {"type": "object", "properties": {}}}
    async with ReplayServer(served(rid)) as server:
        s = client.astream(
            "gemini/gemini-3-flash-preview",
            "Generate one name for a pet pelican",
            tools=[tool],
            **kw(server),
        )
        chunks = [c async for c in s]
    r = s.response
    assert r is not None
    ours, theirs = sent(server), recorded_body(rid)
    same_contents(ours["contents"], theirs["contents"])
    assert [d["name"] for d in ours["tools"][0]["functionDeclarations"]] == [
        d["name"] for d in theirs["tools"][0]["functionDeclarations"]
    ]
    assert [(t.id, t.name, t.arguments) for t in r.tool_calls] == [
        ("c9bjmkfz", "pelican_name_generator", '{"type":"funny"}')
    ]
    assert r.tool_calls[0].signature == signatures(rid)[0]
    assert r.finish_reason == "tool_calls"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (28, 19 + 248)
    assert chunks[-1].done


async def test_vertex_partial_args_stream(client: llmrelay.Client) -> None:
    rid = "vertex-gemini3-stream-thought-part-partial-args"
    async with ReplayServer(served(rid)) as server:
        s = client.astream("gemini/gemini-3-flash-preview", "read the screens", **kw(server))
        chunks = [c async for c in s]
        reasoning = "".join(c.reasoning for c in chunks)
    r = s.response
    assert r is not None
    # Each call's signature arrives on the delta that completes it (with its arguments), even
    # when the arguments came in partial pieces.
    done = {d.index: d.signature for c in chunks for d in c.tool_calls if d.arguments}
    assert done == {i: t.signature for i, t in enumerate(r.tool_calls)}
    assert reasoning.startswith("**Processing User Requests**")
    assert r.reasoning == reasoning
    assert [(t.name, t.parsed_arguments()) for t in r.tool_calls] == [
        ("read_theme", {}),
        ("read_screen", {"id": "A"}),
        ("read_screen", {"id": "B"}),
        ("read_screen", {"id": "C"}),
    ]
    assert len({t.id for t in r.tool_calls}) == 4
    assert r.tool_calls[0].signature == signatures(rid)[0]
    assert (r.usage.input_tokens, r.usage.reasoning_tokens) == (249, 183)
    assert r.id == "_vr4aYiWEJnYodAPkujX0QM"


async def test_function_call_id_and_sentinel_request(client: llmrelay.Client) -> None:
    """A conversation from another provider (an OpenAI-style call id, no signature): the
    request matches the recorded one that Gemini accepted, except that the stand-in signature
    is sent as the literal string Google documents, not base64 of it (Gemini 3 rejects the
    base64 form: langchain-ai/langchain-google#1570, fixed by #1972)."""
    rid = "gemini-function-call-id-and-sentinel-replay"
    msgs = [
        llmrelay.Message.user("What is the answer?"),
        llmrelay.Message.assistant(tool_calls=[llmrelay.ToolCall("call_openai_xyz", "get_answer")]),
        llmrelay.Message.tool("call_openai_xyz", '{"return_value": 42}'),
        llmrelay.Message.user("continue"),
    ]
    tool = {"name": "get_answer", "description": "", "parameters": {"type": "object"}}
    async with ReplayServer(served(rid)) as server:
        r = await client.achat("gemini/gemini-2.5-flash", msgs, tools=[tool], **kw(server))
    ours, theirs = sent(server), recorded_body(rid)
    recorded_sig = theirs["contents"][1]["parts"][0].pop("thoughtSignature")
    assert recorded_sig == "c2tpcF90aG91Z2h0X3NpZ25hdHVyZV92YWxpZGF0b3I="  # base64(sentinel)
    assert ours["contents"][1]["parts"][0].pop("thoughtSignature") == SIGNATURE_SENTINEL
    same_contents(ours["contents"], theirs["contents"])
    assert r.text.startswith("I'm sorry, I cannot provide more context")
    assert r.id == "_qfgaevzGcz2juMP8pCmoAE"
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.reasoning_tokens) == (
        57,
        32 + 141,
        141,
    )
    assert [(p.id, p.signature) for p in r.reasoning_parts] == [
        (f"text:{len(r.text)}", signatures(rid)[0])
    ]


async def test_vertex_nested_partial_args_stream(client: llmrelay.Client) -> None:
    """One call whose arguments arrive as string pieces at nested JSON paths."""
    rid = "vertex-gemini3-stream-partial-args-nested"
    expected: dict[str, str] = {}
    for ev in events(served(rid)[0]):
        for part in ev["candidates"][0]["content"]["parts"]:
            for pa in part.get("functionCall", {}).get("partialArgs", []):
                expected[pa["jsonPath"]] = expected.get(pa["jsonPath"], "") + pa["stringValue"]
    async with ReplayServer(served(rid)) as server:
        s = client.astream("gemini/gemini-3.1-pro-preview", "a lasagna recipe", **kw(server))
        deltas = [d async for c in s for d in c.tool_calls]
    r = s.response
    assert r is not None
    (call,) = r.tool_calls
    assert call.name == "cookRecipe"
    assert call.id == "call_tjXVaYaxFISTq8YP_MWiyAo_0"
    assert call.signature == signatures(rid)[0]
    args = call.parsed_arguments()
    for path, value in expected.items():
        node: Any = args
        for step in path[2:].replace("]", "").replace("[", ".").split("."):
            node = node[int(step)] if step.isdigit() else node[step]
        assert node == value, path
    assert len(args["recipe"]["ingredients"]) == 10
    assert args["recipe"]["steps"][9] == "Let stand for 15 minutes before serving."
    assert [d.index for d in deltas] == [0, 0]  # opened once, arguments once
    assert (r.usage.input_tokens, r.usage.reasoning_tokens) == (31, 1026)
    assert r.finish_reason == "tool_calls"


async def test_gemini3_thought_parts_and_signed_text_two_turns(client: llmrelay.Client) -> None:
    """Turn 1 has a thought part and a text part with the signature; turn 2 sends the text back
    with that signature. Differences from the recorded turn-2 request, by design: the unsigned
    thought part is not sent back (Gemini reads nothing from unsigned thought text), and the
    signature goes back exactly as received (the SDK re-encoded it URL-safe)."""
    import base64

    rid = "gemini3-thought-parts-signed-text-two-turns"
    first, second = recorded_body(rid, 0), recorded_body(rid, 1)
    question2 = second["contents"][2]["parts"][0]["text"]
    thinking = {"generationConfig": {"thinkingConfig": {"includeThoughts": True}}}
    tool = {
        "name": "dummy",
        "description": "",
        "parameters": first["tools"][0]["functionDeclarations"][0]["parameters_json_schema"],
    }
    msgs: list[Any] = [
        llmrelay.Message.system("You are a helpful assistant."),
        llmrelay.Message.user("How do I cross the street?"),
    ]
    async with ReplayServer(served(rid)) as server:
        r = await client.achat(
            "gemini/gemini-3-pro-preview", msgs, tools=[tool], extra=thinking, **kw(server)
        )
        msgs += [r.message(), llmrelay.Message.user(question2)]
        r2 = await client.achat(
            "gemini/gemini-3-pro-preview", msgs, tools=[tool], extra=thinking, **kw(server)
        )
    ours1, ours2 = sent(server, 0), sent(server, 1)
    same_contents(ours1["contents"], first["contents"])
    assert ours1["systemInstruction"]["parts"] == first["systemInstruction"]["parts"]
    assert ours1["generationConfig"]["thinkingConfig"] == {"includeThoughts": True}
    assert r.reasoning.startswith("**A Safe Street-Crossing Guide: My Thought Process**")
    assert r.text.startswith("Crossing the street safely is a fundamental skill")
    sig = signatures(rid)[0]
    assert [(p.id, p.signature) for p in r.reasoning_parts] == [
        ("thought", None),
        (f"text:{len(r.text)}", sig),
    ]
    recorded_model = second["contents"][1]["parts"]
    assert recorded_model[0]["thought"] is True
    assert recorded_model[1]["text"] == r.text
    assert base64.urlsafe_b64decode(recorded_model[1]["thoughtSignature"]) == base64.b64decode(sig)
    assert ours2["contents"][1] == {
        "role": "model",
        "parts": [{"text": r.text, "thoughtSignature": sig}],
    }
    same_contents(
        [ours2["contents"][0], ours2["contents"][2]], [second["contents"][0], second["contents"][2]]
    )
    assert r2.usage.reasoning_tokens == 1115
    assert r2.id == "UN4gafq5OY-kmtkPwqS6kAs"


# --------------------------------------------------------------------------- streams of text


async def test_stream_empty_last_part_signature(client: llmrelay.Client) -> None:
    rid = "gemini3-stream-empty-text-thought-signature"
    async with ReplayServer(served(rid)) as server:
        s = client.astream("gemini/gemini-3-flash-preview", "2+2?", **kw(server))
        text = "".join([c.delta async for c in s])
    r = s.response
    assert r is not None
    assert text == r.text == "4"
    assert r.finish_reason == "stop"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (15, 53)
    assert [(p.id, p.signature) for p in r.reasoning_parts] == [("text:1", signatures(rid)[0])]
    assert r.id == "vQRpaqzAPN2M9MoPxPq2uQ4"


async def test_llm_gemini_json_array_text_stream_twice(client: llmrelay.Client) -> None:
    rid = "gemini15-stream-json-array-gzip"
    prompt = "Name for a pet pelican, just the name"
    async with ReplayServer(served(rid)) as server:
        for n in range(2):
            s = client.astream("gemini/gemini-1.5-flash-latest", prompt, **kw(server))
            text = "".join([c.delta async for c in s])
            assert text == "Percy\n"
            assert s.response is not None
            assert s.response.usage.input_tokens == 10
            assert s.response.model == "gemini-1.5-flash-002"
            same_contents(sent(server, n)["contents"], recorded_body(rid, n)["contents"])


# --------------------------------------------------------------------------- filters


async def test_blocked_prompt_plain_and_streamed(client: llmrelay.Client) -> None:
    async with ReplayServer(served("gemini-prompt-blocked", "gemini-prompt-blocked-stream")) as s:
        with pytest.raises(llmrelay.ContentFilteredError) as info:
            await client.achat("gemini/gemini-3-flash-preview", "x", **kw(s))
        assert info.value.category == "PROHIBITED_CONTENT"
        with pytest.raises(llmrelay.ContentFilteredError) as info2:
            await client.astream("gemini/gemini-3-flash-preview", "x", **kw(s)).collect()
        assert info2.value.category == "PROHIBITED_CONTENT"
        assert info2.value.partial_text == ""


async def test_blocked_prompt_triggers_content_filter_fallbacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with ReplayServer(served("gemini-prompt-blocked", "gemini3-text")) as server:
        monkeypatch.setenv("GEMINI_BASE_URL", server.url + "/v1beta")
        monkeypatch.setenv("GEMINI_API_KEY", CANARY_KEY)
        c = llmrelay.Client(
            engine=llmrelay.Engine(content_filter_fallbacks=["gemini/gemini-3-pro-preview"])
        )
        try:
            r = await c.achat("gemini/gemini-3-flash-preview", "x", retries=0)
        finally:
            await c.aclose()
    assert r.model == "gemini-3-pro-preview"
    assert [a.error for a in r.trace] == ["ContentFilteredError", None]
    assert [q.path_qs.split(":")[0] for q in server.received] == [
        "/v1beta/models/gemini-3-flash-preview",
        "/v1beta/models/gemini-3-pro-preview",
    ]


async def test_safety_finish_with_a_blocked_rating(client: llmrelay.Client) -> None:
    rid = "gemini-safety-finish-blocked-rating"
    recorded = recorded_body(rid)
    async with ReplayServer(served(rid)) as server:
        with pytest.raises(llmrelay.ContentFilteredError) as info:
            await client.achat(
                "gemini/gemini-2.5-flash",
                [
                    {"role": "system", "content": "You hate the world!"},
                    {"role": "user", "content": "Tell me a joke about a Brazilians."},
                ],
                extra={"safetySettings": recorded["safetySettings"]},
                **kw(server),
            )
    ours = sent(server)
    same_contents(ours["contents"], recorded["contents"])
    assert ours["systemInstruction"]["parts"] == recorded["systemInstruction"]["parts"]
    assert ours["safetySettings"] == recorded["safetySettings"]
    e = info.value
    assert (e.category, e.explanation, e.partial_text) == ("SAFETY", "hate_speech (LOW)", "")
    assert "finishReason SAFETY" in str(e)


async def test_vertex_model_armor_finish(client: llmrelay.Client) -> None:
    rid = "vertex-gemini-model-armor-response-block"
    prompt = recorded_body(rid)["contents"][0]["parts"][0]["text"]
    async with ReplayServer(served(rid)) as server:
        with pytest.raises(llmrelay.ContentFilteredError) as info:
            await client.achat("gemini/gemini-2.5-flash", prompt, **kw(server))
    same_contents(sent(server)["contents"], recorded_body(rid)["contents"])
    e = info.value
    assert e.category == "MODEL_ARMOR"
    assert e.explanation == (
        "The response violated Responsible AI Safety settings (Hate Speech, Harassment, "
        "Dangerous) filters."
    )
    assert e.partial_text == ""
    assert "finishReason MODEL_ARMOR" in str(e)


async def test_vertex_model_armor_blocked_prompt(client: llmrelay.Client) -> None:
    rid = "vertex-gemini-model-armor-prompt-blocked"
    prompt = recorded_body(rid)["contents"][0]["parts"][0]["text"]
    async with ReplayServer(served(rid)) as server:
        with pytest.raises(llmrelay.ContentFilteredError) as info:
            await client.achat("gemini/gemini-2.5-flash", prompt, **kw(server))
    same_contents(sent(server)["contents"], recorded_body(rid)["contents"])
    assert info.value.category == "MODEL_ARMOR"
    assert info.value.explanation == "The prompt violated Prompt Injection and Jailbreak filters."


async def test_structured_output_is_not_re_asked_after_a_filter(client: llmrelay.Client) -> None:
    import pydantic

    class Answer(pydantic.BaseModel):
        n: int

    async with ReplayServer(served("gemini-prompt-blocked")) as server:
        with pytest.raises(llmrelay.ContentFilteredError):
            await client.achat(
                "gemini/gemini-3-flash-preview", "x", response_model=Answer, **kw(server)
            )
    assert len(server.received) == 1  # no re-ask was paid for


# --------------------------------------------------------------------------- errors


async def test_rate_limit_with_retry_info(client: llmrelay.Client) -> None:
    async with ReplayServer(served("gemini-429-retry-info")) as server:
        with pytest.raises(llmrelay.RateLimitedError) as info:
            await client.achat("gemini/gemini-2.5-flash", "hi", **kw(server))
    assert info.value.status == 429
    assert info.value.retry_after == 34.4
    assert "RESOURCE_EXHAUSTED" in str(info.value)
    assert CANARY_KEY not in repr(info.value)


@pytest.mark.parametrize(
    ("rid", "needle", "params"),
    [
        ("gemini-400-invalid-argument", "Penalty is not enabled", {"presence_penalty": 0.5}),
        (
            "gemini-400-thinking-level-unsupported",
            "Thinking level MINIMAL is not supported",
            {"extra": {"generationConfig": {"thinkingConfig": {"thinkingLevel": "MINIMAL"}}}},
        ),
        (
            "gemini-400-forced-tool-with-json-mime",
            "Forced function calling (ANY mode)",
            {"tools": [WEATHER], "tool_choice": "required", "response_format": "json"},
        ),
    ],
)
async def test_bad_requests(
    client: llmrelay.Client, rid: str, needle: str, params: dict[str, Any]
) -> None:
    async with ReplayServer(served(rid)) as server:
        with pytest.raises(llmrelay.BadRequestError) as info:
            await client.achat("gemini/gemini-2.5-flash", "hi", **kw(server, **params))
    assert info.value.status == 400
    assert needle in str(info.value)
    assert len(server.received) == 1  # a 400 is not retried


async def test_minimal_effort_is_not_sent_to_a_model_that_rejects_it(
    client: llmrelay.Client,
) -> None:
    """The recorded 400 is what sending MINIMAL to Gemini 3 Pro gets; reasoning_effort sends
    the nearest level it takes and says so."""
    async with ReplayServer(served("gemini3-text")) as server:
        r = await client.achat(
            "gemini/gemini-3-pro-preview", "hi", reasoning_effort="minimal", **kw(server)
        )
    assert sent(server)["generationConfig"]["thinkingConfig"]["thinkingLevel"] == "LOW"
    assert "sent as low" in r.adjusted_params["reasoning_effort"]


def test_every_gemini_recording_is_replayed_here() -> None:
    source = Path(__file__).read_text()
    named = {
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    missing = [e.id for e in load_manifest() if e.wire == "gemini" and e.id not in named]
    assert missing == []
