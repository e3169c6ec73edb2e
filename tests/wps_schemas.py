"""Validate WPS documents against the official WPS 1.0.0 and 2.0 XML schemas, offline.

The schemas are the reference folder ``wps-schemas/`` (``tests.reference``; without it, a
test that validates is skipped, naming the folder layout to provide). Their imports are
read from disk only: ``http://schemas.opengis.net/<path>`` is ``wps-schemas/
schemas.opengis.net/<path>``; ``http://www.w3.org/<path>`` is ``wps-schemas/www.w3.org/
<path>`` when the folder has it, else the copy the ``xmlschema`` package ships (a test
extra). The parser has no network, so an import not found on disk fails loudly.

Usage::

    from tests.wps_schemas import validate

    validate(response.content, "1.0.0")  # AssertionError lists every violation

A 1.0.0 document (and an OWS 1.1 ExceptionReport) is validated against ``wpsAll.xsd``, a
2.0 one (and an OWS 2.0 ExceptionReport) against ``wps.xsd``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from urllib.parse import urlparse

import xmlschema
from lxml import etree

from tests import reference

__all__ = ["MAIN", "errors", "validate", "validate_if_available"]

#: The schema each WPS version's documents are validated against, in ``wps-schemas/``.
MAIN = {
    "1.0.0": "schemas.opengis.net/wps/1.0.0/wpsAll.xsd",
    "2.0.0": "schemas.opengis.net/wps/2.0/wps.xsd",
}
_XMLSCHEMA_COPIES = Path(xmlschema.__file__).parent / "schemas"
_W3C = {
    "www.w3.org/1999/xlink.xsd": "XLINK/xlink.xsd",
    "www.w3.org/2001/xml.xsd": "XML/xml.xsd",
    "www.w3.org/2001/XMLSchema.xsd": "XSD_1.0/XMLSchema.xsd",
    "www.w3.org/2001/datatypes.xsd": "XSD_1.0/datatypes.xsd",
}


class _Offline(etree.Resolver):
    """Maps schema URLs to files under ``root`` (or the xmlschema package's W3C copies)."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def resolve(self, url, pubid, context):  # noqa: ANN001 - lxml's signature
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https"):
            return None  # a relative include: lxml reads the file beside its parent
        key = f"{parsed.netloc}{parsed.path}"
        for local in (self.root / key, _XMLSCHEMA_COPIES / _W3C.get(key, "-")):
            if local.is_file():
                return self.resolve_filename(str(local), context)
        raise OSError(f"schema {url} is not on disk (no network here)")


def _parser(root: Path | None = None) -> etree.XMLParser:
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    if root is not None:
        parser.resolvers.add(_Offline(root))
    return parser


@functools.cache
def _schema(root: Path, version: str) -> etree.XMLSchema:
    document = etree.parse(str(root / MAIN[version]), _parser(root))
    return etree.XMLSchema(document)


def errors(document: bytes, version: str, root: Path | None = None) -> list[str]:
    """Every violation of the WPS ``version`` schema in ``document`` ("line: message")."""
    schema = _schema(root or reference.wps_schemas(), version)
    tree = etree.fromstring(document, _parser()).getroottree()
    if schema.validate(tree):
        return []
    return [f"{e.line}: {e.message}" for e in schema.error_log]


def validate(document: bytes, version: str) -> None:
    """Assert that ``document`` is valid WPS ``version`` (skips without the schemas)."""
    problems = errors(document, version)
    assert not problems, "\n".join([document.decode(errors="replace")[:3000], *problems[:20]])


def validate_if_available(document: bytes, version: str) -> None:
    """Like :func:`validate` when the schemas are to be had; else nothing."""
    root = reference.find(reference.WPS_SCHEMAS)
    if root is not None:
        problems = errors(document, version, root)
        assert not problems, "\n".join([document.decode(errors="replace")[:3000], *problems[:20]])
