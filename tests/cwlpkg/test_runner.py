"""cwltool runs of packed documents (``cwlpkg.runner``): what a failure tells the user."""

from __future__ import annotations

from pathlib import Path

import cwlpkg as cwl
from cwlpkg.runner import run_cwl

# The step writes `resize-50.png` where the package's glob wants `<stem>-resize.png`: the
# mismatch a stand-in that differed from the real eoepca/convert image once produced.
GLOB_MISMATCH_CWL = """\
cwlVersion: v1.2
$graph:
  - class: Workflow
    id: resize
    inputs: {}
    outputs:
      image: {type: File, outputSource: convert/image}
    steps:
      convert: {run: "#convert", in: {}, out: [image]}
  - class: CommandLineTool
    id: convert
    baseCommand: [sh, -c, "echo 'logo.png: 100x60 -> resize-50.png: 50x30'; : > resize-50.png"]
    inputs: {}
    outputs:
      image:
        type: File
        outputBinding: {glob: "*-resize.png"}
"""


def test_a_failed_step_says_cwltools_reason(tmp_path: Path) -> None:
    doc = cwl.parse_document(GLOB_MISMATCH_CWL)
    packed = cwl.pack(doc, "resize")

    outcome = run_cwl(packed, cwl.entrypoint(packed), {}, tmp_path)

    assert not outcome.success
    assert outcome.message.startswith(
        "step convert failed: Error collecting output for parameter 'image': "
        "Did not find output file with glob pattern: ['*-resize.png']: "
    ), outcome.message
    assert outcome.message.endswith("stderr: logo.png: 100x60 -> resize-50.png: 50x30")
    assert str(tmp_path) not in outcome.message  # no engine paths, no packed-copy places
