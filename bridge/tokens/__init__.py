"""Tokens: signing keys, access JWTs (``signing.py`` alone encodes and decodes them), codes, refresh
families."""
