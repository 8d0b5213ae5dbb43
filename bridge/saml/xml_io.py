"""No file or network I/O, and no stderr, from the XML libraries during SAML processing.

A SAML message is attacker-controlled until its signature verifies, and XML is full of URIs that a
library may follow: ``CipherReference``, ``RetrievalMethod``, ``Reference``, external entities. The
shape checks refuse every such URI before xmlsec sees a document; this module is the second wall,
which does not depend on them: xmlsec's URI resolvers are replaced by one that refuses (and logs)
every URI, and the copy of libxml2 linked into xmlsec gets an entity loader that loads nothing, no
input handlers, and an error handler that writes to our log instead of the process's stderr
(libxml2 quotes the offending input in its messages).

Same-document references (``#id``) never go through these resolvers, so signatures and
decryption work as before. lxml's own libxml2 is configured by our parsers (``xml_parser.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading

import xmlsec

log = logging.getLogger("bridge.saml.xml_io")

_LOCK = threading.Lock()
_THREAD = threading.local()
_LOCKED_DOWN = False


class _XmlError(ctypes.Structure):
    # libxml2's xmlError (xmlerror.h); its layout has been stable since libxml2 2.0.
    _fields_ = [
        ("domain", ctypes.c_int),
        ("code", ctypes.c_int),
        ("message", ctypes.c_char_p),
        ("level", ctypes.c_int),
        ("file", ctypes.c_char_p),
        ("line", ctypes.c_int),
        ("str1", ctypes.c_char_p),
        ("str2", ctypes.c_char_p),
        ("str3", ctypes.c_char_p),
        ("int1", ctypes.c_int),
        ("int2", ctypes.c_int),
        ("ctxt", ctypes.c_void_p),
        ("node", ctypes.c_void_p),
    ]


_STRUCTURED_ERROR = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(_XmlError))
_ENTITY_LOADER = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                  ctypes.c_void_p)


@_STRUCTURED_ERROR
def _on_libxml2_error(_context: int | None, error: ctypes._Pointer[_XmlError]) -> None:
    # An exception must never cross into C: whatever fails here is dropped.
    with contextlib.suppress(Exception):
        value = error.contents
        message = (value.message or b"").decode("utf-8", "replace").strip()
        log.warning("libxml2 (in xmlsec): %s", message[:300],
                    extra={"libxml2_domain": value.domain, "libxml2_code": value.code,
                           "libxml2_line": value.line})


@_ENTITY_LOADER
def _refuse_entity(url: bytes | None, _public_id: bytes | None, _context: int | None) -> None:
    _refused(url)
    return None


def _refused(uri: bytes | None) -> None:
    with contextlib.suppress(Exception):
        log.warning("refused an XML library's attempt to open %r",
                    (uri or b"").decode("utf-8", "replace")[:200])


def _match_and_refuse(uri: bytes) -> bool:
    """xmlsec asks each registered resolver whether it handles ``uri``: ours handles none, so
    nothing can be opened; the attempt is logged."""
    _refused(uri)
    return False


def _never_opened(_uri: bytes) -> object:
    raise OSError("XML I/O is disabled")


def _never_read(_context: object, _buffer: memoryview) -> int:
    raise OSError("XML I/O is disabled")


def _never_closed(_context: object) -> None:
    raise OSError("XML I/O is disabled")


def _libxml2_in_xmlsec() -> ctypes.CDLL:
    # xmlsec's wheel links its own copy of libxml2 statically and exports its symbols; lxml has
    # another copy, which these settings do not touch.
    return ctypes.CDLL(xmlsec.__file__)


def _quiet_this_thread(library: ctypes.CDLL) -> None:
    # libxml2 keeps its error handler per thread; threads started later get the default set by
    # xmlThrDefSetStructuredErrorFunc, threads that already exist need it set in them.
    library.xmlSetStructuredErrorFunc(None, _on_libxml2_error)
    _THREAD.quiet = True


def lock_down() -> None:
    """Apply both settings once per process (idempotent)."""
    global _LOCKED_DOWN, _LIBRARY
    with _LOCK:
        if _LOCKED_DOWN:
            return
        xmlsec.cleanup_callbacks()
        xmlsec.register_callbacks(_match_and_refuse, _never_opened, _never_read, _never_closed)
        library = _libxml2_in_xmlsec()
        library.xmlThrDefSetStructuredErrorFunc(None, _on_libxml2_error)
        library.xmlSetExternalEntityLoader(_refuse_entity)
        library.xmlCleanupInputCallbacks()
        _LIBRARY = library
        _quiet_this_thread(library)
        _LOCKED_DOWN = True


_LIBRARY: ctypes.CDLL | None = None


def ensure_this_thread() -> None:
    """Call before xmlsec runs on a thread: cheap after the first time on that thread."""
    if getattr(_THREAD, "quiet", False):
        return
    lock_down()
    assert _LIBRARY is not None
    _quiet_this_thread(_LIBRARY)
