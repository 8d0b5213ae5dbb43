"""SAML: the only package that imports onelogin.saml2 or xmlsec.

Untrusted bytes come in; a ``VerifiedAssertion`` (and from it an ``Identity``) comes out, or a
``SamlRejected`` with a stable code.
"""
