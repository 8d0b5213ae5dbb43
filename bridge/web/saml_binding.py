"""A SAML message of ours, sent through the browser: a 302 for the HTTP-Redirect binding, an
auto-submitting form for the HTTP-POST binding (SAML Bindings §3.5.4).

The form's page keeps the strict Content-Security-Policy of every other page, with two additions
that name exactly what it needs: the one inline script, by its hash (no nonce to get wrong, no
other script can run), and the IdP's origin as the only place a form may be sent to.
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import urlsplit

from flask import Response, redirect, render_template
from werkzeug.wrappers import Response as BaseResponse

from bridge.saml.bindings import REDIRECT, OutgoingMessage

# No character here that HTML escaping would change: the page must carry exactly what is hashed.
AUTO_SUBMIT = "document.forms[0].submit();"
_SCRIPT_HASH = f"'sha256-{base64.b64encode(hashlib.sha256(AUTO_SUBMIT.encode()).digest()).decode()}'"


def form_csp(action: str) -> str:
    """The form page's policy. The origin comes from an endpoint URL that metadata parsing
    allowed (scheme, host and port only: bridge.saml.metadata), so it cannot end or add a
    directive. Browsers check form-action again on redirects that follow the post, so an IdP
    that answers our post with a redirect to another origin needs the HTTP-Redirect binding."""
    parts = urlsplit(action)
    origin = f"{parts.scheme}://{parts.netloc}"
    if parts.scheme not in ("https", "http") or any(c in origin for c in " ;,'\"\t\r\n"):
        origin = "'none'"  # never reached for parsed metadata; refuse rather than widen
    return (f"default-src 'none'; script-src {_SCRIPT_HASH}; style-src 'unsafe-inline'; "
            f"form-action {origin}; frame-ancestors 'none'; base-uri 'none'")


def send(message: OutgoingMessage) -> BaseResponse:
    if message.binding == REDIRECT:
        response: BaseResponse = redirect(message.url, code=302)
    else:
        response = Response(render_template("saml_post.html", action=message.url,
                                            fields=message.fields, script=AUTO_SUBMIT))
        response.headers["Content-Security-Policy"] = form_csp(message.url)
    # Each message is used once; a cached copy would send a stale (or another person's) one.
    response.headers["Cache-Control"] = "no-store"
    return response
