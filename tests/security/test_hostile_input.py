"""A corpus of hostile and broken requests: each gets its 4xx and an OGC exception.

Never a 5xx, never a hang: every body is validated against the OGC exception schema.
The session engine allows package ``href``s on loopback only (``tests/conftest.py``);
a small loopback server here plays the slow, huge and redirecting package hosts.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from tests.conftest import MAX_REQUEST_BYTES, Engine
from tests.support import P1_EXC, assert_ogc_exception, deploy_cwl

TYPED_CWL = """\
cwlVersion: v1.2
class: CommandLineTool
id: typed
baseCommand: echo
inputs:
  count: int
  ratio: float
  flag: boolean
  word: string
  color:
    type: {type: enum, symbols: [red, green]}
outputs:
  out:
    type: stdout
"""
GOOD_INPUTS = {"count": 1, "ratio": 0.5, "flag": True, "word": "w", "color": "red"}


def _tool(body: str, cwl_version: str = "v1.2", tool_id: str = "tool") -> str:
    return f"cwlVersion: {cwl_version}\nclass: CommandLineTool\nid: {tool_id}\n{body}"


SIMPLE_BODY = "baseCommand: echo\ninputs: []\noutputs: []\n"
BILLION_LAUGHS = (
    "cwlVersion: v1.2\nclass: CommandLineTool\nid: lol\nbaseCommand: echo\noutputs: []\n"
    "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
    )
    + "inputs: *i\n"
)


class _Hosts(http.server.BaseHTTPRequestHandler):
    """Package hosts gone wrong: slow, huge, redirecting to the metadata address."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/slow.cwl":
            self.send_response(200)
            self.send_header("Content-Type", "application/cwl")
            self.end_headers()
            for _ in range(60):  # a byte every half second: never done within the timeout
                try:
                    self.wfile.write(b"#")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.5)
        elif self.path in ("/huge.cwl", "/huge-unsized.cwl"):
            size = 6 * 1024 * 1024  # more than the 5 MiB default limit
            self.send_response(200)
            if self.path == "/huge.cwl":
                self.send_header("Content-Length", str(size))
            self.end_headers()
            try:
                for _ in range(size // 65536):
                    self.wfile.write(b"#" * 65536)
            except OSError:
                return
        elif self.path == "/to-metadata":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()
        elif self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.end_headers()
        else:
            self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def hosts() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hosts)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def typed_api(engine: Engine) -> str:
    """A user with the process ``typed`` deployed."""
    api = engine.api(f"hostile-{uuid.uuid4().hex[:6]}")
    deploy_cwl(api, TYPED_CWL)
    return api


@dataclass
class Case:
    """One hostile request: ``path`` is relative to the user's OGC API tree unless it
    starts with ``//`` (relative to the server root)."""

    method: str
    path: str
    status: int
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    names: tuple[str, ...] = ()  # inputs the exception's ``errors`` must name
    type_uri: str | None = None


def _package(href: str) -> bytes:
    return json.dumps({"executionUnit": {"href": href, "type": "application/cwl"}}).encode()


def _execute(inputs: Any) -> bytes:
    return json.dumps({"inputs": inputs}).encode()


CWL = {"Content-Type": "application/cwl+yaml"}
PKG = {"Content-Type": "application/ogcapppkg+json"}
NO_PROCESS = f"{P1_EXC}/no-such-process"
NO_JOB = f"{P1_EXC}/no-such-job"
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000

CASES: dict[str, Case] = {
    # --- deploy: bodies that are not a package ---------------------------------------
    "deploy-invalid-json": Case("POST", "/processes", 400, b'{"executionUnit": ', PKG),
    "deploy-json-array": Case("POST", "/processes", 400, b"[1, 2]", PKG),
    "deploy-no-execution-unit": Case("POST", "/processes", 400, b'{"processDescription": {}}', PKG),
    "deploy-execution-unit-number": Case("POST", "/processes", 400, b'{"executionUnit": 7}', PKG),
    "deploy-execution-unit-empty": Case("POST", "/processes", 400, b'{"executionUnit": {}}', PKG),
    "deploy-deep-json": Case("POST", "/processes", 400, DEEP_JSON, PKG),
    "deploy-deep-json-cwl": Case(
        "POST", "/processes", 400, DEEP_JSON, {"Content-Type": "application/cwl+json"}
    ),
    "deploy-empty-body": Case("POST", "/processes", 400, b"", CWL),
    "deploy-not-yaml": Case("POST", "/processes", 400, b"key: [unclosed\n  - : :", CWL),
    "deploy-yaml-scalar": Case("POST", "/processes", 400, b"just a string", CWL),
    "deploy-not-utf8": Case("POST", "/processes", 400, b"cwlVersion: v1.2\nid: \xff\xfe\n", CWL),
    "deploy-custom-yaml-tag": Case("POST", "/processes", 400, b"!!python/object:os.system x", CWL),
    "deploy-billion-laughs": Case("POST", "/processes", 400, BILLION_LAUGHS.encode(), CWL),
    "deploy-wrong-media-type": Case(
        "POST", "/processes", 415, b"x", {"Content-Type": "text/plain"}
    ),
    "deploy-no-media-type": Case("POST", "/processes", 415, b"x", {"Content-Type": ""}),
    "deploy-too-large": Case("POST", "/processes", 413, b"#" * (MAX_REQUEST_BYTES + 1), CWL),
    # --- deploy: CWL that does not validate ------------------------------------------
    "cwl-no-version": Case(
        "POST", "/processes", 400, b"class: CommandLineTool\nid: t\nbaseCommand: echo\n", CWL
    ),
    "cwl-version-0.9": Case("POST", "/processes", 400, _tool(SIMPLE_BODY, "v0.9").encode(), CWL),
    "cwl-version-draft-3": Case(
        "POST", "/processes", 400, _tool(SIMPLE_BODY, "draft-3").encode(), CWL
    ),
    "cwl-version-2.0": Case("POST", "/processes", 400, _tool(SIMPLE_BODY, "v2.0").encode(), CWL),
    "cwl-unknown-class": Case(
        "POST",
        "/processes",
        400,
        f"cwlVersion: v1.2\nclass: Nope\nid: t\n{SIMPLE_BODY}".encode(),
        CWL,
    ),
    "cwl-unknown-input-type": Case(
        "POST",
        "/processes",
        400,
        _tool("baseCommand: echo\ninputs:\n  x: quaternion\noutputs: []\n").encode(),
        CWL,
    ),
    "cwl-missing-step-source": Case(
        "POST",
        "/processes",
        400,
        b"cwlVersion: v1.2\nclass: Workflow\nid: wf\ninputs: []\noutputs:\n"
        b"  o:\n    type: File\n    outputSource: nowhere/out\nsteps: []\n",
        CWL,
    ),
    "cwl-external-run": Case(
        "POST",
        "/processes",
        400,
        b"cwlVersion: v1.2\nclass: Workflow\nid: wf\ninputs: []\noutputs: []\n"
        b"steps:\n  s:\n    run: /etc/passwd\n    in: []\n    out: []\n",
        CWL,
    ),
    # --- deploy: process ids ----------------------------------------------------------
    "id-path-traversal": Case(
        "POST", "/processes", 400, _tool(SIMPLE_BODY, tool_id="../../etc/passwd").encode(), CWL
    ),
    "id-too-long": Case(
        "POST", "/processes", 400, _tool(SIMPLE_BODY, tool_id="a" * 150).encode(), CWL
    ),
    "id-with-slash": Case(
        "POST", "/processes", 400, _tool(SIMPLE_BODY, tool_id="a/b").encode(), CWL
    ),
    "id-with-space": Case(
        "POST", "/processes", 400, _tool(SIMPLE_BODY, tool_id="'a b'").encode(), CWL
    ),
    "id-with-at": Case(
        "POST", "/processes", 400, _tool(SIMPLE_BODY, tool_id="a@bob").encode(), CWL
    ),
    "id-leading-dot": Case(
        "POST", "/processes", 400, _tool(SIMPLE_BODY, tool_id=".hidden").encode(), CWL
    ),
    # --- deploy: resources above the site's maxima -------------------------------------
    "ram-above-max": Case(
        "POST",
        "/processes",
        400,
        _tool(SIMPLE_BODY + "requirements:\n  ResourceRequirement:\n    ramMin: 999999\n").encode(),
        CWL,
    ),
    "cores-above-max": Case(
        "POST",
        "/processes",
        400,
        _tool(SIMPLE_BODY + "hints:\n  - class: ResourceRequirement\n    coresMin: 64\n").encode(),
        CWL,
    ),
    # --- deploy: hrefs ----------------------------------------------------------------
    "href-file": Case("POST", "/processes", 400, _package("file:///etc/passwd"), PKG),
    "href-ftp": Case("POST", "/processes", 400, _package("ftp://127.0.0.1/app.cwl"), PKG),
    "href-gopher": Case("POST", "/processes", 400, _package("gopher://127.0.0.1:70/_x"), PKG),
    "href-data": Case("POST", "/processes", 400, _package("data:text/plain,cwlVersion"), PKG),
    "href-not-a-url": Case("POST", "/processes", 400, _package("not a url"), PKG),
    "href-number": Case("POST", "/processes", 400, b'{"executionUnit": {"href": 42}}', PKG),
    "href-metadata": Case(
        "POST", "/processes", 400, _package("http://169.254.169.254/latest/meta-data/"), PKG
    ),
    "href-private": Case("POST", "/processes", 400, _package("http://10.1.2.3/app.cwl"), PKG),
    "href-mapped-v6": Case(
        "POST", "/processes", 400, _package("http://[::ffff:169.254.169.254]/x"), PKG
    ),
    "href-zero": Case("POST", "/processes", 400, _package("http://0.0.0.0:9/app.cwl"), PKG),
    "href-unresolvable": Case(
        "POST", "/processes", 400, _package("http://no-such-host.invalid/app.cwl"), PKG
    ),
    "href-missing": Case("POST", "/processes", 400, _package("{hosts}/missing.cwl"), PKG),
    "href-slow": Case("POST", "/processes", 400, _package("{hosts}/slow.cwl"), PKG),
    "href-huge": Case("POST", "/processes", 413, _package("{hosts}/huge.cwl"), PKG),
    "href-huge-unsized": Case("POST", "/processes", 413, _package("{hosts}/huge-unsized.cwl"), PKG),
    "href-redirect-to-metadata": Case(
        "POST", "/processes", 400, _package("{hosts}/to-metadata"), PKG
    ),
    "href-redirect-loop": Case("POST", "/processes", 400, _package("{hosts}/loop"), PKG),
    # --- execute ----------------------------------------------------------------------
    "execute-invalid-json": Case("POST", "/processes/typed/execution", 400, b'{"inputs": {'),
    "execute-array": Case("POST", "/processes/typed/execution", 400, b"[]"),
    "execute-inputs-list": Case("POST", "/processes/typed/execution", 400, b'{"inputs": [1]}'),
    "execute-deep-json": Case("POST", "/processes/typed/execution", 400, DEEP_JSON),
    "execute-unknown-input": Case(
        "POST",
        "/processes/typed/execution",
        400,
        _execute({**GOOD_INPUTS, "evil": 1}),
        names=("evil",),
    ),
    "execute-missing-input": Case(
        "POST",
        "/processes/typed/execution",
        400,
        _execute({k: v for k, v in GOOD_INPUTS.items() if k != "word"}),
        names=("word",),
    ),
    "execute-every-input-wrong": Case(
        "POST",
        "/processes/typed/execution",
        400,
        _execute({"count": "many", "ratio": "x", "flag": "yes", "word": 5, "color": "blue"}),
        names=("count", "ratio", "flag", "word", "color"),
    ),
    "execute-int-overflow-type": Case(
        "POST",
        "/processes/typed/execution",
        400,
        _execute({**GOOD_INPUTS, "count": 1.5}),
        names=("count",),
    ),
    "execute-path-trick": Case("POST", "/processes/..%2F..%2Fetc/execution", 404, b"{}"),
    "execute-long-id": Case("POST", f"/processes/{'x' * 500}/execution", 404, b"{}"),
    "execute-too-large": Case(
        "POST", "/processes/typed/execution", 413, b"{" + b" " * (MAX_REQUEST_BYTES + 1) + b"}"
    ),
    "describe-path-trick": Case("GET", "/processes/..%2Fjobs", 404),
    "undeploy-missing": Case("DELETE", "/processes/nothing-here", 404, type_uri=NO_PROCESS),
    # --- jobs ---------------------------------------------------------------------------
    "job-not-uuid": Case("GET", "/jobs/not-a-uuid", 404, type_uri=NO_JOB),
    "job-sql-ish": Case("GET", "/jobs/1'%20OR%20'1'='1", 404, type_uri=NO_JOB),
    "job-random-uuid": Case("GET", f"/jobs/{uuid.UUID(int=7)}", 404, type_uri=NO_JOB),
    "dismiss-random-uuid": Case("DELETE", f"/jobs/{uuid.UUID(int=8)}", 404, type_uri=NO_JOB),
    "results-random-uuid": Case("GET", f"/jobs/{uuid.UUID(int=9)}/results", 404, type_uri=NO_JOB),
    "jobs-limit-zero": Case("GET", "/jobs?limit=0", 400),
    "jobs-limit-huge": Case("GET", "/jobs?limit=10000000", 400),
    "jobs-limit-text": Case("GET", "/jobs?limit=ten", 400),
    "jobs-offset-negative": Case("GET", "/jobs?offset=-1", 400),
    "jobs-status-unknown": Case("GET", "/jobs?status=hacked", 400),
    "jobs-datetime-bad": Case("GET", "/jobs?datetime=yesterday", 400),
    "jobs-min-duration-negative": Case("GET", "/jobs?minDuration=-5", 400),
    # --- users ------------------------------------------------------------------------
    "user-reserved": Case("GET", "//anonymous/ogc-api/processes", 400),
    "user-with-space": Case("GET", "//bad%20user/ogc-api/processes", 400),
    "user-too-long": Case("GET", f"//{'u' * 100}/ogc-api/processes", 400),
    "user-dots": Case("GET", "//..%2F..%2F/ogc-api/jobs", 404),
    "method-not-allowed": Case("PATCH", "/processes/typed", 405),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_request_is_refused(engine: Engine, typed_api: str, hosts: str, name: str):
    case = CASES[name]
    url = (engine.url + case.path[1:]) if case.path.startswith("//") else typed_api + case.path
    body = case.body.replace(b"{hosts}", hosts.encode()) if case.body else case.body
    response = requests.request(case.method, url, data=body, headers=case.headers, timeout=60)
    problem = assert_ogc_exception(response, case.status, case.type_uri)
    assert response.status_code < 500
    for name_ in case.names:
        assert name_ in problem.get("errors", {}), problem
        assert name_ in problem["detail"], problem


def test_corpus_is_large_enough():
    assert len(CASES) >= 40


def test_good_request_still_works(typed_api: str):
    """The corpus's process is fine: the refusals above are about the requests."""
    response = requests.post(
        f"{typed_api}/processes/typed/execution",
        data=_execute(GOOD_INPUTS),
        headers={"Prefer": "respond-async"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
