"""Wire adapters, one module per wire API; each has one ``map_error``, the only place provider
errors are typed.
"""
