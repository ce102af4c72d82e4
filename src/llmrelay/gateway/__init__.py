"""``llmrelay serve``: an OpenAI- and Anthropic-compatible gateway over the llmrelay engine.

``wire.py`` (what every wire shape shares, the error mapping), ``openai_wire.py``,
``anthropic_wire.py``, ``responses_wire.py`` (with ``responses_stream.py``) and
``embeddings_wire.py`` (each wire's request parsing and answer rendering), ``keys.py`` (virtual
keys and their stores), ``policy.py`` (per-key budgets and limits as engine layers),
``access.py`` (who is local; secrets compared in constant time), ``observe.py`` (readiness
and Prometheus text), ``app.py`` (the aiohttp application), ``server.py`` (settings,
building, workers). Loaded only by
``llmrelay serve`` / ``llmrelay keys``; nothing in the library imports it.
"""
