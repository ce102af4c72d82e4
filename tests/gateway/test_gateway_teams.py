"""Team budgets (``[server.teams.NAME]``): read from the ``[server]`` table with typed errors,
and enforced over real sockets for every key of the team together -- reserved before each call,
settled after it -- however many calls run at once."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from llmrelay.errors import ConfigurationError
from llmrelay.gateway.app import GatewaySettings
from llmrelay.gateway.policy import TeamBudget
from llmrelay.gateway.server import settings_from
from llmrelay.testing.fake import FakeUpstream, Reply

from .conftest import ADMIN, GPT, chat_answer, chat_upstream, post, serving

#: What the team may spend in a day: a few dozen of the calls below (their real cost is close
#: to what each reserves: the fake reports all the max_tokens as used).
_BUDGET = 0.002
_CALL = orjson.dumps(
    {"model": GPT, "messages": [{"role": "user", "content": "x"}], "max_tokens": 50}
)


def _server(text: str) -> GatewaySettings:
    settings, _ = settings_from(tomllib.loads(text)["server"])
    return settings


def test_team_budgets_are_read_from_the_server_table() -> None:
    s = _server(
        "[server]\nport = 4000\n\n"
        '[server.teams.research]\nbudget_usd = 25.5\nbudget_period = "day"\n\n'
        "[server.teams.ops]\nbudget_usd = 100\n"
    )
    assert set(s.teams) == {"research", "ops"}
    research, ops = s.teams["research"].limit, s.teams["ops"].limit
    assert (research.limit_usd, research.period, research.scope, research.match) == (
        25.5,
        "day",
        "tag:team",
        "research",
    )
    assert (ops.limit_usd, ops.period) == (100, "month")  # a month unless the table says
    assert _server("[server]\nport = 4000\n").teams == {}


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ('[server]\nteams = "research"\n', r"\[server\.teams\] must be a table"),
        ("[server.teams]\nresearch = 5\n", r"\[server\.teams\.research\] must be a table"),
        ("[server.teams.research]\nbudget_period = 'day'\n", r"research\] budget_usd is missing"),
        ("[server.teams.research]\nbudget_usd = 0\n", r"research\] budget_usd must be a positive"),
        ("[server.teams.research]\nbudget_usd = -1\n", r"budget_usd must be a positive"),
        ("[server.teams.research]\nbudget_usd = 'ten'\n", r"budget_usd must be a positive"),
        ("[server.teams.research]\nbudget_usd = true\n", r"budget_usd must be a positive"),
        ("[server.teams.research]\nbudget_usd = inf\n", r"budget_usd must be a positive"),
        (
            "[server.teams.research]\nbudget_usd = 5\nbudget_period = 'week'\n",
            r"research\] budget_period must be day, month or total, not 'week'",
        ),
        (
            "[server.teams.research]\nbudget_usd = 5\nbudget = 7\n",
            r"\[server\.teams\.research\] has unknown key 'budget'; known keys: budget_period, "
            r"budget_usd",
        ),
        ('[server.teams." "]\nbudget_usd = 5\n', r"team names must be non-empty"),
    ],
)
def test_a_bad_team_table_is_a_typed_error_naming_the_field(toml: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        _server(toml)


async def test_concurrent_calls_of_a_teams_keys_never_pass_its_budget(
    fake: FakeUpstream, point_at: object, tmp_path: Path
) -> None:
    point_at(fake)  # type: ignore[operator]
    team = TeamBudget("research", _BUDGET, "day")
    settings = GatewaySettings(
        host="127.0.0.1",
        port=0,
        key_store=str(tmp_path / "keys.db"),
        admin_key=ADMIN,
        teams={"research": team},
    )
    async with serving(settings, fake) as gw:
        keys = [await gw.key(name=f"k{i}", team="research") for i in range(2)]
        other = await gw.key(name="elsewhere", team="ops")
        # The calls overlap: each holds its reservation while the upstream answers.
        fake.push(*[Reply.ok("y", output_tokens=50, delay=0.05)] * 300)
        answers = await asyncio.gather(
            *[
                post(gw, "/v1/chat/completions", _CALL, auth={"authorization": f"Bearer {k}"})
                for k in keys * 75
            ]
        )
        codes = [c for c, _, _ in answers]
        assert set(codes) == {200, 429}, codes
        assert codes.count(200) == len(fake.requests)  # a refused call never left
        for c, raw, headers in answers:
            if c == 429:
                assert orjson.loads(raw)["error"]["code"] == "budget_exceeded"
                assert int(headers["retry-after"]) >= 1
        budgets = gw.gateway.budgets
        assert budgets is not None
        st = await budgets.status(team.limit, "research")
        assert st["reserved_usd"] == 0  # every call settled
        assert 0 < st["spent_usd"] <= _BUDGET, st
        # One key after the other until the team's budget is spent: then both are refused,
        # until tomorrow.
        for i in range(100):
            auth = {"authorization": f"Bearer {keys[i % 2]}"}
            status, raw, headers = await post(gw, "/v1/chat/completions", _CALL, auth=auth)
            if status == 429:
                break
            assert status == 200, raw
        for k in keys:
            status, raw, headers = await post(
                gw, "/v1/chat/completions", _CALL, auth={"authorization": f"Bearer {k}"}
            )
            assert status == 429, raw
            assert orjson.loads(raw)["error"]["code"] == "budget_exceeded"
            assert 1 <= int(headers["retry-after"]) <= 86400
        st = await budgets.status(team.limit, "research")
        assert 0 < st["spent_usd"] <= _BUDGET, st
        assert st["reserved_usd"] == 0
        # Another team's key is not held back by it.
        status, raw, _ = await post(
            gw, "/v1/chat/completions", _CALL, auth={"authorization": f"Bearer {other}"}
        )
        assert status == 200, raw


async def test_a_key_moved_to_another_team_mid_call_settles_where_it_reserved(
    keys: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A call reserves on the team its key had when it was authenticated, and settles there,
    though the key moves to another team (and gets another budget) while the call runs; the
    key's next call is the new team's. Nothing stays reserved, nothing is charged twice."""
    arrived, release = asyncio.Event(), asyncio.Event()
    seen = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal seen
        seen += 1
        if seen == 1:  # the first call waits in the upstream while the key changes
            arrived.set()
            await release.wait()
        usage = {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000}
        return web.json_response(chat_answer("y", usage))

    teams = {t: TeamBudget(t, 10.0, "day") for t in ("research", "ops")}
    settings = GatewaySettings(
        host="127.0.0.1",
        port=0,
        key_store=str(tmp_path / "keys.db"),
        admin_key=ADMIN,
        teams=teams,
        key_cache_ttl=0,  # every request reads the key's record
    )
    fake = FakeUpstream()
    async with chat_upstream(handle, monkeypatch), serving(settings, fake) as gw:
        store, budgets = gw.gateway.key_store, gw.gateway.budgets
        assert store is not None
        assert budgets is not None
        secret, key = await store.create(name="mover", team="research", budget_usd=5.0)
        auth = {"authorization": f"Bearer {secret}"}
        first = asyncio.create_task(post(gw, "/v1/chat/completions", _CALL, auth=auth))
        async with asyncio.timeout(30):
            await arrived.wait()
        moved = await store.update(key.id, team="ops", budget_usd=6.0)
        assert moved.team == "ops"
        status, raw, _ = await post(gw, "/v1/chat/completions", _CALL, auth=auth)
        assert status == 200, raw
        release.set()
        status, raw, _ = await first
        assert status == 200, raw
        research = await budgets.status(teams["research"].limit, "research")
        ops = await budgets.status(teams["ops"].limit, "ops")
        own = await budgets.status(budgets.limit_for(moved) or teams["ops"].limit, key.id)
        assert research["reserved_usd"] == ops["reserved_usd"] == own["reserved_usd"] == 0
        assert research["spent_usd"] > 0  # the first call, on the team it reserved on
        assert ops["spent_usd"] == pytest.approx(research["spent_usd"])  # the second: the same
        assert own["spent_usd"] == pytest.approx(research["spent_usd"] + ops["spent_usd"])
