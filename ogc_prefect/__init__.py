"""The OGC ↔ Prefect adapter: processes, jobs, schedules and logs as Prefect objects.

:mod:`ogc_prefect.mapping` is the pure mapping between Prefect objects and the records
the gateway serves; :mod:`ogc_prefect.client` the one shared connection to Prefect; one
module per resource (:mod:`~ogc_prefect.processes`, :mod:`~ogc_prefect.jobs`,
:mod:`~ogc_prefect.schedules`, :mod:`~ogc_prefect.logs`) does the resource's operations
on top of them. :mod:`ogc_prefect.rest` holds the few writes on the engine's hot path.
"""

from ogc_prefect.client import PrefectApi
from ogc_prefect.jobs import Jobs
from ogc_prefect.logs import Logs
from ogc_prefect.mapping import (
    DeployedPackage,
    JobFilters,
    JobRecord,
    LogRecord,
    ProcessRecord,
    ScheduleRecord,
    ScheduleSpec,
)
from ogc_prefect.processes import Processes
from ogc_prefect.schedules import Schedules

__all__ = [
    "DeployedPackage",
    "JobFilters",
    "JobRecord",
    "Jobs",
    "LogRecord",
    "Logs",
    "PrefectApi",
    "ProcessRecord",
    "Processes",
    "ScheduleRecord",
    "ScheduleSpec",
    "Schedules",
]
