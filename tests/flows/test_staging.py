"""Stage-in and stage-out against real servers: moto S3 over HTTP and a loopback web server.

Stage-in reads from one moto server with its own keys, stage-out writes to another with
other keys (``tests/s3_server.py``); STAC documents and assets are served from loopback.
These tests call the staging functions directly; ``test_staging_e2e.py`` runs them
inside jobs through the gateway.
"""

from __future__ import annotations

import datetime
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pystac
import pytest

from blocks.s3 import S3ResultStorage
from blocks.storage import LocalResultStorage
from core.exceptions import StagingError
from core.settings import (
    OutboundSettings,
    ResultSettings,
    Settings,
    StageInSettings,
    TransferSettings,
    WorkspaceSettings,
)
from flows.stac import STAC_CATALOG
from flows.staging import (
    Fetcher,
    fetcher_from_settings,
    result_links,
    result_storage,
    stage_in_job_order,
    stage_out_outputs,
)
from tests.conftest import FileServer, free_port, tiny_png
from tests.ogc_schemas import validate
from tests.s3_server import S3Server, WorkspaceApiStandIn


def _path(location: str) -> Path:
    assert location.startswith("file://"), location
    return Path(unquote(urlparse(location).path))


def _settings(
    stagein: S3Server,
    stageout: S3Server | None = None,
    *,
    results: dict[str, Any] | None = None,
    workspace: dict[str, Any] | None = None,
) -> Settings:
    """Settings for the staging functions: the stage-in server, the stage-out one, and
    whatever ``results``/``workspace`` settings a test adds."""
    results = dict(results or {})
    if stageout is not None:
        results |= {
            "s3_endpoint": stageout.endpoint,
            "s3_access_key": stageout.access_key,
            "s3_secret_key": stageout.secret_key,
        }
    return Settings(
        stagein=StageInSettings(
            endpoint=stagein.endpoint,
            access_key=stagein.access_key,
            secret_key=stagein.secret_key,
        ),
        transfer=TransferSettings(attempts=2, backoff_s=0.05),
        outbound=OutboundSettings(allowed_networks=["127.0.0.1/32"]),
        results=ResultSettings(**results),
        workspace=WorkspaceSettings(**(workspace or {})),
    )


@pytest.fixture(scope="module")
def fetcher(stagein_s3: S3Server) -> Fetcher:
    return fetcher_from_settings(_settings(stagein_s3))


@pytest.fixture(scope="module")
def inputs_bucket(stagein_s3: S3Server) -> str:
    return stagein_s3.create_bucket(f"inputs-{uuid.uuid4().hex[:8]}")


def _item(item_id: str, assets: dict[str, str]) -> pystac.Item:
    item = pystac.Item(
        id=item_id,
        geometry={"type": "Point", "coordinates": [-4.8, 53.9]},
        bbox=[-4.8, 53.9, -4.8, 53.9],
        datetime=datetime.datetime(2023, 11, 21, tzinfo=datetime.UTC),
        properties={},
    )
    for key, href in assets.items():
        item.add_asset(key, pystac.Asset(href=href, media_type=pystac.MediaType.COG))
    return item


# --- stage-in ---------------------------------------------------------------------------


def test_files_single_optional_and_arrays_over_http_and_s3(
    tmp_path: Path,
    fetcher: Fetcher,
    stagein_s3: S3Server,
    inputs_bucket: str,
    file_server: FileServer,
):
    http_url = file_server.add(f"a-{uuid.uuid4().hex[:6]}.txt", "over http")
    s3_url = stagein_s3.put(inputs_bucket, "in/b.txt", "over s3")
    prefix = stagein_s3.put(inputs_bucket, "folder/sub/c.txt", "in a folder").rsplit("/", 2)[0]
    order = {
        "one": {"class": "File", "location": s3_url},
        "many": [
            {"class": "File", "location": http_url},
            {"class": "File", "location": s3_url},
        ],
        "maybe": None,
        "folder": {"class": "Directory", "location": prefix},
        "word": "unchanged",
    }

    staged = stage_in_job_order(order, tmp_path, fetcher)

    assert _path(staged["one"]["location"]).read_text() == "over s3"
    assert [_path(f["location"]).read_text() for f in staged["many"]] == ["over http", "over s3"]
    assert staged["maybe"] is None and staged["word"] == "unchanged"
    folder = _path(staged["folder"]["location"])
    assert staged["folder"]["class"] == "Directory"
    assert (folder / "sub" / "c.txt").read_text() == "in a folder"


def test_a_stac_item_url_becomes_a_folder_with_its_assets_and_a_catalog(
    tmp_path: Path, fetcher: Fetcher, file_server: FileServer
):
    tag = uuid.uuid4().hex[:6]
    red = file_server.add(f"red-{tag}.tif", b"red band")
    item = _item(f"S2-{tag}", {"B04": red, "thumbnail": f"{file_server.url}/logo.png"})
    item_url = file_server.add(f"item-{tag}.json", json.dumps(item.to_dict()))

    staged = stage_in_job_order(
        {"scene": {"class": "Directory", "location": item_url}}, tmp_path, fetcher
    )

    folder = _path(staged["scene"]["location"])
    catalog = pystac.Catalog.from_file(str(folder / STAC_CATALOG))
    catalog.validate_all()
    [local] = list(catalog.get_all_items())
    assert local.id == item.id
    assert Path(local.get_self_href()) == folder / item.id / f"{item.id}.json"
    assert Path(local.assets["B04"].get_absolute_href()).read_bytes() == b"red band"
    assert Path(local.assets["thumbnail"].get_absolute_href()).read_bytes() == tiny_png()
    # Self-contained: every href in the files is relative, nothing points back to the server.
    text = (folder / item.id / f"{item.id}.json").read_text()
    assert file_server.url not in text and str(folder) not in text


def test_a_stac_catalog_on_s3_is_staged_with_every_item(
    tmp_path: Path, fetcher: Fetcher, stagein_s3: S3Server, inputs_bucket: str
):
    base = f"s3://{inputs_bucket}/stac-{uuid.uuid4().hex[:6]}"
    catalog = pystac.Catalog(id="source", description="two scenes")
    collection = pystac.Collection(
        id="scenes",
        description="scenes",
        extent=pystac.Extent(
            pystac.SpatialExtent([[-5, 53, -4, 54]]),
            pystac.TemporalExtent([[datetime.datetime(2023, 1, 1, tzinfo=datetime.UTC), None]]),
        ),
    )
    catalog.add_child(collection)
    for name in ("one", "two"):
        asset = stagein_s3.put(inputs_bucket, f"{base.split('/', 3)[3]}/{name}.tif", name)
        collection.add_item(_item(name, {"data": asset}))
    catalog.normalize_hrefs(base)
    for stac_object in [catalog, collection, *collection.get_items()]:
        body = json.dumps(stac_object.to_dict(transform_hrefs=True))
        stagein_s3.put(inputs_bucket, stac_object.get_self_href().split("/", 3)[3], body)

    staged = stage_in_job_order(
        {"stac": {"class": "Directory", "location": f"{base}/catalog.json"}}, tmp_path, fetcher
    )

    folder = _path(staged["stac"]["location"])
    local = pystac.Catalog.from_file(str(folder / STAC_CATALOG))
    local.validate_all()
    items = {i.id: i for i in local.get_all_items()}
    assert set(items) == {"one", "two"}
    for name, item in items.items():
        assert Path(item.assets["data"].get_absolute_href()).read_text() == name


@pytest.mark.parametrize("where", ["http", "s3 key", "s3 bucket"])
def test_a_missing_input_names_the_input_and_the_url(
    tmp_path: Path,
    fetcher: Fetcher,
    file_server: FileServer,
    inputs_bucket: str,
    where: str,
):
    url = {
        "http": f"{file_server.url}/missing-{uuid.uuid4().hex}.tif",
        "s3 key": f"s3://{inputs_bucket}/missing.tif",
        "s3 bucket": "s3://no-such-bucket-here/missing.tif",
    }[where]
    with pytest.raises(StagingError) as raised:
        stage_in_job_order({"scene": {"class": "File", "location": url}}, tmp_path, fetcher)
    assert "'scene'" in raised.value.detail and url in raised.value.detail
    assert "does not exist" in raised.value.detail


def test_an_unreachable_stage_in_endpoint_fails_after_retries(tmp_path: Path):
    down = S3Server(f"http://127.0.0.1:{free_port()}", "k", "s")
    fetcher = fetcher_from_settings(_settings(down))
    with pytest.raises(StagingError) as raised:
        stage_in_job_order(
            {"scene": {"class": "File", "location": "s3://b/k.tif"}}, tmp_path, fetcher
        )
    assert "'scene'" in raised.value.detail and "s3://b/k.tif" in raised.value.detail
    assert "unreachable" in raised.value.detail


def test_a_directory_url_that_is_not_stac_is_refused(
    tmp_path: Path, fetcher: Fetcher, file_server: FileServer
):
    url = file_server.add(f"not-stac-{uuid.uuid4().hex[:6]}.json", '{"hello": 1}')
    with pytest.raises(StagingError, match="not a STAC"):
        stage_in_job_order({"d": {"class": "Directory", "location": url}}, tmp_path, fetcher)


# --- stage-out --------------------------------------------------------------------------


def _stac_output(folder: Path) -> Path:
    """A STAC catalog as an application writes it: catalog.json, items beside assets."""
    folder.mkdir(parents=True)
    catalog = pystac.Catalog(id="water-bodies", description="detected water bodies")
    for name in ("one", "two"):
        item_dir = folder / name
        item_dir.mkdir()
        (item_dir / f"{name}.tif").write_bytes(f"raster {name}".encode())
        catalog.add_item(_item(name, {"data": str(item_dir / f"{name}.tif")}))
    catalog.normalize_hrefs(str(folder))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return folder


def test_files_folders_and_stac_go_to_the_bucket(tmp_path: Path, stageout_s3: S3Server):
    job_id = str(uuid.uuid4())
    storage = result_storage(_settings(stageout_s3, stageout_s3), user="alice")
    assert isinstance(storage, S3ResultStorage) and storage.bucket == "eoepca"
    storage.check()
    (tmp_path / "out.png").write_bytes(tiny_png())
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "a.txt").write_text("a")
    stac = _stac_output(tmp_path / "stac")
    outputs = {
        "image": {"class": "File", "location": (tmp_path / "out.png").as_uri()},
        "plain": {"class": "Directory", "location": (tmp_path / "plain").as_uri()},
        "stac_catalog": {"class": "Directory", "location": stac.as_uri()},
        "count": 2,
    }

    results = stage_out_outputs(outputs, storage, prefix="processing-results", job_id=job_id)

    validate(results, "results")
    prefix = f"processing-results/{job_id}"
    assert results["image"] == {
        "href": f"s3://eoepca/{prefix}/image/out.png",
        "type": "image/png",
    }
    assert stageout_s3.get(results["image"]["href"]) == tiny_png()
    assert stageout_s3.get(results["plain"]["files"][0]["href"]) == b"a"
    published = results["stac_catalog"]
    assert published["type"] == "Catalog" and published["id"] == "water-bodies"
    assert published["href"] == f"s3://eoepca/{prefix}/stac_catalog/catalog.json"
    assert results["count"] == 2
    # Every asset and link of the published catalog resolves in the bucket.
    catalog = stageout_s3.read_catalog(published["href"])
    catalog.validate_all()
    items = list(catalog.get_all_items())
    assert {i.id for i in items} == {"one", "two"}
    for item in items:
        href = item.assets["data"].href
        assert href.startswith(f"s3://eoepca/{prefix}/stac_catalog/")
        assert stageout_s3.get(href) == f"raster {item.id}".encode()
        for link in item.links:
            assert link.get_absolute_href().startswith(f"s3://eoepca/{prefix}/"), link
    assert all(k.startswith(f"{prefix}/") for k in stageout_s3.keys("eoepca", prefix))


def test_stac_is_published_on_local_storage_too(tmp_path: Path):
    storage = LocalResultStorage(basepath=tmp_path / "results")
    stac = _stac_output(tmp_path / "stac")
    results = stage_out_outputs(
        {"stac": {"class": "Directory", "location": stac.as_uri()}},
        storage,
        prefix="processing-results",
        job_id="JOB",
    )
    validate(results, "results")
    catalog = pystac.Catalog.from_file(unquote(urlparse(results["stac"]["href"]).path))
    for item in catalog.get_all_items():
        assert _path(item.assets["data"].href).read_text() == f"raster {item.id}"


def test_an_unknown_bucket_fails_clearly(tmp_path: Path, stageout_s3: S3Server):
    settings = _settings(stageout_s3, stageout_s3, results={"s3_bucket": "no-such-results"})
    storage = result_storage(settings, user="alice")
    with pytest.raises(StagingError, match="bucket 'no-such-results' does not exist"):
        storage.check()
    (tmp_path / "a.txt").write_text("a")
    with pytest.raises(StagingError, match="'out'.*does not exist"):
        stage_out_outputs(
            {"out": {"class": "File", "location": (tmp_path / "a.txt").as_uri()}},
            storage,
            prefix="processing-results",
            job_id="JOB",
        )


def test_an_unreachable_stage_out_endpoint_fails_after_retries(stageout_s3: S3Server):
    down = S3Server(f"http://127.0.0.1:{free_port()}", "k", "s")
    storage = result_storage(_settings(stageout_s3, down), user="alice")
    with pytest.raises(StagingError, match="unreachable after retries"):
        storage.check()


# --- workspace mode ---------------------------------------------------------------------


def _workspace_settings(stageout: S3Server, api: WorkspaceApiStandIn, **more: Any) -> Settings:
    workspace = {"enabled": True, "api_url": api.url, "api_token": "platform-token", **more}
    return _settings(stageout, stageout, workspace=workspace)


def test_workspace_mode_writes_each_user_to_their_own_bucket(
    tmp_path: Path, stageout_s3: S3Server, workspace_api: WorkspaceApiStandIn
):
    users = [f"alice{uuid.uuid4().hex[:6]}", f"bob{uuid.uuid4().hex[:6]}"]
    buckets = [workspace_api.register(user, stageout_s3) for user in users]
    settings = _workspace_settings(stageout_s3, workspace_api)
    (tmp_path / "out.txt").write_text("mine")
    hrefs = []
    for user in users:
        storage = result_storage(settings, user=user)
        storage.check()
        results = stage_out_outputs(
            {"out": {"class": "File", "location": (tmp_path / "out.txt").as_uri()}},
            storage,
            prefix="processing-results",
            job_id=f"job-of-{user}",
        )
        hrefs.append(results["out"]["href"])
    assert hrefs == [
        f"s3://{bucket}/processing-results/job-of-{user}/out/out.txt"
        for user, bucket in zip(users, buckets, strict=True)
    ]
    assert buckets == [f"ws-{user}" for user in users]
    for user, bucket, other in zip(users, buckets, reversed(buckets), strict=True):
        assert stageout_s3.keys(bucket) == [f"processing-results/job-of-{user}/out/out.txt"]
        assert not stageout_s3.keys(other, f"processing-results/job-of-{user}")
        assert not stageout_s3.keys("eoepca", f"processing-results/job-of-{user}")
    # As the reference runner: GET /workspaces/ws-<user> with the platform's bearer token.
    assert (f"/workspaces/ws-{users[0]}", "Bearer platform-token") in workspace_api.requests_seen


def test_a_failed_workspace_lookup_fails_or_falls_back_as_configured(
    stageout_s3: S3Server, workspace_api: WorkspaceApiStandIn
):
    stranger = f"nobody{uuid.uuid4().hex[:6]}"
    with pytest.raises(StagingError, match=f"workspace ws-{stranger}.*HTTP 404"):
        result_storage(_workspace_settings(stageout_s3, workspace_api), user=stranger)
    warnings: list[str] = []
    storage = result_storage(
        _workspace_settings(stageout_s3, workspace_api, fallback=True),
        user=stranger,
        log=warnings.append,
    )
    assert isinstance(storage, S3ResultStorage) and storage.bucket == "eoepca"
    assert warnings and "HTTP 404" in warnings[0]
    assert "platform-token" not in warnings[0]


def test_a_workspace_without_its_bucket_fails_clearly(
    stageout_s3: S3Server, workspace_api: WorkspaceApiStandIn
):
    user = f"ghost{uuid.uuid4().hex[:6]}"
    workspace_api.register(user, stageout_s3, create_bucket=False)
    storage = result_storage(_workspace_settings(stageout_s3, workspace_api), user=user)
    with pytest.raises(StagingError, match=f"bucket 'ws-{user}' does not exist"):
        storage.check()


def test_a_stac_item_id_cannot_escape_the_input_folder(
    tmp_path: Path, fetcher: Fetcher, file_server: FileServer
):
    item = _item("../../escaped", {"data": f"{file_server.url}/logo.png"})
    url = file_server.add(f"evil-{uuid.uuid4().hex[:6]}.json", json.dumps(item.to_dict()))
    with pytest.raises(StagingError, match="cannot name a folder"):
        stage_in_job_order({"d": {"class": "Directory", "location": url}}, tmp_path / "in", fetcher)
    assert not (tmp_path / "escaped").exists()


def test_a_stac_output_cannot_publish_files_outside_it(tmp_path: Path):
    stac = _stac_output(tmp_path / "stac")
    secret = tmp_path / "worker-secret.txt"
    secret.write_text("not for users")
    catalog = pystac.Catalog.from_file(str(stac / STAC_CATALOG))
    item = next(iter(catalog.get_all_items()))
    item.add_asset("leak", pystac.Asset(href=str(secret)))
    item.save_object(include_self_link=False)
    storage = LocalResultStorage(basepath=tmp_path / "results")
    with pytest.raises(StagingError, match="'leak'.*outside the output"):
        stage_out_outputs(
            {"stac": {"class": "Directory", "location": stac.as_uri()}},
            storage,
            prefix="processing-results",
            job_id="JOB",
        )
    assert not (tmp_path / "results").exists()  # checked before anything is uploaded


# --- the outbound guard and host files -----------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"class": "File", "location": "file:///etc/hostname"},
        {"class": "File", "location": "/etc/hostname"},
        {"class": "File", "path": "/etc/hostname"},
        {"class": "Directory", "location": "file:///etc"},
        {"class": "File", "location": "ftp://example.org/x"},
        {"class": "Directory", "listing": [{"class": "File", "location": "file:///etc/hostname"}]},
        {
            "class": "File",
            "location": "https://example.org/a",
            "secondaryFiles": [{"class": "File", "location": "https://example.org/b"}],
        },
    ],
)
def test_no_input_reads_the_engines_disk(tmp_path: Path, fetcher: Fetcher, value: dict):
    with pytest.raises(StagingError, match="input 'x': ") as refused:
        stage_in_job_order({"x": value}, tmp_path / "in", fetcher)
    # The same answer whether the path exists or not: nothing was looked at.
    other = json.loads(
        json.dumps(value).replace("hostname", "no-such-file").replace("/etc", "/nope")
    )
    with pytest.raises(StagingError) as again:
        stage_in_job_order({"x": other}, tmp_path / "in", fetcher)
    assert "exist" not in refused.value.detail and "exist" not in again.value.detail
    assert not (tmp_path / "in").exists()


def test_a_literal_file_needs_no_fetch(tmp_path: Path, fetcher: Fetcher):
    literal = {"class": "File", "basename": "a.txt", "contents": "inline"}
    assert stage_in_job_order({"x": literal}, tmp_path / "in", fetcher) == {"x": literal}


def test_stage_in_never_reaches_a_refused_address(tmp_path: Path, fetcher: Fetcher):
    """127.0.0.1 is allowed in these settings; 127.0.0.2 is loopback all the same."""
    with pytest.raises(StagingError, match=r"127\.0\.0\.2:9 is refused") as refused:
        stage_in_job_order(
            {"x": {"class": "File", "location": "http://127.0.0.2:9/secret"}}, tmp_path, fetcher
        )
    assert "OAPIP_ALLOWED_NETWORKS" in refused.value.detail


def test_a_redirect_to_a_refused_address_fails_the_input(
    tmp_path: Path, fetcher: Fetcher, redirector: str
):
    hop = redirector + "http://127.0.0.2:9/secret"
    with pytest.raises(StagingError, match=r"input 'x': .*127\.0\.0\.2:9 is refused.*redirected"):
        stage_in_job_order({"x": {"class": "File", "location": hop}}, tmp_path, fetcher)


def test_stac_assets_and_links_go_through_the_guard(
    tmp_path: Path, fetcher: Fetcher, file_server: FileServer
):
    for href, problem in (
        ("http://127.0.0.2:9/B04.tif", r"127\.0\.0\.2:9 is refused"),
        ("file:///etc/hostname", "not an http"),
    ):
        item = _item(f"S2-{uuid.uuid4().hex[:6]}", {"B04": href})
        url = file_server.add(f"{item.id}.json", json.dumps(item.to_dict()))
        with pytest.raises(StagingError, match=f"input 'd': .*{problem}"):
            stage_in_job_order(
                {"d": {"class": "Directory", "location": url}}, tmp_path / item.id, fetcher
            )
    catalog = {
        "type": "Catalog",
        "stac_version": "1.0.0",
        "id": "lure",
        "description": "a child link to the engine's disk",
        "links": [{"rel": "child", "href": "file:///etc/hostname"}],
    }
    url = file_server.add(f"lure-{uuid.uuid4().hex[:6]}.json", json.dumps(catalog))
    with pytest.raises(StagingError, match="STAC link 'file:///etc/hostname' is not an http"):
        stage_in_job_order({"d": {"class": "Directory", "location": url}}, tmp_path / "c", fetcher)


def test_local_results_link_to_the_gateway_not_the_disk(tmp_path: Path, stageout_s3: S3Server):
    storage = LocalResultStorage(basepath=tmp_path / "results")
    jobs_url = "https://gw.example/alice/ogc-api/jobs"
    link = result_links(storage, prefix="processing-results", job_id="JOB", jobs_url=jobs_url)
    (tmp_path / "a b.txt").write_text("a")
    stac = _stac_output(tmp_path / "stac")
    results = stage_out_outputs(
        {
            "file": {"class": "File", "location": (tmp_path / "a b.txt").as_uri()},
            "stac": {"class": "Directory", "location": stac.as_uri()},
        },
        storage,
        prefix="processing-results",
        job_id="JOB",
        link=link,
    )
    assert results["file"]["href"] == f"{jobs_url}/JOB/results/file/a%20b.txt"
    assert results["stac"]["href"] == f"{jobs_url}/JOB/results/stac/catalog.json"
    assert str(tmp_path) not in json.dumps(results)
    stored = tmp_path / "results" / "processing-results" / "JOB" / "stac"
    for document in stored.rglob("*.json"):
        text = document.read_text()
        assert str(tmp_path) not in text and "file:" not in text, document
        for link_ in json.loads(text).get("links", []):
            assert link_["href"].startswith(f"{jobs_url}/JOB/results/stac/"), link_
    item = json.loads((stored / "one" / "one.json").read_text())
    assert item["assets"]["data"]["href"] == f"{jobs_url}/JOB/results/stac/one/one.tif"
    # S3 stores keep their own URLs.
    s3 = result_storage(_settings(stageout_s3, stageout_s3), user="alice")
    assert (
        result_links(s3, prefix="p", job_id="J", jobs_url=jobs_url)("p/J/x") == "s3://eoepca/p/J/x"
    )


def test_the_public_surface_is_what_we_meant():
    import blocks.s3
    import flows.stac
    import flows.staging

    assert sorted(flows.staging.__all__) == [
        "Fetcher",
        "fetcher_from_settings",
        "result_links",
        "result_storage",
        "stage_in_job_order",
        "stage_out_outputs",
    ]
    assert sorted(flows.stac.__all__) == [
        "STAC_CATALOG",
        "is_stac_folder",
        "publish_stac",
        "stage_stac",
    ]
    for module in (flows.staging, flows.stac, blocks.s3):
        for name in module.__all__:
            value = getattr(module, name)
            assert isinstance(value, str) or value.__doc__, f"{module.__name__}.{name}"
