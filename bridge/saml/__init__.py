"""SAML: the only package that imports onelogin.saml2 or xmlsec.

Untrusted bytes come in; a ``VerifiedAssertion`` (and from it an ``Identity``) comes out, or a
``SamlRejected`` with a stable code.
"""

from bridge.saml.xml_io import lock_down

# Before anything in this package runs xmlsec: no I/O and no stderr from the XML libraries.
lock_down()
