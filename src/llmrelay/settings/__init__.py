"""Settings: the one place that reads ``llmrelay.toml`` and the environment, and assembles the
layers a client uses.
"""
