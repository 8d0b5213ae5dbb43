"""The grants of the token endpoint, one module each, each a ``Grant`` (see token_endpoint.py)."""
