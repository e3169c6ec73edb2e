"""Where the shared test data lives: the ``shared/`` folder beside the repository.

CI runs in a fresh clone with a copy of ``shared/`` next to it, so paths are relative to
this checkout, never absolute.
"""

from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
APP_PACKAGES = SHARED / "app-packages"
OGC_SCHEMAS = SHARED / "ogcapi-processes"
