"""Settings: one source of truth, documented in the README."""

from pathlib import Path

import pytest

from core.settings import Group, Settings
from core.settings.table import settings_table

README = Path(__file__).parents[2] / "README.md"


def test_readme_lists_every_setting_as_generated():
    text = README.read_text()
    section = text.split("<!-- settings-table:start -->")[1].split("<!-- settings-table:end -->")[0]
    assert section.strip() == settings_table().strip(), (
        "run: python -m core.settings --update README.md"
    )


def test_every_setting_is_described():
    groups = [Settings, *(f.annotation for f in Settings.model_fields.values())]
    for group in groups:
        if not (isinstance(group, type) and issubclass(group, Group)):
            continue
        for name, field in group.model_fields.items():
            nested = isinstance(field.annotation, type) and issubclass(field.annotation, Group)
            assert nested or field.description, f"{group.__name__}.{name} has no description"


def test_settings_read_operator_names(monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.example:4200/api")
    monkeypatch.setenv("OAPIP_WORKER_SLOTS", "3")
    settings = Settings()
    assert settings.prefect.api_url == "http://prefect.example:4200/api"
    assert settings.worker.slots == 3
    assert settings.ui_url == "http://prefect.example:4200"


def test_invalid_setting_is_refused(monkeypatch):
    monkeypatch.setenv("OAPIP_WORKER_SLOTS", "0")
    with pytest.raises(ValueError):
        Settings()


def test_s3_settings_read_the_operator_names_and_choose_the_store(monkeypatch, tmp_path):
    monkeypatch.setenv("OAPIP_HOME", str(tmp_path))
    assert Settings().results_url == (tmp_path / "results").as_uri()
    for prefix in ("", "STAGEIN_"):
        monkeypatch.setenv(f"{prefix}S3_ENDPOINT", f"http://{prefix or 'out'}.example:9000")
        monkeypatch.setenv(f"{prefix}S3_ACCESS_KEY", f"{prefix}access")
        monkeypatch.setenv(f"{prefix}S3_SECRET_KEY", f"{prefix}very-secret")
        monkeypatch.setenv(f"{prefix}S3_REGION", "eu-west-2")
    monkeypatch.setenv("USE_WORKSPACE_API", "true")
    settings = Settings()
    assert settings.results.s3_endpoint == "http://out.example:9000"
    assert settings.stagein.endpoint == "http://STAGEIN_.example:9000"
    assert settings.results.s3_secret_key.get_secret_value() == "very-secret"
    assert settings.stagein.secret_key.get_secret_value() == "STAGEIN_very-secret"
    assert settings.results.s3_region == settings.stagein.region == "eu-west-2"
    assert settings.workspace.enabled is True
    # S3 when an endpoint is configured, in the default bucket; secrets never printed.
    assert settings.results_url == "s3://eoepca"
    assert "very-secret" not in repr(settings) and "very-secret" not in str(settings)
    monkeypatch.setenv("OAPIP_STORAGE_URL", "file:///srv/results")
    assert Settings().results_url == "file:///srv/results"
