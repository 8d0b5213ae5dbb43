"""Tokens: signing keys, access JWTs (the one ``jwt.encode`` call site), codes, refresh families."""
