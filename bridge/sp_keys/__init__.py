"""The SP's own SAML keys: generated, stored encrypted, rotated and chosen here, and handed to
``saml/`` as plain values (``bridge.saml.keys``); the ``bridge saml-keys`` commands."""
