"""WPS 1.0.0 and 2.0 on the session's stack: the same processes and jobs as the OGC API.

One user deploys ``wps-echo`` (every kind of WPS data) through the OGC API; the tests
list, describe and execute it through ``/{user}/wps`` in both versions, synchronously and
asynchronously, and check that a job is the same job through both interfaces. Every
document read is checked against the official schemas when they are to be had
(``tests/wps_schemas.py``); ``test_every_document_of_a_full_cycle_is_valid`` requires them.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests
from lxml import etree

from tests.api_gateway.wps_support import (
    NS,
    SYNC_TIMEOUT_S,
    V1,
    V2,
    WPS_ECHO_CWL,
    document,
    execute_v1,
    execute_v2,
    job_request_v2,
    outputs_v1,
    poll_v1,
    poll_v2,
    report,
    status_of_v1,
    wps_get,
    wps_post,
)
from tests.conftest import Engine, FileServer
from tests.support import deploy_cwl, execute_async, sleep_cwl, wait_for_status
from tests.wps_schemas import validate

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EVERY_KIND = [
    ("message", "literal", "hello"),
    ("times", "literal", "2"),
    ("mode", "literal", "loud"),
    ("aoi", "bbox", ("1.5 2", "3 4", CRS84)),
    ("tags", "literal", "a"),
    ("tags", "literal", "b"),
]


@pytest.fixture(scope="module")
def site(engine: Engine, file_server: FileServer) -> dict[str, Any]:
    """A user with ``wps-echo`` deployed, its WPS and OGC API URLs, an input file's URL."""
    user = f"wps-{uuid.uuid4().hex[:6]}"
    api = engine.api(user)
    deploy_cwl(api, WPS_ECHO_CWL)
    return {
        "user": user,
        "api": api,
        "wps": f"{engine.url}/{user}/wps",
        "file": file_server.add(f"{user}.txt", "file content\n"),
        "documents": [],  # (version, bytes) of every document the cycles read
    }


def _read(site: dict[str, Any], response: requests.Response, version: str) -> etree._Element:
    root = document(response, version)
    site["documents"].append((version, response.content))
    return root


def test_capabilities_list_the_users_processes_in_both_versions(site: dict[str, Any]):
    one = _read(site, wps_get(site["wps"], service="WPS", request="GetCapabilities"), V1)
    assert one.get("version") == V1
    assert [
        p.findtext("ows:Identifier", namespaces=NS)
        for p in one.iterfind("wps:ProcessOfferings/wps:Process", NS)
    ] == ["echo", "wps-echo"]  # the built-in echo of every user, and the site's own
    two = _read(
        site,
        wps_get(site["wps"], service="WPS", request="GetCapabilities", AcceptVersions="2.0.0"),
        V2,
    )
    assert two.get("version") == V2
    summary = two.findall("wps2:Contents/wps2:ProcessSummary", NS)[-1]
    assert summary.findtext("ows2:Identifier", namespaces=NS) == "wps-echo"
    assert "async-execute" in summary.get("jobControlOptions")
    posted = etree.fromstring(
        b'<wps:GetCapabilities xmlns:wps="http://www.opengis.net/wps/2.0" '
        b'xmlns:ows="http://www.opengis.net/ows/2.0" service="WPS"><ows:AcceptVersions>'
        b"<ows:Version>2.0.0</ows:Version></ows:AcceptVersions></wps:GetCapabilities>"
    )
    assert _read(site, wps_post(site["wps"], posted), V2).get("version") == V2


def test_describe_maps_cwl_types_like_the_ogc_description(site: dict[str, Any]):
    response = wps_get(
        site["wps"], service="WPS", version=V1, request="DescribeProcess", identifier="wps-echo"
    )
    inputs = {
        i.findtext("ows:Identifier", namespaces=NS): i
        for i in _read(site, response, V1).iterfind("ProcessDescription/DataInputs/Input", NS)
    }
    assert inputs["message"].findtext("LiteralData/ows:DataType", namespaces=NS) == "string"
    assert inputs["message"].get("minOccurs") == "1"
    assert inputs["times"].findtext("LiteralData/ows:DataType", namespaces=NS) == "integer"
    assert inputs["times"].findtext("LiteralData/DefaultValue") == "1"
    assert inputs["times"].get("minOccurs") == "0"
    values = inputs["mode"].iterfind("LiteralData/ows:AllowedValues/ows:Value", NS)
    assert [v.text for v in values] == ["loud", "quiet"]
    assert inputs["aoi"].find("BoundingBoxData") is not None
    assert inputs["infile"].find("ComplexData") is not None
    assert inputs["tags"].get("maxOccurs") == "999"
    outputs = {
        o.findtext("ows:Identifier", namespaces=NS): o
        for o in _read(site, response, V1).iterfind("ProcessDescription/ProcessOutputs/Output")
    }
    assert outputs["said"].find("LiteralOutput") is not None
    assert outputs["report"].findtext("ComplexOutput/Default/Format/MimeType") == "text/plain"

    offering = _read(
        site,
        wps_get(
            site["wps"], service="WPS", version=V2, request="DescribeProcess", identifier="ALL"
        ),
        V2,
    ).findall("wps2:ProcessOffering/wps2:Process", NS)[-1]  # after the built-in echo
    two = {
        i.findtext("ows2:Identifier", namespaces=NS): i for i in offering.iterfind("wps2:Input", NS)
    }
    assert two["tags"].get("maxOccurs") == "unbounded"
    assert two["infile"].find("wps2:ComplexData", NS) is not None
    domain = two["mode"].find("wps2:LiteralData/LiteralDataDomain", NS)
    assert [v.text for v in domain.iterfind("ows2:AllowedValues/ows2:Value", NS)] == [
        "loud",
        "quiet",
    ]


def _ogc_job(site: dict[str, Any], job_id: str) -> dict[str, Any]:
    response = requests.get(f"{site['api']}/jobs/{job_id}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_wps_1_execute_synchronously_with_every_kind_of_data(site: dict[str, Any]):
    body = execute_v1(
        "wps-echo",
        [*EVERY_KIND, ("infile", "reference", site["file"])],
        outputs=[("said", False), ("report", True)],
    )
    root = _read(site, wps_post(site["wps"], body), V1)
    assert status_of_v1(root) == "ProcessSucceeded", etree.tostring(root)
    assert root.get("statusLocation") is None  # synchronous: nothing stored
    outputs = outputs_v1(root)
    said = outputs["said"].findtext("wps:LiteralData", namespaces=NS)
    name = site["file"].rsplit("/", 1)[1]
    assert said.strip() == f"hello x 2 loud aoi 1.5,2,3,4 {CRS84} file {name} tags a b"
    reference = outputs["report"]
    assert reference.tag == f"{{{NS['wps']}}}Reference"
    assert reference.get("mimeType") == "text/plain"
    assert reference.get("href").endswith("/said.txt")


def test_wps_1_execute_asynchronously_is_the_same_job_as_the_ogc_one(site: dict[str, Any]):
    body = execute_v1("wps-echo", EVERY_KIND[:1], store=True, outputs=[("said", False)])
    root = _read(site, wps_post(site["wps"], body), V1)
    assert status_of_v1(root) in ("ProcessAccepted", "ProcessStarted")
    location = root.get("statusLocation")
    job_id = location.rsplit("/", 1)[1]
    assert location == f"{site['wps']}/jobs/{job_id}"
    seen = poll_v1(location)
    for each in seen:
        site["documents"].append((V1, etree.tostring(each)))
    assert status_of_v1(seen[-1]) == "ProcessSucceeded"
    said = outputs_v1(seen[-1])["said"].findtext("wps:LiteralData", namespaces=NS)
    assert said.startswith("hello x 1 quiet")
    ogc = _ogc_job(site, job_id)
    assert ogc["status"] == "successful" and ogc["processID"] == "wps-echo"
    results = requests.get(f"{site['api']}/jobs/{job_id}/results", timeout=30).json()
    assert results == {"said": said}  # the WPS asked for `said` only


def test_wps_1_kvp_execute_with_raw_outputs(site: dict[str, Any]):
    # `;` and `@` separate inputs and attributes; encoded, they are part of a value.
    query = (
        f"{site['wps']}?service=WPS&version={V1}&request=Execute&identifier=wps-echo"
        f"&DataInputs=message=semi%3Bcolon;aoi=1,2,3,4;infile=@xlink:href={site['file']}"
    )
    literal = requests.get(f"{query}&RawDataOutput=said", timeout=SYNC_TIMEOUT_S)
    assert literal.status_code == 200, literal.text
    assert literal.headers["content-type"].startswith("text/plain")
    assert literal.text.startswith(f"semi;colon x 1 quiet aoi 1,2,3,4 {CRS84} file")
    # A client that encodes the whole value (separators too) is understood as well.
    file = wps_get(
        site["wps"],
        service="WPS",
        version=V1,
        request="Execute",
        identifier="wps-echo",
        DataInputs="message=plain;times=3",
        RawDataOutput="report",
    )
    assert file.status_code == 303, file.text
    assert file.headers["location"].endswith("/said.txt")


def test_wps_2_execute_sync_async_document_and_raw(site: dict[str, Any]):
    inputs = [*EVERY_KIND[:3], ("aoi", "bbox", ("0 0", "1 1", CRS84))]
    result = _read(site, wps_post(site["wps"], execute_v2("wps-echo", inputs)), V2)
    assert result.tag == f"{{{NS['wps2']}}}Result"
    outputs = {o.get("id"): o for o in result.iterfind("wps2:Output", NS)}
    said = outputs["said"].findtext("wps2:Data/wps2:LiteralValue", namespaces=NS)
    assert said.startswith("hello x 2 loud aoi 0,0,1,1")
    assert outputs["report"].find("wps2:Reference", NS).get(f"{{{NS['xlink']}}}href")

    raw = wps_post(
        site["wps"],
        execute_v2("wps-echo", inputs[:1], response="raw", outputs=[("said", "value")]),
    )
    assert raw.status_code == 200 and raw.text.startswith("hello x 1 quiet"), raw.text

    accepted = _read(
        site, wps_post(site["wps"], execute_v2("wps-echo", inputs[:1], mode="async")), V2
    )
    assert accepted.tag == f"{{{NS['wps2']}}}StatusInfo"
    job_id = accepted.findtext("wps2:JobID", namespaces=NS)
    final = poll_v2(site["wps"], job_id)
    site["documents"].append((V2, etree.tostring(final)))
    assert final.findtext("wps2:Status", namespaces=NS) == "Succeeded"
    fetched = _read(site, wps_post(site["wps"], job_request_v2("GetResult", job_id)), V2)
    assert fetched.findtext("wps2:JobID", namespaces=NS) == job_id
    assert _ogc_job(site, job_id)["status"] == "successful"


def test_wps_2_get_status_and_result_of_a_job_started_through_the_ogc_api(
    site: dict[str, Any],
):
    created = execute_async(site["api"], "wps-echo", {"message": "from the OGC API"})
    job_id = created.json()["jobID"]
    wait_for_status(created.headers["Location"])
    status = _read(
        site,
        wps_get(site["wps"], SERVICE="WPS", VERSION=V2, REQUEST="GetStatus", JOBID=job_id),
        V2,
    )
    assert status.findtext("wps2:Status", namespaces=NS) == "Succeeded"
    result = _read(
        site,
        wps_get(site["wps"], service="WPS", version=V2, request="GetResult", jobId=job_id),
        V2,
    )
    ogc = requests.get(f"{site['api']}/jobs/{job_id}/results", timeout=30).json()
    outputs = {o.get("id"): o for o in result.iterfind("wps2:Output", NS)}
    assert outputs["said"].findtext("wps2:Data/wps2:LiteralValue", namespaces=NS) == ogc["said"]
    href = outputs["report"].find("wps2:Reference", NS).get(f"{{{NS['xlink']}}}href")
    assert href == ogc["report"]["href"]
    # WPS 1.0.0 reads it at the statusLocation it would have had.
    location = _read(site, requests.get(f"{site['wps']}/jobs/{job_id}", timeout=30), V1)
    assert outputs_v1(location)["report"].get("href") == ogc["report"]["href"]


def test_wps_2_dismiss_stops_a_running_job(site: dict[str, Any]):
    deploy_cwl(site["api"], sleep_cwl("wps-nap", "30"))
    accepted = document(
        wps_post(
            site["wps"],
            execute_v2("wps-nap", [], mode="async", outputs=[("out", "reference")]),
        ),
        V2,
    )
    job_id = accepted.findtext("wps2:JobID", namespaces=NS)
    wait_for_status(f"{site['api']}/jobs/{job_id}", ["running"])
    early = wps_post(site["wps"], job_request_v2("GetResult", job_id))
    assert report(early, 400, "ResultNotReady", V2)["text"]
    dismissed = _read(site, wps_post(site["wps"], job_request_v2("Dismiss", job_id)), V2)
    assert dismissed.findtext("wps2:Status", namespaces=NS) == "Dismissed"
    assert wait_for_status(f"{site['api']}/jobs/{job_id}")["status"] == "dismissed"


def test_the_unprefixed_wps_is_the_anonymous_users(engine: Engine):
    response = wps_get(f"{engine.url}/wps", service="WPS", request="GetCapabilities")
    assert response.status_code == 200, response.text
    # Not schema-checked: anonymous may have no process, and the schema wants at least one.
    root = etree.fromstring(response.content)
    assert root.find("wps:ProcessOfferings", NS) is not None
    get = root.find(".//ows:Get", NS).get(f"{{{NS['xlink']}}}href")
    assert get == f"{engine.url}/wps?"


def test_every_document_of_a_full_cycle_is_valid(site: dict[str, Any]):
    """Runs after the cycles above (file order) and checks what they read, strictly:
    skipped without the schemas, naming the folder layout to provide."""
    if not site["documents"]:
        pytest.skip("checks the documents the cycle tests above read: run the whole module")
    for version, content in site["documents"]:
        validate(content, version)
