"""The value sets the chart is tested with, and what the engine must read from each."""

from __future__ import annotations

import copy
from typing import Any

__all__ = [
    "EXISTING_SECRETS",
    "VALUE_SETS",
    "expected_settings",
    "housekeeping_on",
    "secret_values",
]

_PASSWORDS = {"postgresql": {"password": "s3cr3t/+"}, "prefect": {"auth": {"password": "p-0001"}}}
_HOST = {"INGRESS_HOST": "eoepca.example.org"}
_S3 = {
    "S3_ENDPOINT": "https://minio.develop.eoepca.org",
    "S3_REGION": "eu-west-2",
    "S3_BUCKET": "results",
    "STAGEIN_S3_ENDPOINT": "https://s3.eu-central-1.amazonaws.com",
    "STAGEIN_S3_REGION": "eu-central-1",
    "USE_WORKSPACE_API": True,
    "workspace": {"apiUrl": "https://workspace-api.develop.eoepca.org"},
}
_OIDC = {
    "OIDC_ISSUER": "https://iam.develop.eoepca.org/realms/eoepca",
    "OIDC_CLIENT_ID": "oapip",
}
_NODES = {"NODE_SELECTOR_KEY": "node-role.kubernetes.io/processing", "NODE_SELECTOR_VALUE": "true"}

EXISTING_SECRETS = {
    "oapip-credentials": {
        "S3_ACCESS_KEY": "existing-access-0002",
        "S3_SECRET_KEY": "existing-secret-0003",
        "OAPIP_TOIL_WES_PASSWORD": "existing-wes-0004",
        "PREFECT_API_AUTH_STRING": "operator:existing-prefect-0005",
        "DATABASE_URL": "postgresql+asyncpg://prefect:db-0006@db.example.org/prefect",
    }
}
"""The data of Secrets that exist before the chart is installed (secrets.existingSecret)."""


def _merge(*parts: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in copy.deepcopy(part).items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = _merge(merged[key], value)
            else:
                merged[key] = value
    return merged


VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": _merge(_HOST, _PASSWORDS),
    "external-postgresql": _merge(
        _HOST,
        _PASSWORDS,
        {"postgresql": {"bundled": False, "external": {"url": "postgresql+asyncpg://p:q@db/p"}}},
    ),
    "replicas": _merge(
        _HOST, _PASSWORDS, {"gateway": {"replicas": 3}, "worker": {"replicas": 2, "slots": 4}}
    ),
    "prefect-scaled-out": _merge(
        _HOST,
        _PASSWORDS,
        {
            "prefect": {"replicas": 3},
            "redis": {"url": "redis://redis.example:6380/2"},
            "gateway": {"replicas": 2},
            "worker": {"replicas": 2},
            "retention": {"days": 30, "intervalSeconds": 900},
        },
    ),
    "ingress-tls-prefect-ui": _merge(
        _HOST,
        _PASSWORDS,
        {
            "ingress": {"clusterIssuer": "letsencrypt-staging"},
            "prefect": {"uiHost": "prefect.eoepca.example.org"},
        },
    ),
    "oidc": _merge(_HOST, _PASSWORDS, _OIDC),
    "s3": _merge(
        _HOST,
        _PASSWORDS,
        _S3,
        {
            "secrets": {
                "S3_ACCESS_KEY": "access-0007",
                "S3_SECRET_KEY": "secret-0008",
                "STAGEIN_S3_ACCESS_KEY": "in-access-0009",
                "STAGEIN_S3_SECRET_KEY": "in-secret-0010",
                "OAPIP_WORKSPACE_API_TOKEN": "ws-token-0011",
            },
            "retention": {"days": 30, "purgeDays": 60},
        },
    ),
    "node-selector": _merge(
        _HOST,
        _PASSWORDS,
        _NODES,
        {
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "eo", "effect": "NoSchedule"}
            ],
            "imagePullSecrets": ["registry-credentials"],
            "calrissian": {"storageClass": "longhorn", "keepNamespaceOnFailure": True},
        },
    ),
    "kubernetes-worker": _merge(
        _HOST,
        _PASSWORDS,
        _S3,
        _OIDC,
        _NODES,
        {"worker": {"type": "kubernetes"}, "secrets": {"S3_ACCESS_KEY": "k8s-access-0012"}},
    ),
    "existing-secret-toil": _merge(
        _HOST,
        {
            "secrets": {"existingSecret": "oapip-credentials"},
            "postgresql": {"bundled": False},
            "toil": {"wesUrl": "https://hpc.example.org/ga4gh/wes/v1/", "wesUser": "eo"},
            "worker": {"type": "kubernetes"},
            "prefect": {"uiHost": "prefect.eoepca.example.org"},
            # No retention of the site's, and no housekeeping either.
            "housekeeping": {"enabled": False},
        },
    ),
    "no-ingress-cwltool": _merge(
        _PASSWORDS,
        {
            "ingress": {"enabled": False},
            "execution": {"engine": "cwltool"},
            "calrissian": {"enabled": False},
            "networkPolicy": {"ingressFrom": []},
            "settings": {"OAPIP_CALLBACK_ATTEMPTS": 6, "OAPIP_MAX_JOB_RAM_MIB": "4096"},
            "retention": {"days": 0.5, "purgeDays": 0},
        },
    ),
}


def secret_values(values: dict[str, Any]) -> dict[str, str]:
    """The secret settings (and PREFECT_API_AUTH_STRING) a value set gives, by variable."""
    existing = values.get("secrets", {}).get("existingSecret")
    if existing:
        return {k: v for k, v in EXISTING_SECRETS[existing].items() if k != "DATABASE_URL"}
    given = {k: v for k, v in values.get("secrets", {}).items() if v and k != "existingSecret"}
    auth = values["prefect"]["auth"]
    return {
        **given,
        "PREFECT_API_AUTH_STRING": f"{auth.get('username', 'admin')}:{auth['password']}",
    }


def housekeeping_on(values: dict[str, Any]) -> bool:
    """Whether a value set deploys housekeeping: unless ``housekeeping.enabled`` is false
    (processes may have a retention of their own on any site)."""
    return values.get("housekeeping", {}).get("enabled") is not False


def expected_settings(values: dict[str, Any]) -> dict[str, Any]:
    """What the engine must read, by attribute path of its Settings, from a value set."""
    host = values.get("INGRESS_HOST")
    ingress = values.get("ingress", {}).get("enabled", True)
    ui_host = values.get("prefect", {}).get("uiHost")
    s3 = values.get("S3_ENDPOINT")
    expected: dict[str, Any] = {
        "execution.engine": values.get("execution", {}).get("engine", "calrissian"),
        "oidc.issuer": values.get("OIDC_ISSUER"),
        "oidc.client_id": values.get("OIDC_CLIENT_ID"),
        # Multi-tenant mode starts only with the tool sandbox.
        "execution.sandbox": "containers" if values.get("OIDC_ISSUER") else "off",
        "results_url": f"s3://{values.get('S3_BUCKET', 'eoepca')}"
        if s3
        else "file:///var/lib/oapip/data/results",
        "results.s3_endpoint": s3,
        "results.s3_region": values.get("S3_REGION", "us-east-1"),
        "results.s3_bucket": values.get("S3_BUCKET", "eoepca"),
        "stagein.endpoint": values.get("STAGEIN_S3_ENDPOINT"),
        "stagein.region": values.get("STAGEIN_S3_REGION", "us-east-1"),
        "workspace.enabled": values.get("USE_WORKSPACE_API", False),
        "workspace.api_url": values.get("workspace", {}).get("apiUrl"),
        "calrissian.node_selector_key": values.get("NODE_SELECTOR_KEY"),
        "calrissian.node_selector_value": values.get("NODE_SELECTOR_VALUE"),
        "calrissian.storage_class": values.get("calrissian", {}).get("storageClass"),
        "calrissian.keep_namespace_on_failure": values.get("calrissian", {}).get(
            "keepNamespaceOnFailure", False
        ),
        "toil.wes_url": values.get("toil", {}).get("wesUrl"),
        "toil.wes_user": values.get("toil", {}).get("wesUser"),
        "prefect.api_url": "http://oapip-prefect:4200/api",
        "prefect.work_pool": "oapip-kubernetes"
        if values.get("worker", {}).get("type") == "kubernetes"
        else "oapip",
        "worker.slots": values.get("worker", {}).get("slots", 8),
        "public_url": f"https://zoo.{host}" if host and ingress else None,
        "prefect.ui_url": f"https://{ui_host}" if ui_host else None,
        "home": "/var/lib/oapip",
        "prefect.results_dir": "/var/lib/oapip/data/prefect-results",
        "retention.retention_days": values.get("retention", {}).get("days"),
        "retention.purge_days": values.get("retention", {}).get("purgeDays"),
        "retention.housekeeping_interval_s": values.get("retention", {}).get(
            "intervalSeconds", 3600
        ),
    }
    if "OAPIP_CALLBACK_ATTEMPTS" in values.get("settings", {}):
        expected["callbacks.attempts"] = values["settings"]["OAPIP_CALLBACK_ATTEMPTS"]
        expected["execution.max_job_ram_mib"] = int(values["settings"]["OAPIP_MAX_JOB_RAM_MIB"])
    return expected
