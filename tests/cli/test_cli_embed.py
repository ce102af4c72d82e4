"""``llmrelay embed``: JSON lines and a .npy file numpy would read, against the fake upstream."""

from __future__ import annotations

import ast
import io
import pathlib
import struct
import sys
from array import array

import orjson
import pytest

from llmrelay.testing.fake import FakeUpstream
from llmrelay.testing.fake_embeddings import vector

from ..conftest import CANARY_KEY, Run

MODEL = "openai/text-embedding-3-small"


@pytest.fixture(autouse=True)
def openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)


def test_embed_prints_one_json_vector_per_input_line(
    cli: Run, fake_thread: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("first line\n\nsecond line\n"))
    out_buf = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out_buf))
    code = cli(
        "embed", "-m", MODEL, "--dimensions", "4", "--base-url", fake_thread.openai_base_url
    )[0]
    assert code == 0
    lines = out_buf.getvalue().splitlines()
    assert [orjson.loads(x) for x in lines] == [
        vector("first line", 4).tolist(),
        vector("second line", 4).tolist(),
    ]
    assert fake_thread.requests[-1].body["input"] == ["first line", "second line"]


def test_embed_npy_is_a_valid_npy_file(
    cli: Run, fake_thread: FakeUpstream, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "v.npy"
    args = ["embed", "-m", MODEL, "--dimensions", "3", "--format", "npy", "-o", str(path)]
    code, out, err = cli(*args, "--base-url", fake_thread.openai_base_url, "a\nb\nc")
    assert (code, out, err) == (0, "", "")
    raw = path.read_bytes()
    assert raw[:8] == b"\x93NUMPY\x01\x00"
    (hlen,) = struct.unpack("<H", raw[8:10])
    assert (10 + hlen) % 64 == 0  # the format's alignment
    header = ast.literal_eval(raw[10 : 10 + hlen].decode())
    assert header == {"descr": "<f4", "fortran_order": False, "shape": (3, 3)}
    data = array("f")
    data.frombytes(raw[10 + hlen :])
    assert data.tolist() == [x for t in "abc" for x in vector(t, 3).tolist()]


def test_embed_errors_exit_with_their_codes(cli: Run, fake_thread: FakeUpstream) -> None:
    code, _, err = cli("embed", "-m", "openai/gpt-4.1-mini", "hi")
    assert code == 2
    assert "is a chat model" in err
    code, _, err = cli("embed", "hi")
    assert code == 2
    assert "no model given" in err
    assert fake_thread.requests == []


def test_embed_with_voyage_and_an_input_type(
    cli: Run, fake_thread: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOYAGE_API_KEY", CANARY_KEY)
    args = ["embed", "-m", "voyage/voyage-3.5-lite", "--input-type", "query"]
    code, out, _ = cli(*args, "--base-url", fake_thread.voyage_base_url, "where is it?")
    assert code == 0
    assert [orjson.loads(x) for x in out.splitlines()] == [vector("where is it?", 1024).tolist()]
    assert fake_thread.requests[-1].body["input_type"] == "query"


def test_an_output_path_that_cannot_be_written_is_refused_before_sending(
    cli: Run, fake_thread: FakeUpstream, tmp_path: pathlib.Path
) -> None:
    """``-o`` into a missing directory: exit 2 with a message naming the path, nothing sent
    (it was an OSError traceback after the embeddings had been paid for)."""
    before = len(fake_thread.requests)
    path = tmp_path / "missing" / "v.npy"
    code, _, err = cli(
        "embed", "-m", MODEL, "--format", "npy", "-o", str(path),
        "--base-url", fake_thread.openai_base_url, "a",
    )  # fmt: skip
    assert code == 2
    assert "v.npy" in err
    assert "Traceback" not in err
    assert len(fake_thread.requests) == before
