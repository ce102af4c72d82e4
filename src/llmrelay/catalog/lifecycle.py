"""Lifecycle checks of a catalog model (see ``LLMRegistry.check_lifecycle``), and the
``account_tiers`` setting that turns a tier-specific retirement into a decision."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigFileError, ModelRetiredError

if TYPE_CHECKING:
    from .model_registry import LLMRegistry
    from .profiles import LLMProfile

__all__ = ["check", "tiers_setting"]


def tiers_setting(settings: Mapping[str, Any]) -> dict[str, str]:
    """``[catalog] account_tiers = {groq = "developer"}``: your tier per provider."""
    tiers = settings.get("account_tiers", {})
    if not isinstance(tiers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tiers.items()
    ):
        raise ConfigFileError(
            'account_tiers must be a table of provider = "tier" (e.g. {groq = "developer"})',
            key="catalog.account_tiers",
        )
    return dict(tiers)


def check(registry: LLMRegistry, profile: LLMProfile, *, enforce: bool) -> None:
    """Warn or raise for ``profile``'s lifecycle state (``LLMRegistry.check_lifecycle``)."""
    state = profile.lifecycle_state(registry.today())
    if state == "active":
        return
    repl = registry.current_replacement(profile)
    if state == "retired":
        instead = f"; use {repl!r} instead" if repl else ""
        if enforce and not registry.allow_retired:
            raise ModelRetiredError(
                f"{profile.id} was shut down on {profile.shutdown_date}{instead}. To call it "
                "anyway (e.g. a mirror that still serves it), allow retired models: "
                "LLMRegistry(allow_retired=True) or LLMRELAY_ALLOW_RETIRED=1",
                provider=profile.provider,
                model=profile.name,
                shutdown_date=str(profile.shutdown_date),
                replacement=repl,
            )
        what = f"{profile.id} was shut down by its provider on {profile.shutdown_date}"
    elif state == "retired_routed":
        what = (
            f"{profile.id} was retired on {profile.shutdown_date}: the provider answers "
            f"requests for it with {repl!r} and bills them at that model's rate"
        )
    elif state == "retired_tiers":
        tier = registry.account_tiers.get(profile.provider)
        if tier is not None and tier not in profile.retired_tiers:
            return  # your tier still has it: nothing to say
        if tier is not None and enforce and not registry.allow_retired:
            instead = f"; use {repl!r} instead" if repl else ""
            raise ModelRetiredError(
                f"{profile.id} was retired on {profile.shutdown_date} for the {tier} tier, "
                f"yours at {profile.provider} per account_tiers{instead}",
                provider=profile.provider,
                model=profile.name,
                shutdown_date=str(profile.shutdown_date),
                replacement=repl,
            )
        what = (
            f"{profile.id} was retired on {profile.shutdown_date} for the "
            f"{', '.join(profile.retired_tiers)} tier(s): the provider refuses it on those "
            "tiers and still serves it on others (set [catalog] account_tiers = "
            f'{{{profile.provider} = "<your tier>"}} to decide)'
        )
    else:
        when = f"; it shuts down on {profile.shutdown_date}" if profile.shutdown_date else ""
        what = f"{profile.id} is deprecated{when}"
    registry.warn_once(profile, what, repl)
