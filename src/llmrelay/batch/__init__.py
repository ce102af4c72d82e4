"""Batches: ``map`` over many prompts, resumable through a journal."""
