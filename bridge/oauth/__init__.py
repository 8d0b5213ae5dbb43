"""OAuth 2.0 behind the login: request parsing, the token endpoint and its grants, revocation,
introspection and userinfo."""
