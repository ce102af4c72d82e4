"""The seed facades, one module per seed document: 000 ``ModelHandler``, 001
``LLMClient``/``LLMSettings``, 002 configurations (:mod:`.seed002`), 004 ``LLMManager``.

Seed 003 (registries, capabilities) is the catalog itself: :mod:`llmrelay.catalog`.
"""
