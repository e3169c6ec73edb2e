"""Drive a process's life with ``unity-sps-ogc-processes-api-python-client`` (a Part 2
client from PyPI), unmodified: ``python part2_client_driver.py API CWL_URL``.

Run by ``test_part2_client.py`` in the client's own virtualenv (its urllib3 pin clashes
with the test suite's); prints one JSON object with what each call returned.
"""

import json
import sys
import time
import urllib.request

from unity_sps_ogc_processes_api_python_client import ApiClient, Configuration
from unity_sps_ogc_processes_api_python_client.api.dru_api import DRUApi
from unity_sps_ogc_processes_api_python_client.api.jobs_api import JobsApi
from unity_sps_ogc_processes_api_python_client.api.processes_api import ProcessesApi
from unity_sps_ogc_processes_api_python_client.models.execute_workflows import ExecuteWorkflows
from unity_sps_ogc_processes_api_python_client.models.link import Link
from unity_sps_ogc_processes_api_python_client.models.ogcapppkg import Ogcapppkg
from unity_sps_ogc_processes_api_python_client.models.ogcapppkg_execution_unit import (
    OgcapppkgExecutionUnit,
)
from unity_sps_ogc_processes_api_python_client.models.process_input import ProcessInput

FINAL = ("successful", "failed", "dismissed")


def main(api: str, cwl_url: str) -> dict:
    client = ApiClient(Configuration(host=api))
    dru, processes, jobs = DRUApi(client), ProcessesApi(client), JobsApi(client)
    seen: dict = {}

    package = Ogcapppkg(
        executionUnit=OgcapppkgExecutionUnit(Link(href=cwl_url, type="application/cwl")),
        processDescription=ProcessInput(id="echo", version="1.0.0"),
    )
    dru.deploy_processes_post(ogcapppkg=package)
    listed = processes.get_processes_processes_get()
    seen["processes"] = [p.id for p in listed.processes]
    description = processes.get_process_description_processes_process_id_get("echo")
    seen["inputs"] = sorted(description.inputs)

    created = processes.execute_processes_process_id_execution_post(
        "echo",
        prefer="respond-async",
        execute_workflows=ExecuteWorkflows.from_dict({"inputs": {"message": "hello"}}),
    )
    job_id = created.job_id
    deadline = time.monotonic() + 120
    status = jobs.get_status_jobs_job_id_get(job_id)
    while status.status.value not in FINAL and time.monotonic() < deadline:
        time.sleep(0.2)
        status = jobs.get_status_jobs_job_id_get(job_id)
    seen["status"] = status.status.value
    seen["jobs"] = [job.job_id for job in jobs.get_jobs_jobs_get().jobs]
    # The client speaks the 2.0 draft: its execute body has no `response` (its model drops
    # one) and it parses /results as the results document. The engine speaks 1.0, where
    # an execute request without `response` gets raw results: the one output, a file, as
    # its link. So the body is read with the client's own unparsed form of the call.
    answer = jobs.get_result_jobs_job_id_results_get_without_preload_content(job_id)
    seen["results"] = json.loads(answer.data)
    with urllib.request.urlopen(seen["results"]["href"], timeout=30) as said:
        seen["said"] = said.read().decode()  # before the dismiss deletes it
    seen["dismissed"] = jobs.dismiss_jobs_job_id_delete(job_id).status.value
    dru.undeploy_processes_process_id_delete("echo")
    seen["after_undeploy"] = [p.id for p in processes.get_processes_processes_get().processes]
    seen["job_id"] = job_id
    return seen


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
