"""XML in and out of the WPS: namespaces, the one parser of request bodies, a builder.

Request bodies come from anyone, so they are parsed by :func:`parse_request` only: no
entity expansion, no DTD, no network, no huge text nodes, and any DOCTYPE refused (a
document that declares entities is an attack or a mistake; WPS requests never need one).
libxml2 2.14 (the PyPI lxml wheel, pinned) also stops entity amplification ("billion
laughs") by itself. Responses are built element by element with lxml, never from string
templates, so every text a user wrote (titles, messages, values) is escaped.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.responses import Response
from lxml import etree

from core.exceptions import OwsException

__all__ = [
    "OWS11",
    "OWS2",
    "WPS1",
    "WPS2",
    "XLINK",
    "XML_MEDIA_TYPE",
    "Xml",
    "children",
    "local_name",
    "parse_request",
    "text_of",
    "xml_response",
]

WPS1 = "http://www.opengis.net/wps/1.0.0"
OWS11 = "http://www.opengis.net/ows/1.1"
WPS2 = "http://www.opengis.net/wps/2.0"
OWS2 = "http://www.opengis.net/ows/2.0"
XLINK = "http://www.w3.org/1999/xlink"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XML_NS = "http://www.w3.org/XML/1998/namespace"
XML_MEDIA_TYPE = "text/xml"


def _parser() -> etree.XMLParser:
    # A parser per call: lxml parsers are not thread-safe, and FastAPI may run us in a pool.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_pis=True,
        remove_comments=True,
    )


def parse_request(body: bytes) -> etree._Element:
    """The root element of a WPS request body; ``OwsException`` (NoApplicableCode) when it
    is empty, not well-formed, or declares a DOCTYPE."""
    if not body.strip():
        raise OwsException(
            "NoApplicableCode", "the request body is empty: POST a WPS request as XML"
        )
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as exc:
        raise OwsException(
            "NoApplicableCode", f"the request is not well-formed XML: {exc.msg}"
        ) from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise OwsException(
            "NoApplicableCode", "a DOCTYPE (DTD, entities) is not allowed in a WPS request"
        )
    return root


def local_name(element: etree._Element) -> str:
    """The element's name without its namespace."""
    return etree.QName(element).localname


def children(element: etree._Element, namespace: str | None, name: str) -> list[etree._Element]:
    """The child elements ``{namespace}name`` (``namespace`` None: no namespace)."""
    tag = f"{{{namespace}}}{name}" if namespace else name
    return [c for c in element if isinstance(c.tag, str) and c.tag == tag]


def text_of(element: etree._Element | None) -> str | None:
    """All the text inside ``element`` (None when there is no element)."""
    if element is None:
        return None
    return "".join(element.itertext())


class Xml:
    """Builds the elements of one WPS version's documents with prefixed names.

    ``Xml({"wps": WPS1, "ows": OWS11})`` makes ``add(parent, "ows:Title", "x")``; an
    attribute named ``wps:processVersion`` or ``xlink:href`` is put in its namespace, a
    value of None is left out and a bool is written ``true``/``false``.
    """

    def __init__(self, prefixes: dict[str, str]) -> None:
        self.prefixes = {**prefixes, "xlink": XLINK, "xsi": XSI, "xml": XML_NS}

    def name(self, prefixed: str) -> str:
        prefix, _, local = prefixed.rpartition(":")
        return f"{{{self.prefixes[prefix]}}}{local}" if prefix else local

    def _set(self, element: etree._Element, attrs: dict[str, Any]) -> None:
        for key, value in attrs.items():
            if value is None:
                continue
            element.set(self.name(key), _xml_text(value))

    def root(self, tag: str, attrs: dict[str, Any] | None = None) -> etree._Element:
        """A document's root, declaring every prefix."""
        nsmap = {k: v for k, v in self.prefixes.items() if k != "xml"}
        element = etree.Element(self.name(tag), nsmap=nsmap)
        self._set(element, attrs or {})
        return element

    def add(
        self,
        parent: etree._Element,
        tag: str,
        text: Any = None,
        attrs: dict[str, Any] | None = None,
    ) -> etree._Element:
        """A child of ``parent`` with ``text`` (None: no text) and ``attrs``."""
        element = etree.SubElement(parent, self.name(tag))
        if text is not None:
            element.text = _xml_text(text)
        self._set(element, attrs or {})
        return element


# Characters XML 1.0 cannot carry (a tool's message may hold control characters).
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(value: Any) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return _NOT_XML.sub("", text)


def xml_response(root: etree._Element, status: int = 200, **headers: str) -> Response:
    """``root`` as an XML document, ``text/xml``."""
    body = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return Response(body, status_code=status, media_type=XML_MEDIA_TYPE, headers=headers or None)
