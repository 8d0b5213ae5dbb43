"""pysaml2's xmlsec1 backend, signing in-process with python-xmlsec instead of one ``xmlsec1``
process per signature (most of the time of a test login went into starting that process).

The signature is still made by libxmlsec1 over pysaml2's own Signature templates, and is what
``xmlsec1 --sign --id-attr:ID <node> --node-id <id>`` makes; verification, encryption and
decryption still go through the ``xmlsec1`` binary as before.
"""

from __future__ import annotations

import xmlsec
from lxml import etree
from saml2 import SamlBase
from saml2.sigver import CryptoBackendXmlSec1, SignatureError


class InProcessSigningBackend(CryptoBackendXmlSec1):
    def sign_statement(self, statement: object, node_name: str, key_file: str,
                       node_id: str | None) -> str:
        """Sign the Signature template inside the element whose ID is ``node_id`` (or the
        document's first template) with the PEM key in ``key_file``; the signed document."""
        if isinstance(statement, SamlBase):
            statement = str(statement)
        if isinstance(statement, str):
            statement = statement.encode("utf-8")  # lxml refuses str with an encoding declaration
        if not isinstance(statement, bytes):
            raise SignatureError(f"cannot sign a {type(statement).__name__}")
        # No entities, no network: the same parser settings as the bridge's own.
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        root = etree.fromstring(statement, parser)
        # --id-attr:ID <node_name>: the ID attribute of these elements is an XML ID.
        namespace, _, local_name = node_name.rpartition(":")
        for element in root.iter(f"{{{namespace}}}{local_name}"):
            xmlsec.tree.add_ids(element, ["ID"])
        start = root
        if node_id:  # --node-id: the template is looked for inside this element
            found = [e for e in root.iter(f"{{{namespace}}}{local_name}") if e.get("ID") == node_id]
            if len(found) != 1:
                raise SignatureError(f"no single {node_name} with ID {node_id}")
            start = found[0]
        template = xmlsec.tree.find_node(start, xmlsec.constants.NodeSignature)
        if template is None:
            raise SignatureError(f"no Signature template in {node_name}")
        context = xmlsec.SignatureContext()
        try:
            context.key = xmlsec.Key.from_file(key_file, xmlsec.constants.KeyDataFormatPem)
            context.sign(template)
        except xmlsec.Error as exc:
            raise SignatureError(f"xmlsec could not sign {node_name}: {exc}") from exc
        return etree.tostring(root.getroottree(), xml_declaration=True,
                              encoding="UTF-8").decode("utf-8")
