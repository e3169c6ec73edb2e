"""Keep configured secrets out of what users and the Prefect UI see, and the engine's
internals out of what users see.

Secrets are the ``SecretStr`` settings (S3 keys, the WES password, ...): whichever a
``Settings`` has, :func:`secret_values` finds them, so a secret setting added later is
covered without touching this module. They never enter flow-run parameters (a job's
parameters are its inputs and its package's name); as a second line, :func:`redact`
masks them in error details and job messages, and :func:`install_log_redaction` in
every log record a process writes (gateway, worker, job processes, whose Prefect log
handler ships records to the Prefect UI).

Internals are the engine's host paths (its home, where its code and libraries are
installed) and Python tracebacks. Operators keep them: in the processes' logs and the
Prefect UI. What the gateway shows users (job messages, ``/logs``, error details) goes
through a :class:`Redactor`, which masks secrets, elides those paths and drops
tracebacks (:func:`without_traceback`).
"""

from __future__ import annotations

import logging
import re
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from core.settings import Settings

__all__ = [
    "ELIDED",
    "MASK",
    "Redactor",
    "engine_paths",
    "install_log_redaction",
    "redact",
    "secret_values",
    "without_traceback",
]

MASK = "**********"
ELIDED = "…"
"""What an engine path becomes in what users see."""
_TRACEBACK = "Traceback (most recent call last):"
_MIN_LENGTH = 4  # shorter values would mask ordinary words


def secret_values(settings: Settings) -> list[str]:
    """The values of every ``SecretStr`` setting that is set, longest first."""
    values = {
        value.get_secret_value()
        for name in type(settings).model_fields
        if isinstance(value := getattr(settings, name), SecretStr)
    }
    return sorted((v for v in values if len(v) >= _MIN_LENGTH), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of a secret replaced by :data:`MASK`."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def install_log_redaction(settings: Settings) -> None:
    """Mask the secrets in every log record this process creates from now on."""
    secrets = secret_values(settings)
    if not secrets:
        return
    make_record = logging.getLogRecordFactory()

    def redacting_record(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        message = record.getMessage()
        if any(secret in message for secret in secrets):
            record.msg, record.args = redact(message, secrets), None
        if record.exc_info and record.exc_info[0] is not None:
            # Formatters reuse exc_text: a traceback quoting a secret is masked once here.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), secrets)
        return record

    logging.setLogRecordFactory(redacting_record)


def engine_paths(settings: Settings) -> list[str]:
    """The engine's own folders on its host, longest first: its home (as set and
    resolved), its code, and where Python and its libraries are installed."""
    install = sysconfig.get_paths()
    candidates = {
        str(settings.home),
        str(settings.home.resolve()),
        str(Path(__file__).resolve().parents[1]),
        *(install[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in install),
    }
    return sorted(
        (p.rstrip("/") for p in candidates if p.count("/") >= 1 and p != "/"), key=len, reverse=True
    )


def without_traceback(text: str) -> str:
    """``text`` up to the Python traceback it carries, if any (Prefect appends one to the
    log line of a failed task or flow run)."""
    head, found, _ = text.partition(_TRACEBACK)
    return head.rstrip() if found else text


@dataclass(frozen=True)
class Redactor:
    """What the gateway applies to every text it shows users: secrets masked
    (:data:`MASK`), engine paths elided (:data:`ELIDED`), tracebacks dropped.

    Attributes:
        secrets: values to mask (:func:`secret_values`).
        paths: folders to elide, longest first (:func:`engine_paths`).
    """

    secrets: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> Redactor:
        return cls(tuple(secret_values(settings)), tuple(engine_paths(settings)))

    def __call__(self, text: str) -> str:
        text = without_traceback(redact(text, self.secrets))
        for path in self.paths:
            if path in text:
                text = re.sub(re.escape(path) + r"(?![\w.-])", ELIDED, text)
        return text

    def secrets_only(self, text: str) -> str:
        """``text`` with the secrets masked, nothing else changed (a tool's own output)."""
        return redact(text, self.secrets)
