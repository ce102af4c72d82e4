"""The engine: one logical call, its attempts, routing, retries, traces, structured output.

Nothing here imports seeds, the CLI, settings or testing.
"""
