"""`llmrelay keys` and `llmrelay serve` from the command line."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from llmrelay.errors import ConfigurationError
from llmrelay.gateway.app import GatewaySettings, check_bind
from llmrelay.gateway.keys import hash_key, open_key_store

from ..conftest import Run


def test_keys_create_list_update_revoke(cli: Run, tmp_path: Path) -> None:
    db = str(tmp_path / "k.db")
    code, out, err = cli(
        "keys", "--key-store", db, "--json", "create", "--name", "ci", "--team", "search",
        "--models", "claude-*,openai/gpt-4.1-mini", "--budget-usd", "5", "--rpm", "60",
        "--expires", "30d",
    )  # fmt: skip
    assert code == 0, err
    made = orjson.loads(out)
    assert made["key"].startswith("sk-relay-")
    assert len(made["key"]) > 50
    code, out, _ = cli("keys", "--key-store", db, "--json", "list")
    (row,) = orjson.loads(out)
    assert row["id"] == made["id"]
    assert row["models"] == ["claude-*", "openai/gpt-4.1-mini"]
    assert (row["team"], row["budget_usd"], row["rpm"]) == ("search", 5.0, 60)
    assert made["key"] not in out
    assert hash_key(made["key"]) not in out
    code, out, _ = cli("keys", "--key-store", db, "update", made["id"], "--rpm", "10")
    assert code == 0
    assert "updated" in out
    code, out, _ = cli("keys", "--key-store", db, "revoke", made["id"])
    assert code == 0
    assert "revoked" in out
    code, out, _ = cli("keys", "--key-store", db, "--json", "list")
    (row,) = orjson.loads(out)
    assert row["rpm"] == 10
    assert row["revoked_at"] is not None


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["create", "--name", "x", "--rpm", "0"], "--rpm must be a positive integer"),
        (["create", "--name", "x", "--budget-usd", "-1"], "--budget-usd must be a positive"),
        (["create", "--name", "x", "--expires", "soon"], "--expires must be like 30d"),
        (["create", "--name", "x", "--expires", "2\u00b2d"], "--expires must be like 30d"),
        (["create", "--name", " "], "non-empty --name"),
        (["revoke", "key_nope"], "no key with id"),
    ],
)
def test_bad_key_arguments_are_named(
    cli: Run, tmp_path: Path, argv: list[str], needle: str
) -> None:
    code, _, err = cli("keys", "--key-store", str(tmp_path / "k.db"), *argv)
    assert code == 2
    assert needle in err


def test_keys_without_a_store_say_how_to_configure_one(cli: Run) -> None:
    code, _, err = cli("keys", "list")
    assert code == 2
    assert "--key-store" in err


def test_binding_beyond_loopback_needs_an_admin_key() -> None:
    check_bind(GatewaySettings(host="127.0.0.1"))
    check_bind(GatewaySettings(host="::1"))
    check_bind(GatewaySettings(host="0.0.0.0", admin_key="sk-admin"))
    for host in ("0.0.0.0", "10.0.0.5", "example.com"):
        with pytest.raises(ConfigurationError, match="LLMRELAY_ADMIN_KEY"):
            check_bind(GatewaySettings(host=host))


def test_serve_refuses_a_public_bind_without_an_admin_key(cli: Run) -> None:
    code, _, err = cli("serve", "--host", "0.0.0.0", "--port", "0")
    assert code == 2
    assert "without an admin key" in err


async def test_a_key_is_stored_only_as_its_hash(tmp_path: Path) -> None:
    store = open_key_store(str(tmp_path / "k.db"))
    secret, rec = await store.create(name="n")
    raw = (tmp_path / "k.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("k.db-*")
    )
    assert secret.encode() not in raw
    assert (await store.authenticate(secret)) == rec
    assert await store.authenticate(secret + "x") is None
    assert "key_hash" not in repr(rec)
    assert rec.key_hash not in repr(rec)
    await store.close()


def test_the_documented_systemd_unit_is_valid_as_written() -> None:
    """docs/gateway.md's unit: systemd has no end-of-line comments (a ``#`` after a value is
    part of the value), and it gives the stop more time than the grace before SIGKILL."""
    from llmrelay.gateway.config import GatewaySettings

    doc = (Path(__file__).parents[2] / "docs" / "gateway.md").read_text()
    unit = doc.split("```ini\n", 1)[1].split("```", 1)[0]
    values: dict[str, str] = {}
    for line in unit.splitlines():
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        assert key, line
        assert value, line
        assert "#" not in value, line
        values[key] = value
    assert values["KillSignal"] == "SIGTERM"
    assert values["KillMode"] in ("mixed", "control-group")
    assert int(values["TimeoutStopSec"]) > GatewaySettings().shutdown_grace + 10
    assert "LLMRELAY_ADMIN_KEY" in doc.split("```dockerfile", 1)[0].rsplit("A container", 1)[1]


@pytest.mark.parametrize("value", [0, -1, 3601, True, "10"])
def test_a_bad_header_timeout_is_named(value: object) -> None:
    from llmrelay.gateway.server import settings_from

    with pytest.raises(ConfigurationError, match="header_timeout must be 0-3600 seconds"):
        settings_from({"header_timeout": value})
    settings, _ = settings_from({"header_timeout": 2.5})
    assert settings.header_timeout == 2.5


@pytest.mark.parametrize("value", [0, -1, 61, True, "5"])
def test_a_bad_key_store_timeout_is_named(value: object) -> None:
    from llmrelay.gateway.keys import PostgresKeyStore
    from llmrelay.gateway.server import settings_from

    with pytest.raises(ConfigurationError, match="key_store_timeout must be 0-60 seconds"):
        settings_from({"key_store_timeout": value})
    settings, _ = settings_from({"key_store_timeout": 0.5})
    assert settings.key_store_timeout == 0.5
    with pytest.raises(ConfigurationError, match="key store timeout must be more than 0"):
        PostgresKeyStore("postgresql://u@127.0.0.1/db", timeout=value)  # type: ignore[arg-type]
