"""Settings: one source of truth, documented in the README."""

from pathlib import Path

import pytest

from engine.settings import Settings, settings_table

README = Path(__file__).parents[2] / "README.md"


def test_readme_lists_every_setting_as_generated():
    text = README.read_text()
    section = text.split("<!-- settings-table:start -->")[1].split("<!-- settings-table:end -->")[0]
    assert section.strip() == settings_table().strip(), (
        "run: python -m engine.settings --update README.md"
    )


def test_every_setting_is_described():
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no description"


def test_settings_read_operator_names(monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.example:4200/api")
    monkeypatch.setenv("OAPIP_WORKER_SLOTS", "3")
    settings = Settings()
    assert settings.prefect_api_url == "http://prefect.example:4200/api"
    assert settings.worker_slots == 3
    assert settings.ui_url == "http://prefect.example:4200"


def test_invalid_setting_is_refused(monkeypatch):
    monkeypatch.setenv("OAPIP_WORKER_SLOTS", "0")
    with pytest.raises(ValueError):
        Settings()
