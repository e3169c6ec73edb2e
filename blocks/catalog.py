"""Every Block type of the engine in one namespace, for ``prefect block register -m
blocks.catalog`` (which registers the Block classes it finds in a module).

Importing it imports every execution backend the registry knows, built-in or from the
site modules of ``OAPIP_BACKEND_MODULES``; nothing in the engine imports it.
"""

from blocks.package import ApplicationPackage
from blocks.registry import block_types
from blocks.s3 import S3ResultStorage, S3Source
from blocks.storage import LocalResultStorage
from blocks.workspace import WorkspaceApi
from core.settings import get_settings

__all__ = [
    "ApplicationPackage",
    "LocalResultStorage",
    "S3ResultStorage",
    "S3Source",
    "WorkspaceApi",
]

# The backends are known only at run time: bound here by class name.
for _backend in block_types(get_settings()):
    globals()[_backend.__name__] = _backend
    __all__.append(_backend.__name__)
