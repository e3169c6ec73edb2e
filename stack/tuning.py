"""The lean, tuned Prefect server every stack the engine starts runs (README "A lean
Prefect server" gives each choice and what it costs the UI).

A job's run sends a handful of task-run and flow-run events; Prefect's defaults write
each one in its own transaction (batch size 1), which on SQLite serialises with every
flow-run creation and state change of the next jobs. Batching them, and turning off the
services the engine does not use, leaves the server's one process to the writes jobs wait
for.
"""

from __future__ import annotations

__all__ = ["LEAN_SERVER"]

_S = "PREFECT_SERVER_SERVICES_"

LEAN_SERVER: dict[str, str] = {
    # Task runs: up to 100 written per transaction, at the latest 1 s after they happen
    # (Prefect: 1 per transaction). The task-run list of a running job lags up to 1 s.
    f"{_S}TASK_RUN_RECORDER_BATCH_SIZE": "100",
    f"{_S}TASK_RUN_RECORDER_READ_BATCH_SIZE": "100",
    f"{_S}TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    # Events: up to 200 per transaction (Prefect: 20), flushed every second (Prefect: 5 s).
    # The UI's event feed and a run's "Events" tab lag up to 1 s.
    f"{_S}EVENT_PERSISTER_BATCH_SIZE": "200",
    f"{_S}EVENT_PERSISTER_READ_BATCH_SIZE": "100",
    f"{_S}EVENT_PERSISTER_FLUSH_INTERVAL": "1",
    # Automations: the engine uses none. The UI still edits them; they do not fire.
    f"{_S}TRIGGERS_ENABLED": "false",
    # Paused runs: the engine never pauses one. A run paused from the UI never times out.
    f"{_S}PAUSE_EXPIRATIONS_ENABLED": "false",
    # The event logger (a debugging aid) stays off, as by default.
    f"{_S}EVENT_LOGGER_ENABLED": "false",
}
"""Server settings, each set unless the operator set it (``stack/local.py::prefect_env``)."""
