"""Reliability layers, one module per concern: circuit breakers, rate limits, budgets, the response
cache (in-process and shared implementations side by side).
"""
