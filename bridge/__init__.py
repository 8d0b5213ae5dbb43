"""SAML-to-JWT federation bridge: SAML 2.0 SP in front, OAuth 2.0 / JWT issuer behind."""

__version__ = "0.1.0"
