"""Providers: the provider table, resolving a name to a deployment, one wire adapter per API
(:mod:`.adapters`), and the backends that answer an attempt.
"""
