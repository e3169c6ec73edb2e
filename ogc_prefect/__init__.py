"""The OGC ↔ Prefect adapter: processes, jobs, schedules and logs as Prefect objects."""
