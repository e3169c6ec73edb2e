"""The tool sandbox's pieces (cwlpkg.sandbox); the attacks on real stacks are in
tests/security/test_hostile_tenant.py."""

from __future__ import annotations

import pytest

from api_gateway.packages import check_sandbox_images
from core.exceptions import InvalidPackage
from core.settings import ExecutionSettings, Settings
from cwlpkg import parse_document
from cwlpkg.sandbox import SandboxPolicy, container_flags, host_prefix, tools_without_image
from tests.support import ECHO_CWL

CWLTOOL_RUN = [
    "docker",
    "run",
    "-i",
    "--mount=type=bind,source=/w/in.txt,target=/var/lib/cwl/in.txt,readonly",
    "--read-only=true",
    "--net=host",
    "--user=0:0",
    "--memory=9999m",
    "image:1",
]


def test_containers_run_unprivileged_within_the_site_maxima():
    policy = SandboxPolicy(mode="containers", max_ram_mib=512, max_cores=1, max_pids=32)
    argv = container_flags(CWLTOOL_RUN, policy, ram_mib=4096, cores=None)
    assert argv[:2] == ["docker", "run"] and argv[-1] == "image:1"
    assert "--user=65534:65534" in argv and "--user=0:0" not in argv
    for flag in ("--cap-drop=all", "--security-opt=no-new-privileges", "--pids-limit=32"):
        assert flag in argv
    assert "--memory=512m" in argv and "--memory-swap=512m" in argv  # clamped
    assert "--cpus=1" in argv
    assert "--net=bridge" in argv and "--net=host" not in argv  # NetworkAccess: the bridge
    assert any(arg.endswith(",readonly") for arg in argv)  # cwltool's read-only inputs kept
    assert not any("docker.sock" in arg or "podman.sock" in arg for arg in argv)


def test_a_tool_without_network_access_keeps_none():
    argv = [*CWLTOOL_RUN[:5], "--net=none", "image:1"]
    flags = container_flags(argv, SandboxPolicy(mode="containers"), ram_mib=256, cores=1)
    assert "--net=none" in flags and "--memory=256m" in flags


def test_host_tools_get_limits_and_another_user():
    prefix = host_prefix(SandboxPolicy(max_cpu_s=60, max_pids=16, max_file_mib=1))
    assert prefix[0] == "prlimit"
    assert {"--cpu=60", "--nproc=16", f"--fsize={1024 * 1024}"} <= set(prefix)
    assert "--reuid=65534" in prefix and "--no-new-privs" in prefix  # the tests run as root


def test_tools_without_an_image_are_found_and_refused_at_deploy():
    echo = parse_document(ECHO_CWL)
    assert tools_without_image(echo) == ["echo"]
    docker = {**echo, "hints": [{"class": "DockerRequirement", "dockerPull": "alpine"}]}
    assert tools_without_image(docker) == []
    inherited = {
        "class": "Workflow",
        "requirements": {"DockerRequirement": {"dockerPull": "alpine"}},
        "steps": [{"run": echo}],
    }
    assert tools_without_image(inherited) == []
    sandboxed = Settings(execution=ExecutionSettings(sandbox="containers"))
    with pytest.raises(InvalidPackage, match="OAPIP_DEFAULT_IMAGE"):
        check_sandbox_images(echo, None, sandboxed)
    check_sandbox_images(echo, "toil", sandboxed)  # other backends confine tools their way
    with_image = Settings(execution=ExecutionSettings(sandbox="containers", default_image="x"))
    check_sandbox_images(echo, None, with_image)
    check_sandbox_images(echo, None, Settings())


def test_a_saved_cwltool_document_runs_under_the_site_sandbox(tmp_path):
    """A backend Block document saved with the sandbox off still gets the site's policy."""
    from blocks.cwltool import CwltoolBackend

    saved = CwltoolBackend(cache_dir=tmp_path, sandbox=SandboxPolicy(mode="off"))
    site = Settings(execution=ExecutionSettings(sandbox="containers", default_image="img:1"))
    saved.with_site_policy(site)
    assert saved.sandbox.mode == "containers" and saved.sandbox.default_image == "img:1"
