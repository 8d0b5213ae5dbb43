"""Deprovisioning pushed by the IdP: SCIM 2.0 users (RFC 7643/7644) and Security Event Tokens
(RFC 8417, pushed as RFC 8935 says); both end a person's logins through
``bridge.oauth.deprovisioned``."""
