"""The settings as one Markdown table, generated from the fields (the README's copy)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from core.settings import Settings
from core.settings.base import Group

__all__ = ["env_name", "secret_names", "settings_table", "update_readme"]


def env_name(group: type[Group], name: str, field: FieldInfo) -> str:
    """The environment variable a setting is read from."""
    alias: Any = field.validation_alias
    if isinstance(alias, str):
        return alias
    if alias is not None and getattr(alias, "choices", None):
        return str(alias.choices[0])
    return f"{group.model_config.get('env_prefix', '')}{name}".upper()


def _groups() -> list[type[Group]]:
    return [Settings] + [
        field.annotation
        for field in Settings.model_fields.values()
        if isinstance(field.annotation, type) and issubclass(field.annotation, Group)
    ]


def secret_names() -> list[str]:
    """The environment variables of every secret setting (``SecretStr`` fields), sorted."""
    names = []
    for group in _groups():
        for name, field in group.model_fields.items():
            if SecretStr in (field.annotation, *get_args(field.annotation)):
                names.append(env_name(group, name, field))
    return sorted(names)


def _rows(group: type[Group]) -> list[str]:
    rows = []
    for name, field in group.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, Group):
            continue
        if field.default_factory is not None:
            value = "~/.oapip" if name == "home" else json.dumps(field.default_factory())
            default = f"`{value}`"
        elif field.default is None:
            default = "unset"
        else:
            default = f"`{field.default}`"
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{env_name(group, name, field)}` | {default} | {description} |")
    return rows


def settings_table() -> str:
    """Every setting as a Markdown table, component by component."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for group in _groups():
        rows.extend(_rows(group))
    return "\n".join(rows)


def update_readme(path: Path) -> None:
    """Rewrite the settings table between the README's settings-table markers."""
    text = path.read_text()
    start, end = "<!-- settings-table:start -->", "<!-- settings-table:end -->"
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    path.write_text(f"{head}{start}\n{settings_table()}\n{end}{tail}")
