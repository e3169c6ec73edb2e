"""A hostile tenant against the outbound guard, the engine's disk and another user's data,
on the embedded default (the session ``engine``: no sandbox, open mode) with two users.

The stack lists ``127.0.0.1/32`` as an allowed network (``tests/conftest.py``: the
tests' own servers listen there), so the attacks aim where the guard still refuses:
the engine's own services on 127.0.0.1 (its Prefect API and gateway ports, by address,
by ``localhost``, by ``0.0.0.0`` and by an IPv4-mapped IPv6 address), another loopback
address (127.0.0.2, where an "internal" server with a secret listens), and the cloud
metadata address. A victim user's job runs before the attacks; after them its status and
results are what they were, and the internal server was never asked for anything.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import ipaddress
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import requests

from tests.conftest import Engine, FileServer, free_port
from tests.security.conftest import OidcGateway, auth
from tests.support import (
    ECHO_CWL,
    P1_EXC,
    assert_ogc_exception,
    deploy_cwl,
    execute_async,
    flow_run_id,
    result_bytes,
    wait_for_status,
)

REPO = Path(__file__).resolve().parents[2]
SECRET = b"internal-secret-7c1e"

READ_FILE_CWL = """\
cwlVersion: v1.2
class: CommandLineTool
id: read-file
baseCommand: cat
inputs:
  f:
    type: File
    inputBinding: {position: 1}
outputs:
  copy:
    type: stdout
stdout: copy.txt
"""
LIST_DIR_CWL = """\
cwlVersion: v1.2
class: CommandLineTool
id: list-dir
baseCommand: [ls, -R]
inputs:
  d:
    type: Directory
    inputBinding: {position: 1}
outputs:
  listing:
    type: stdout
stdout: listing.txt
"""
BAD_EXPRESSION_CWL = """\
cwlVersion: v1.2
class: CommandLineTool
id: bad-expression
requirements:
  InlineJavascriptRequirement: {}
baseCommand: echo
arguments: ["$(inputs.nothing.deeper)"]
inputs:
  message: string
outputs: []
"""
FAILING_TOOL_CWL = """\
cwlVersion: v1.2
class: CommandLineTool
id: failing-tool
baseCommand: [sh, -c, "echo the tool says no >&2; exit 3"]
inputs:
  message: string
outputs: []
"""


# --- servers of the attack --------------------------------------------------------------


@dataclass
class Internal:
    """A server on 127.0.0.2 (loopback, not an allowed network) holding a secret."""

    url: str
    closed_url: str  # the same address, a port nothing listens on
    hits: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def internal() -> Iterator[Internal]:
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(SECRET)))
            self.end_headers()
            self.wfile.write(SECRET)

        do_POST = do_GET  # noqa: N815

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    closed = free_port()
    yield Internal(f"http://127.0.0.2:{server.server_port}", f"http://127.0.0.2:{closed}", hits)
    server.shutdown()
    server.server_close()


def _service_urls(engine: Engine) -> dict[str, str]:
    """The engine's own services, each written several ways."""
    prefect = urlparse(engine.prefect_api_url)
    gateway = urlparse(engine.url)
    urls = {
        "prefect": f"{engine.prefect_api_url}/flow_runs/filter",
        "prefect-by-name": f"http://localhost:{prefect.port}/api/deployments/filter",
        "prefect-any": f"http://0.0.0.0:{prefect.port}/api/flow_runs/filter",
        "prefect-mapped": f"http://[::ffff:127.0.0.1]:{prefect.port}/api/flow_runs/filter",
        "gateway": f"http://127.0.0.1:{gateway.port}/ogc-api/jobs",
        "metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    }
    host = socket.gethostname()
    with contextlib.suppress(OSError):
        if ipaddress.ip_address(socket.gethostbyname(host)).is_loopback:
            urls["prefect-hostname"] = f"http://{host}:{prefect.port}/api/admin/version"
    return urls


# --- the victim --------------------------------------------------------------------------


@dataclass
class Victim:
    user: str
    api: str
    job_url: str
    results: dict[str, Any]


@pytest.fixture(scope="module")
def victim(engine: Engine) -> Victim:
    """Another user with a finished job and its results, before any attack."""
    user = f"victim-{uuid.uuid4().hex[:6]}"
    api = engine.api(user)
    deploy_cwl(api, ECHO_CWL)
    created = execute_async(api, "echo", {"message": "the victim's words"})
    assert created.status_code == 201, created.text
    job_url = created.headers["Location"]
    assert wait_for_status(job_url)["status"] == "successful"
    results = requests.get(f"{job_url}/results", timeout=30).json()
    return Victim(user, api, job_url, results)


@pytest.fixture(autouse=True)
def _victim_untouched(victim: Victim, internal: Internal) -> Iterator[None]:
    yield
    status = requests.get(victim.job_url, timeout=30).json()
    assert status["status"] == "successful", status
    assert requests.get(f"{victim.job_url}/results", timeout=30).json() == victim.results
    assert result_bytes(victim.results["said"]["href"]) == b"the victim's words\n"
    assert internal.hits == [], "the internal server was reached"


@pytest.fixture
def attacker(engine: Engine) -> str:
    return engine.api(f"attacker-{uuid.uuid4().hex[:6]}")


def _execute(api: str, process_id: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(
        f"{api}/processes/{process_id}/execution",
        json=body,
        headers={"Prefer": "respond-async"},
        timeout=30,
    )


def _failed_job(api: str, process_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
    created = _execute(api, process_id, {"inputs": inputs})
    assert created.status_code == 201, created.text
    final = wait_for_status(created.headers["Location"], timeout=120)
    assert final["status"] == "failed", final
    return final


# --- callbacks ---------------------------------------------------------------------------


def test_a_callback_to_the_engines_own_services_is_refused_at_submit(
    engine: Engine, attacker: str, victim: Victim
):
    deploy_cwl(attacker, ECHO_CWL)
    victim_run = victim.job_url.rsplit("/", 1)[1]
    cancel = f"{engine.prefect_api_url}/flow_runs/{victim_run}/set_state"
    for name, uri in {**_service_urls(engine), "cancel-the-victim": cancel}.items():
        response = _execute(
            attacker, "echo", {"inputs": {"message": "x"}, "subscriber": {"successUri": uri}}
        )
        body = assert_ogc_exception(response, 400, f"{P1_EXC}/invalid-parameter")
        assert body["detail"].startswith("subscriber successUri: "), (name, body)
        assert "is refused" in body["detail"], (name, body)
    schedule = requests.post(
        f"{attacker}/processes/echo/schedules",
        json={"interval": 3600, "inputs": {"message": "x"}, "subscriber": {"failedUri": cancel}},
        timeout=30,
    )
    assert_ogc_exception(schedule, 400, f"{P1_EXC}/invalid-parameter")


# --- stage-in ----------------------------------------------------------------------------


def test_stage_in_from_the_engines_services_or_loopback_is_refused_at_submit(
    engine: Engine, attacker: str, internal: Internal
):
    deploy_cwl(attacker, READ_FILE_CWL)
    targets = {
        **_service_urls(engine),
        "internal": f"{internal.url}/secret",
        "internal-href": f"{internal.url}/secret",
    }
    for name, url in targets.items():
        value: Any = {"href": url} if name.endswith("-href") else url
        response = _execute(attacker, "read-file", {"inputs": {"f": value}})
        body = assert_ogc_exception(response, 400, f"{P1_EXC}/invalid-parameter")
        assert body["errors"]["f"].startswith(f"{url} is refused"), (name, body)


def test_a_refusal_says_the_same_whether_the_internal_address_answers_or_not(
    attacker: str, internal: Internal
):
    deploy_cwl(attacker, READ_FILE_CWL)
    answers = []
    for base in (internal.url, internal.closed_url):
        response = _execute(attacker, "read-file", {"inputs": {"f": f"{base}/secret"}})
        detail = assert_ogc_exception(response, 400)["detail"]
        answers.append(detail.replace(base, "<url>"))
    assert answers[0] == answers[1]


def test_a_redirect_to_loopback_fails_the_job_naming_the_input(
    engine: Engine, attacker: str, internal: Internal, redirector: str
):
    deploy_cwl(attacker, READ_FILE_CWL)
    messages = {}
    for name, target in (
        ("answers", internal.url),
        ("silent", internal.closed_url),
        ("prefect", "http://localhost:" + engine.prefect_api_url.rsplit(":", 1)[1]),
    ):
        url = f"{redirector}{target}/secret"
        final = _failed_job(attacker, "read-file", {"f": url})
        assert final["message"].startswith(f"input 'f': cannot fetch {url}: "), final
        assert "is refused" in final["message"] and "redirected" in final["message"], final
        messages[name] = final["message"].replace(urlparse(target).netloc, "<host>")
    # No oracle: an internal address that answers reads like one that does not.
    assert messages["answers"] == messages["silent"]


def test_a_stac_asset_on_loopback_fails_the_job_naming_the_input(
    engine: Engine, attacker: str, internal: Internal, file_server: FileServer
):
    deploy_cwl(attacker, LIST_DIR_CWL)
    for asset in (f"{internal.url}/B04.tif", f"{engine.prefect_api_url}/admin/version"):
        item = {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": f"lure-{uuid.uuid4().hex[:6]}",
            "geometry": {"type": "Point", "coordinates": [0, 0]},
            "bbox": [0, 0, 0, 0],
            "properties": {"datetime": "2024-01-01T00:00:00Z"},
            "links": [],
            "assets": {"B04": {"href": asset}},
        }
        url = file_server.add(f"{item['id']}.json", json.dumps(item))
        final = _failed_job(attacker, "list-dir", {"d": url})
        assert final["message"].startswith("input 'd': cannot fetch "), final
        assert "is refused" in final["message"], final


# --- the engine's disk -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "file:///etc/hostname",
        "file:///no/such/file",
        {"href": "file:///etc/hostname"},
        "/etc/hostname",
        "file:///proc/self/environ",
    ],
)
def test_file_inputs_are_refused_at_submit_without_an_oracle(attacker: str, value: Any):
    deploy_cwl(attacker, READ_FILE_CWL)
    response = _execute(attacker, "read-file", {"inputs": {"f": value}})
    body = assert_ogc_exception(response, 400, f"{P1_EXC}/invalid-parameter")
    assert body["errors"]["f"].endswith("is not an http(s):// or s3:// URL"), body
    assert "exist" not in body["detail"]


@pytest.mark.parametrize(
    "default",
    [
        "default: {class: File, location: 'file:///etc/hostname'}",
        "default: {class: File, location: 'file:///no/such/file'}",
        "default: {class: File, path: /etc/hostname}",
        "default: {class: File, location: hostname}",
    ],
)
def test_file_defaults_are_refused_at_deploy_without_an_oracle(attacker: str, default: str):
    package = READ_FILE_CWL.replace(
        "    inputBinding: {position: 1}", f"    {default}\n    inputBinding: {{position: 1}}"
    )
    response = requests.post(
        f"{attacker}/processes",
        data=package,
        headers={"Content-Type": "application/cwl+yaml"},
        timeout=30,
    )
    body = assert_ogc_exception(response, 400)
    assert "http(s):// or s3:// URL" in body["detail"], body
    assert "exist" not in body["detail"]


@pytest.mark.parametrize("target", ["/etc/hostname", "/no/such/file"])
def test_an_include_of_a_host_file_is_refused_the_same_either_way(attacker: str, target: str):
    package = (
        "cwlVersion: v1.2\nclass: CommandLineTool\nid: includer\nbaseCommand: ls\n"
        "requirements:\n  InitialWorkDirRequirement:\n    listing:\n"
        f"      - entryname: x\n        entry:\n          $include: {target}\n"
        "inputs: []\noutputs: []\n"
    )
    response = requests.post(
        f"{attacker}/processes",
        data=package,
        headers={"Content-Type": "application/cwl+yaml"},
        timeout=30,
    )
    detail = assert_ogc_exception(response, 400)["detail"]
    assert detail.endswith(
        f"'file://{target}' is outside the package: an application package must be "
        "self-contained (put every process in its `$graph`)"
    ), detail


# --- another user's results --------------------------------------------------------------


def test_another_users_results_are_404_by_url(engine: Engine, attacker: str, victim: Victim):
    href = victim.results["said"]["href"]
    assert href.startswith(f"{victim.job_url}/results/"), href
    stolen = href.replace(victim.api, attacker)
    assert_ogc_exception(requests.get(stolen, timeout=30), 404, f"{P1_EXC}/no-such-job")
    unprefixed = href.replace(victim.api, engine.api(None))
    assert_ogc_exception(requests.get(unprefixed, timeout=30), 404, f"{P1_EXC}/no-such-job")


def test_another_users_results_are_404_with_a_token(oidc_gateway: OidcGateway, victim: Victim):
    href = victim.results["said"]["href"]
    path = href.removeprefix(victim.api)  # /jobs/<id>/results/said/said.txt
    mine = oidc_gateway.issuer.token(victim.user)
    theirs = oidc_gateway.issuer.token("mallory")
    got = requests.get(oidc_gateway.api(victim.user) + path, headers=auth(mine), timeout=30)
    assert got.status_code == 200 and got.content == b"the victim's words\n"
    for api in (oidc_gateway.api("mallory"), oidc_gateway.api(None)):
        response = requests.get(api + path, headers=auth(theirs), timeout=30)
        assert_ogc_exception(response, 404, f"{P1_EXC}/no-such-job")
    forbidden = requests.get(oidc_gateway.api(victim.user) + path, headers=auth(theirs), timeout=30)
    assert_ogc_exception(forbidden, 403)


def test_path_traversal_on_the_results_route_is_404(engine: Engine, attacker: str, victim: Victim):
    deploy_cwl(attacker, ECHO_CWL)
    created = execute_async(attacker, "echo", {"message": "mine"})
    own = created.headers["Location"]
    assert wait_for_status(own)["status"] == "successful"
    victim_job = victim.job_url.rsplit("/", 1)[1]
    own_path = urlparse(own).path
    parsed = urlparse(engine.url)
    for tail in (
        f"/results/%2e%2e/{victim_job}/said/said.txt",
        f"/results/%2e%2e/%2e%2e/{victim_job}/said/said.txt",
        f"/results/..%2f..%2f{victim_job}%2fsaid%2fsaid.txt",
        "/results/said/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/hostname",
        "/results//etc/hostname",
        "/results/%2fetc%2fhostname",
        "/results/said/said.txt%00.png",
    ):
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        connection.request("GET", own_path + tail)  # sent as written: no dot-segment removal
        answer = connection.getresponse()
        body = answer.read()
        connection.close()
        assert answer.status == 404, (tail, answer.status, body[:200])
        assert SECRET not in body and b"victim" not in body, tail
    assert result_bytes(f"{own}/results/said/said.txt") == b"mine\n"


def test_result_files_are_served_safely(attacker: str):
    page = """\
cwlVersion: v1.2
class: CommandLineTool
id: page
baseCommand: [sh, -c, "echo '<script>alert(1)</script>' > page.html"]
inputs: []
outputs:
  page:
    type: File
    outputBinding: {glob: page.html}
"""
    deploy_cwl(attacker, page)
    created = execute_async(attacker, "page", {})
    assert wait_for_status(created.headers["Location"])["status"] == "successful"
    results = requests.get(f"{created.headers['Location']}/results", timeout=30).json()
    served = requests.get(results["page"]["href"], timeout=30)
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/html")
    assert served.headers["content-security-policy"] == "sandbox"
    assert served.headers["x-content-type-options"] == "nosniff"


# --- no engine internals in what users see -----------------------------------------------


def _internals(engine: Engine) -> list[str]:
    return [
        str(engine.home),
        str(engine.home.resolve()),
        str(REPO),
        "site-packages",
        "Traceback",
        "packages/",
        ".cwl:",
        "file://",
    ]


def test_a_failing_job_shows_no_engine_internals(
    engine: Engine, attacker: str, file_server: FileServer
):
    deploy_cwl(attacker, BAD_EXPRESSION_CWL)
    deploy_cwl(attacker, FAILING_TOOL_CWL)
    deploy_cwl(attacker, READ_FILE_CWL)
    jobs = {
        "expression": _failed_job(attacker, "bad-expression", {"message": "x"}),
        "tool": _failed_job(attacker, "failing-tool", {"message": "x"}),
        "stage-in": _failed_job(attacker, "read-file", {"f": f"{file_server.url}/no-such-file"}),
    }
    assert "Expression evaluation error" in jobs["expression"]["message"]
    assert "the tool says no" in jobs["tool"]["message"]
    for name, final in jobs.items():
        job_url = f"{attacker}/jobs/{final['jobID']}"
        seen = {
            "status": json.dumps(requests.get(job_url, timeout=30).json()),
            "results": requests.get(f"{job_url}/results", timeout=30).text,
            "logs": requests.get(f"{job_url}/logs", timeout=30).text,
            "logs-text": requests.get(f"{job_url}/logs?f=text", timeout=30).text,
            "logs-html": requests.get(f"{job_url}/logs?f=html", timeout=30).text,
        }
        for where, text in seen.items():
            for internal_text in _internals(engine):
                assert internal_text not in text, (name, where, internal_text, text[:3000])
        # The tool's own words stay in the logs.
        if name == "tool":
            assert "tool: the tool says no" in seen["logs-text"]
    # Operators keep the tracebacks: in Prefect's logs of the run.
    logs = requests.post(
        f"{engine.prefect_api_url}/logs/filter",
        auth=engine.prefect_auth,
        json={
            "logs": {
                "flow_run_id": {
                    "any_": [
                        flow_run_id(
                            engine.prefect_api_url, jobs["tool"]["jobID"], engine.prefect_auth
                        )
                    ]
                }
            }
        },
        timeout=30,
    ).json()
    assert any("Traceback" in line["message"] for line in logs)


def test_a_successful_jobs_documents_show_no_host_path(engine: Engine, attacker: str):
    deploy_cwl(attacker, ECHO_CWL)
    created = execute_async(attacker, "echo", {"message": "fine"})
    job_url = created.headers["Location"]
    assert wait_for_status(job_url)["status"] == "successful"
    for path in ("", "/results", "/logs", "/logs?f=text", "/results/said/"):
        text = requests.get(f"{job_url}{path}", timeout=30).text
        for internal_text in _internals(engine):
            assert internal_text not in text, (path, internal_text, text[:2000])
