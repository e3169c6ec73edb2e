"""``python -m core.settings``: print the settings table; ``--update README.md`` rewrites
the README's copy of it."""

import sys
from pathlib import Path

from core.settings.table import settings_table, update_readme

if sys.argv[1:2] == ["--update"]:
    update_readme(Path(sys.argv[2]))
else:
    print(settings_table())
