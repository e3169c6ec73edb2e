"""CWL application packages without Prefect: parse, validate, describe as OGC processes,
turn execute inputs into job orders, and run them with cwltool (:mod:`cwlpkg.runner`).

Pure functions used by the gateway at deploy/execute time and by the flow before it
hands a workflow to a backend::

    import cwlpkg as cwl

    doc = cwl.parse_document(text)                  # YAML/JSON -> plain dict
    urls = cwl.remote_imports(doc)                  # $import-ed schemas: fetch them (guarded)
    doc = cwl.inline_imports(doc, {url: cwl.parse_yaml(text_of[url]) for url in urls})
    cwl.validate_document(doc)                      # cwltool's own loader and checks
    process_id = cwl.select_workflow(doc, w)        # ?w= or the root Workflow
    description = cwl.describe(doc, process_id)     # OGC Part 1 1.0 process description
    inputs = cwl.validate_inputs(description, request["inputs"])
    packed = cwl.pack(doc, process_id)              # write as packed.cwl
    cwl.check_package_files(packed, "main")          # files only as URLs, in input defaults
    order = cwl.job_order(doc, process_id, inputs)  # write as job.json
    # run: cwltool packed.cwl#<cwl.entrypoint(packed)> job.json

Every error a user can fix is raised as ``InvalidPackage`` (the CWL) or
``InvalidInput`` (the execute request) with a message meant for them.

One concern per module: :mod:`cwlpkg.document` (parse, choose the process, validate
with cwltool, pack), :mod:`cwlpkg.describe` (the OGC description and the input schema:
CWL types as JSON Schema), :mod:`cwlpkg.inputs` (execute inputs checked against the
description; the job order), :mod:`cwlpkg.locations` (files come from URLs only, never the
host), :mod:`cwlpkg.imports` (remote schema imports written into the package),
:mod:`cwlpkg.runner` (cwltool); ``cwlpkg._structure`` reads the document layout they
share (processes, ids, parameters, named types).
"""

from cwlpkg.describe import describe, input_schema
from cwlpkg.document import (
    entrypoint,
    pack,
    parse_document,
    parse_yaml,
    select_workflow,
    step_count,
    validate_document,
    workflow_ids,
)
from cwlpkg.imports import inline_imports, remote_imports
from cwlpkg.inputs import file_urls, job_order, validate_inputs
from cwlpkg.locations import check_package_files

__all__ = [
    "check_package_files",
    "describe",
    "entrypoint",
    "file_urls",
    "inline_imports",
    "input_schema",
    "job_order",
    "pack",
    "parse_document",
    "parse_yaml",
    "remote_imports",
    "select_workflow",
    "step_count",
    "validate_document",
    "validate_inputs",
    "workflow_ids",
]
