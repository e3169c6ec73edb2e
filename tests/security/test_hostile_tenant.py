"""A hostile tenant's tools against the engine's host, its secrets and another user
(issue 14, acceptance 1-2).

Two stacks: ``sandbox`` (podman, ``OAPIP_SANDBOX=containers``, small site limits so the
resource attacks end quickly) and ``off`` (the session engine: the embedded default,
tools on the host as an unprivileged user). Each attack is a package of its own, run by
an attacker user after a victim user's job has finished; after each, the victim's job and
results are what they were, and the stack's Prefect credentials appear in nothing the
attacker can read (results, status, logs). The network, stage-in, callback and ``file:``
attacks are in ``test_hostile_tenant_network.py``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from infrastructure.containers.images import BASE_IMAGE
from infrastructure.containers.podman import PodmanService
from tests.conftest import Engine, FileServer, _running_engine, container_env
from tests.support import ECHO_CWL, deploy_cwl, execute_async, result_bytes, wait_for_status

SANDBOX_PIDS = 64
SANDBOX_FILE_MIB = 16
SANDBOX_RAM_MIB = 256
VICTIM_WORDS = "the victim's words 4f2a"


@pytest.fixture(scope="module")
def sandbox_engine(
    tmp_path_factory: pytest.TempPathFactory,
    tool_bin: Path,
    file_server: FileServer,
    podman: PodmanService,
) -> Iterator[Engine]:
    """A stack whose tools all run in podman containers (``OAPIP_SANDBOX=containers``)."""
    env = {
        **container_env(podman),
        "OAPIP_SANDBOX": "containers",
        "OAPIP_DEFAULT_IMAGE": BASE_IMAGE,
        "OAPIP_SANDBOX_MAX_PIDS": str(SANDBOX_PIDS),
        "OAPIP_SANDBOX_MAX_FILE_MIB": str(SANDBOX_FILE_MIB),
        "OAPIP_MAX_JOB_RAM_MIB": str(SANDBOX_RAM_MIB),
    }
    home = tmp_path_factory.mktemp("oapip-home-sandbox")
    with _running_engine("sandbox", home, tool_bin, extra_env=env) as running:
        yield running


@pytest.fixture(params=["sandbox", "off"], scope="module")
def stack(request: pytest.FixtureRequest) -> Engine:
    return request.getfixturevalue("sandbox_engine" if request.param == "sandbox" else "engine")


@dataclass
class Victim:
    job_url: str
    run_id: str
    results: dict[str, Any]


@pytest.fixture(scope="module")
def victim(stack: Engine) -> Victim:
    api = stack.api(f"victim-{uuid.uuid4().hex[:6]}")
    deploy_cwl(api, ECHO_CWL)
    created = execute_async(api, "echo", {"message": VICTIM_WORDS})
    assert created.status_code == 201, created.text
    job_url = created.headers["Location"]
    assert wait_for_status(job_url, timeout=120)["status"] == "successful"
    results = requests.get(f"{job_url}/results", timeout=30).json()
    return Victim(job_url, job_url.rsplit("/", 1)[1], results)


@pytest.fixture(autouse=True)
def _victim_untouched(stack: Engine, victim: Victim) -> Iterator[None]:
    yield
    status = requests.get(victim.job_url, timeout=30).json()
    assert status["status"] == "successful", status
    assert requests.get(f"{victim.job_url}/results", timeout=30).json() == victim.results
    assert result_bytes(victim.results["said"]["href"]).decode().strip() == VICTIM_WORDS


def attack_cwl(process_id: str, script: str, *, network: bool = False) -> str:
    """A package whose tool runs ``script`` with ``sh -c`` (``$0``: the ``target`` input)."""
    requirements: dict[str, Any] = {"ToolTimeLimit": {"timelimit": 90}}
    if network:
        requirements["NetworkAccess"] = {"networkAccess": True}
    return json.dumps(
        {
            "cwlVersion": "v1.2",
            "class": "CommandLineTool",
            "id": process_id,
            "requirements": requirements,
            # baseCommand is taken as it is (no CWL parameter references in it).
            "baseCommand": ["sh", "-c", script],
            "inputs": {"target": {"type": "string", "inputBinding": {"position": 1}}},
            "outputs": {"out": {"type": "stdout"}},
            "stdout": "out.txt",
        }
    )


@dataclass
class Attack:
    status: dict[str, Any]
    output: str  # the tool's stdout (a successful job's result), else ""
    seen: str  # everything the attacker can read: status, results, output, logs


def run_attack(stack: Engine, process_id: str, script: str, target: str, **kw: Any) -> Attack:
    api = stack.api(f"attacker-{uuid.uuid4().hex[:6]}")
    deploy_cwl(api, attack_cwl(process_id, script, **kw), media_type="application/cwl+json")
    created = execute_async(api, process_id, {"target": target})
    assert created.status_code == 201, created.text
    job_url = created.headers["Location"]
    status = wait_for_status(job_url, timeout=180)
    output = ""
    results = requests.get(f"{job_url}/results", timeout=30)
    if status["status"] == "successful":
        output = result_bytes(results.json()["out"]["href"]).decode(errors="replace")
    logs = requests.get(f"{job_url}/logs", timeout=30).text
    seen = "\n".join([json.dumps(status), results.text, output, logs])
    secret = stack.prefect_auth[1]
    assert secret not in seen, "the Prefect credentials reached the attacker"
    assert "PREFECT_API_AUTH_STRING" not in seen
    return Attack(status, output, seen)


def test_a_tool_runs_unprivileged_and_reads_no_engine_environment(stack: Engine):
    worker_pid = (stack.home / "run" / "worker.pid").read_text().strip()
    script = (
        'id -u; echo "caps $(grep CapEff /proc/self/status)"; '
        'for f in /proc/[0-9]*/environ; do tr "\\0" "\\n" < "$f" 2>/dev/null; done; '
        'cat "/proc/$0/environ" 2>&1 | tr "\\0" "\\n"; echo end'
    )
    attack = run_attack(stack, "environ", script, worker_pid)
    assert attack.status["status"] == "successful", attack.status
    lines = attack.output.splitlines()
    assert lines[0] == "65534", lines[:3]
    assert lines[1].endswith("0000000000000000"), lines[1]  # no capabilities
    assert not any(line.startswith(("PREFECT_", "OAPIP_", "S3_", "AWS_")) for line in lines)
    assert lines[-1] == "end"


def test_a_tool_reads_neither_the_engines_files_nor_another_users_results(
    stack: Engine, victim: Victim
):
    script = (
        'cat "$0"/prefect-auth "$0"/results/*/* "$0"/results/*/*/* '
        '"$0"/prefect/prefect.db "$0"/jobs/*/outputs/* 2>&1 | head -c 2000; '
        'ls -R "$0" 2>&1 | head -50; echo end'
    )
    attack = run_attack(stack, "snoop", script, str(stack.home))
    assert attack.status["status"] == "successful", attack.status
    assert VICTIM_WORDS not in attack.seen
    assert victim.run_id not in attack.output  # not even the victim's job id


PREFECT_ATTACK = """\
PY=/usr/bin/python3
"$PY" - "$0" <<'EOF'
import json, sys, urllib.error, urllib.request
base, victim = json.loads(sys.argv[1])
hosts = ["127.0.0.1"]
try:  # the host as seen from a container: its default gateway
    for line in open("/proc/net/route").read().splitlines()[1:]:
        fields = line.split()
        if fields[1] == "00000000":
            hosts.append(".".join(str(int(fields[2][i:i + 2], 16)) for i in (6, 4, 2, 0)))
except OSError:
    pass
port = base.rsplit(":", 1)[1].split("/")[0]
for host in hosts:
    api = f"http://{host}:{port}/api"
    for name, path, body in (
        ("read", "/flow_runs/filter", {}),
        ("write", f"/flow_runs/{victim}/set_state",
         {"state": {"type": "CANCELLING", "name": "Cancelling"}, "force": True}),
    ):
        request = urllib.request.Request(api + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                print(name, host, answer.status, answer.read()[:200])
        except urllib.error.HTTPError as exc:
            print(name, host, exc.code)
        except OSError as exc:
            print(name, host, "unreachable", type(exc).__name__)
EOF
"""


def test_a_tool_can_neither_read_nor_write_the_prefect_api(stack: Engine, victim: Victim):
    target = json.dumps([stack.prefect_api_url, victim.run_id])
    attack = run_attack(stack, "prefect", PREFECT_ATTACK, target, network=True)
    assert attack.status["status"] == "successful", attack.status
    lines = attack.output.splitlines()
    assert len(lines) >= 2, attack.output
    for line in lines:
        name, host, outcome = line.split()[:3]
        # Contained (unreachable) or refused (401): never answered.
        assert outcome in ("401", "unreachable"), line
    assert victim.run_id not in attack.output


# --- resource attacks: containers only (the single-user stack is not shared) ------------


def test_a_fork_bomb_is_held_to_the_pids_limit(stack: Engine):
    if stack.name != "sandbox":
        pytest.skip("resource limits of containers; the single-user stack is shared")
    script = "n=0; while [ $n -lt 400 ]; do (sleep 15) & n=$((n+1)); done; wait; echo end"
    attack = run_attack(stack, "forkbomb", script, "x")
    # The shell cannot fork past the limit, and says so; the job ends, nothing is left.
    assert attack.status["status"] == "failed", attack.status
    assert "can't fork" in attack.status["message"], attack.status


def test_a_disk_fill_stops_at_the_file_size_limit(stack: Engine):
    if stack.name != "sandbox":
        pytest.skip("resource limits of containers; the single-user stack is shared")
    script = (
        f"dd if=/dev/zero of=big bs=1M count={SANDBOX_FILE_MIB * 4} 2>/dev/null; "
        "echo dd $?; wc -c < big"
    )
    attack = run_attack(stack, "diskfill", script, "x")
    # SIGXFSZ (128 + 25) ends the writer at the limit.
    assert attack.status["status"] == "successful", attack.status
    exit_line, size = attack.output.split("\n")[:2]
    assert exit_line == "dd 153", attack.output
    assert int(size) <= SANDBOX_FILE_MIB * 1024 * 1024, attack.output


def test_a_memory_balloon_is_killed_at_the_memory_limit(stack: Engine):
    if stack.name != "sandbox":
        pytest.skip("resource limits of containers; the single-user stack is shared")
    script = (
        '/usr/bin/python3 -c "b = bytes(1) * (1024 * 1024 * 1024); print(len(b))"; echo exit $?'
    )
    attack = run_attack(stack, "balloon", script, "x")
    assert attack.status["status"] == "successful", attack.status
    assert "1073741824" not in attack.output
    assert attack.output.strip().splitlines()[-1] in ("exit 137", "exit 1"), attack.output
