"""``llmrelay serve``: an OpenAI- and Anthropic-compatible gateway over the llmrelay engine.

``wire.py`` (what both wire shapes share, the error mapping), ``openai_wire.py`` and
``anthropic_wire.py`` (each wire's request parsing and answer rendering), ``keys.py`` (virtual
keys and their stores), ``policy.py`` (per-key budgets and limits as engine layers), ``app.py``
(the aiohttp application), ``server.py`` (settings, building, workers). Loaded only by
``llmrelay serve`` / ``llmrelay keys``; nothing in the library imports it.
"""
