"""Keep configured secrets out of what users and the Prefect UI see.

Secrets are the ``SecretStr`` settings (S3 keys, the WES password, ...): whichever a
``Settings`` has, :func:`secret_values` finds them, so a secret setting added later is
covered without touching this module. They never enter flow-run parameters (a job's
parameters are its inputs and its package's name); as a second line, :func:`redact`
masks them in error details and job messages, and :func:`install_log_redaction` in
every log record a process writes (gateway, worker, job processes, whose Prefect log
handler ships records to the Prefect UI).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pydantic import SecretStr

from core.settings import Settings

__all__ = ["MASK", "install_log_redaction", "redact", "secret_values"]

MASK = "**********"
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
