"""CWL application packages without Prefect: parse, validate, describe as OGC processes,
turn execute inputs into job orders, and run them with cwltool (:mod:`cwlpkg.runner`)."""

from cwlpkg.cwl import (
    describe,
    entrypoint,
    input_schema,
    job_order,
    pack,
    parse_document,
    select_workflow,
    step_count,
    validate_document,
    validate_inputs,
    workflow_ids,
)

__all__ = [
    "describe",
    "entrypoint",
    "input_schema",
    "job_order",
    "pack",
    "parse_document",
    "select_workflow",
    "step_count",
    "validate_document",
    "validate_inputs",
    "workflow_ids",
]
