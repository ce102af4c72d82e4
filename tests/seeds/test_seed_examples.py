"""Seed usage examples copied verbatim (only import lines changed to ``llmrelay``).

Each example runs in a fresh interpreter so nothing another test loaded (for
instance the built-in aliases) can make it pass.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SEED_002_FACTORY_FUNCTION_PATTERN = textwrap.dedent(
    """\
    from llmrelay import CONFIG_REGISTRY

    def create_groq_model(model_alias: str, **kwargs):
        \"\"\"Factory function to create and configure a Groq model with custom parameters.\"\"\"
        if model_alias not in CONFIG_REGISTRY:
            raise ValueError(f"Model alias '{model_alias}' not found.")

        config_cls = CONFIG_REGISTRY[model_alias]
        config_obj = config_cls()

        # Apply custom parameters
        for key, value in kwargs.items():
            if hasattr(config_obj, key):
                setattr(config_obj, key, value)

        return config_obj

    # Usage
    custom_model = create_groq_model("mixtral-8x7b", temperature=0.9)
    print(custom_model.temperature, custom_model.model)
    """
)


def test_seed_002_factory_function_pattern() -> None:
    # Fresh process: CONFIG_REGISTRY must hold the built-in aliases on first
    # access, with no other llmrelay entry point used before.
    probe = subprocess.run(
        [sys.executable, "-c", SEED_002_FACTORY_FUNCTION_PATTERN],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["0.9", "mixtral-8x7b-32768"]
