"""STAC on both sides of a job, with pystac.

* :func:`stage_stac` (stage-in): a STAC Item, Catalog or Collection URL given for a
  ``Directory`` input becomes a local folder holding every item's assets and a
  self-contained ``catalog.json`` — the layout the EOEPCA reference stage-in produces
  (``catalog.json`` at the top, ``<item id>/<item id>.json`` beside its assets).
* :func:`publish_stac` (stage-out): a ``Directory`` output holding ``catalog.json`` is
  uploaded with every asset and link ``href`` rewritten to the uploaded objects, and the
  published root object is returned for the results document.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pystac
from pystac.errors import STACError
from pystac.stac_io import DefaultStacIO

from blocks.storage import ResultStorage
from core.exceptions import StagingError
from core.naming import results_key

__all__ = ["STAC_CATALOG", "is_stac_folder", "publish_stac", "stage_stac"]

STAC_CATALOG = "catalog.json"
_STAC_ERRORS = (STACError, ValueError, KeyError, TypeError)


class _RemoteStacIO(DefaultStacIO):
    """pystac reads the documents of a catalog being staged through stage-in's fetcher
    (the outbound guard, http(s) retries, s3 keys), and nothing else: a link to a
    ``file:`` URL or a path would read the engine's disk."""

    def __init__(self, read_text: Callable[[str], str]) -> None:
        super().__init__()
        self._read = read_text

    def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
        href = str(source)
        if urlparse(href).scheme.lower() not in ("http", "https", "s3"):
            raise StagingError(f"STAC link {href!r} is not an http(s):// or s3:// URL")
        return self._read(href)


def _local_path(href: str) -> Path | None:
    parsed = urlparse(href)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    return None


_STAC_TYPES: dict[str, type[pystac.STACObject]] = {
    "Feature": pystac.Item,
    "Catalog": pystac.Catalog,
    "Collection": pystac.Collection,
}


def _read_stac(href: str, stac_io: pystac.StacIO) -> pystac.STACObject:
    """The STAC Item, Catalog or Collection at ``href``, read so that its links resolve
    through ``stac_io`` and a root catalog is its own root."""
    try:
        document = json.loads(stac_io.read_text(href))
        kind = _STAC_TYPES.get(document.get("type")) if isinstance(document, dict) else None
        if kind is None:
            raise StagingError(f"{href} is not a STAC Item, Catalog or Collection")
        return kind.from_file(href, stac_io=stac_io)
    except StagingError:
        raise
    except (*_STAC_ERRORS, json.JSONDecodeError) as exc:
        raise StagingError(f"{href} is not a valid STAC document: {exc}") from exc


def stage_stac(
    url: str,
    folder: Path,
    *,
    read_text: Callable[[str], str],
    download_all: Callable[[list[tuple[str, Path]]], None],
) -> Path:
    """Stage the STAC object at ``url`` into ``folder``; return ``folder``.

    ``read_text`` reads a remote document, ``download_all`` downloads ``(url, path)``
    pairs. Raises ``StagingError`` when ``url`` is not a STAC Item, Catalog or Collection.
    """
    staged = _read_stac(url, _RemoteStacIO(read_text))
    with _link_errors(url):
        return _stage_object(staged, url, folder, download_all)


@contextlib.contextmanager
def _link_errors(url: str) -> Iterator[None]:
    """pystac wraps what reading a link raised in its own error: give back ours (a
    refused or missing link), or say the catalog at ``url`` is not valid."""
    try:
        yield
    except StagingError:
        raise
    except _STAC_ERRORS as exc:
        cause = exc.__cause__
        if isinstance(cause, StagingError):
            raise cause from None
        raise StagingError(f"{url} is not a valid STAC catalog: {exc}") from exc


def _stage_object(
    staged: pystac.STACObject,
    url: str,
    folder: Path,
    download_all: Callable[[list[tuple[str, Path]]], None],
) -> Path:
    """Stage the STAC object read from ``url`` (see :func:`stage_stac`)."""
    if isinstance(staged, pystac.Item):
        item = staged.clone()
        item.remove_links(pystac.RelType.COLLECTION)
        root = pystac.Catalog(
            id="catalog",
            description=f"catalog with staged {item.id}",
            title=f"catalog with staged {item.id}",
        )
        root.add_item(item)
    elif isinstance(staged, pystac.Collection):
        staged.fully_resolve()
        root = pystac.Catalog(id="catalog", description=f"catalog with staged {staged.id}")
        root.add_child(staged)
    elif isinstance(staged, pystac.Catalog):
        staged.fully_resolve()
        root = staged
    else:
        raise StagingError(f"{url} is a {type(staged).__name__}, not a STAC Item or Catalog")
    items = list(root.get_all_items())
    # Absolute first: moving an item would re-point relative asset hrefs at local paths.
    for item in items:
        for asset in item.assets.values():
            asset.href = asset.get_absolute_href() or asset.href
    root.normalize_hrefs(str(folder))
    base = folder.resolve()
    downloads: list[tuple[str, Path]] = []
    for item in items:
        item_dir = Path(item.get_self_href() or folder).parent
        if not item_dir.resolve().is_relative_to(base):
            raise StagingError(f"{url}: item id {item.id!r} cannot name a folder")
        used: set[str] = set()
        for key, asset in item.assets.items():
            name = Path(unquote(urlparse(asset.href).path)).name or key
            if name in used:
                name = f"{key}-{name}"
            used.add(name)
            downloads.append((asset.href, item_dir / name))
            asset.href = str(item_dir / name)
    download_all(downloads)
    root.make_all_asset_hrefs_relative()
    root.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return folder


def publish_stac(
    path: Path, storage: ResultStorage, key: str, *, link: Callable[[str], str] | None = None
) -> dict[str, Any]:
    """Upload the STAC catalog in folder ``path`` below ``key``; return its root object.

    Every file of the folder keeps its place below ``key``; each STAC document is then
    written again with its asset hrefs and links pointing at the uploaded objects, at
    the absolute URL ``link`` gives a key (default: the store's own, ``s3://``; the local
    store's are the gateway's, ``flows.staging.result_links``). Remote asset hrefs stay
    as they are; a local asset outside the folder is refused. The returned dict is the
    published root (Catalog or Collection) with ``href``, the URL of its document, added
    so that it is also an OGC link.
    """
    link = link or storage.url_for
    try:
        root = _read_stac(str(path / STAC_CATALOG), DefaultStacIO())
        if not isinstance(root, pystac.Catalog):
            raise StagingError(f"{STAC_CATALOG} holds a {type(root).__name__}, not a catalog")
        root.fully_resolve()
        catalogs: list[pystac.Catalog] = []
        items: list[pystac.Item] = []
        for catalog, _, catalog_items in root.walk():
            catalogs.append(catalog)
            items.extend(catalog_items)
    except StagingError:
        raise
    except (*_STAC_ERRORS, OSError, json.JSONDecodeError) as exc:
        raise StagingError(f"{path / STAC_CATALOG} is not a valid STAC catalog: {exc}") from exc

    base = path.resolve()

    def published(local: Path, fallback: str) -> tuple[str, bool]:
        """The key ``local`` is uploaded to, and whether it lies inside the folder."""
        resolved = local.resolve()
        if resolved.is_relative_to(base):
            return results_key(key, resolved.relative_to(base).as_posix()), True
        return results_key(key, fallback), False

    for item in items:
        for name, asset in item.assets.items():
            local = _local_path(asset.get_absolute_href() or asset.href)
            if local is None:
                continue  # a remote asset stays where it is
            if not local.is_file():
                raise StagingError(f"asset {name!r} of item {item.id!r}: {local} does not exist")
            asset_key, inside = published(local, "")
            if not inside:
                # Publishing a file of the worker the output does not hold would leak it.
                raise StagingError(f"asset {name!r} of item {item.id!r} is outside the output")
            asset.href = link(asset_key)
    storage.upload_from_folder(path, key)
    documents: list[tuple[pystac.STACObject, str]] = []
    for stac_object in [*catalogs, *items]:
        self_href = stac_object.get_self_href()
        local = _local_path(self_href) if self_href else None
        fallback = f"{stac_object.id}/{stac_object.id}.json"
        document_key = published(local, fallback)[0] if local else results_key(key, fallback)
        documents.append((stac_object, document_key))
    for stac_object, document_key in documents:
        stac_object.set_self_href(link(document_key))
    root.catalog_type = pystac.CatalogType.ABSOLUTE_PUBLISHED
    for stac_object, document_key in documents:
        body = stac_object.to_dict(include_self_link=True, transform_hrefs=True)
        storage.write_path(document_key, json.dumps(body, indent=2).encode())
    published_root = root.to_dict(include_self_link=True, transform_hrefs=True)
    return {**published_root, "href": root.get_self_href()}


def is_stac_folder(path: Path) -> bool:
    """Whether an output folder holds a STAC catalog at its top."""
    return os.path.isfile(path / STAC_CATALOG)
