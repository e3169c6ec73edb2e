"""ogc_prefect.mapping on Prefect's own schema objects, built in memory (no server)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from prefect.client.schemas.objects import (
    CreatedBy,
    DeploymentSchedule,
    FlowRun,
    Log,
    State,
    StateType,
    TaskRun,
)
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

import cwlpkg as cwl
import ogc_prefect.mapping
from core.exceptions import InvalidInput, InvalidParameter
from core.naming import job_tags
from core.ogc import timeout_message
from core.secrets import ELIDED, MASK, Redactor
from ogc_prefect.mapping import (
    OGC_STATUS,
    DeployedPackage,
    JobFilters,
    ProcessRecord,
    ScheduleSpec,
    clean_message,
    deployment_fields,
    dismissed,
    duration_ok,
    execute_progress,
    job_record,
    log_records,
    phase_progress,
    prefect_schedule,
    run_parameters,
    schedule_record,
    state_types,
)
from tests.support import ECHO_CWL

T0 = dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def echo() -> DeployedPackage:
    doc = cwl.parse_document(ECHO_CWL)
    packed = cwl.pack(doc, "echo")
    return DeployedPackage(
        process_id="echo",
        workflow=packed,
        entrypoint=cwl.entrypoint(packed),
        description=cwl.describe(doc, "echo"),
        source={"type": "application/cwl"},
    )


def _run(state: State | None, **fields) -> FlowRun:
    return FlowRun(
        flow_id=uuid.uuid4(),
        name="echo",
        tags=job_tags("alice", "echo"),
        state=state,
        created=T0,
        **fields,
    )


def _task(name: str, state_type: StateType, flow_run_id: uuid.UUID) -> TaskRun:
    return TaskRun(
        flow_run_id=flow_run_id,
        task_key=name,
        dynamic_key="0",
        name=f"{name}-{uuid.uuid4().hex[:3]}",
        state_type=state_type,
        state=State(type=state_type),
    )


# --- states and status ------------------------------------------------------------------


def test_every_prefect_state_type_has_an_ogc_status():
    assert set(OGC_STATUS) == set(StateType)
    assert set(OGC_STATUS.values()) == {"accepted", "running", "successful", "failed", "dismissed"}


def test_state_types_are_the_reverse_of_the_table():
    assert sorted(state_types(["failed"])) == sorted([StateType.FAILED, StateType.CRASHED])
    assert set(state_types(["accepted", "dismissed"])) == {
        StateType.SCHEDULED,
        StateType.PENDING,
        StateType.CANCELLING,
        StateType.CANCELLED,
    }
    assert state_types([]) == []


@pytest.mark.parametrize(
    ("message", "cleaned"),
    [
        (
            "Flow run encountered an exception: ToolFailed: step crop exited with 1",
            "step crop exited with 1",
        ),
        ("Task run encountered an exception StagingError: input 'url': gone", "input 'url': gone"),
        ("  the job ran out of time  ", "the job ran out of time"),
        ("Flow run exceeded timeout of 20.0 second(s)", timeout_message(20)),
        ("Flow run exceeded timeout of 7 second(s)", timeout_message(7)),
        (None, ""),
        ("", ""),
    ],
)
def test_clean_message_drops_prefects_prefix(message, cleaned):
    assert clean_message(message) == cleaned


def test_clean_message_is_at_most_2000_characters():
    assert len(clean_message("x" * 5000)) == 2000


def test_a_failed_run_is_a_failed_job_with_its_cleaned_and_masked_message():
    state = State(
        type=StateType.FAILED,
        message="Flow run encountered an exception: ToolFailed: login hunter2 refused",
        timestamp=T0 + dt.timedelta(minutes=3),
    )
    run = _run(
        state,
        start_time=T0 + dt.timedelta(minutes=1),
        end_time=T0 + dt.timedelta(minutes=2),
    )
    record = job_record(run, 42, Redactor(("hunter2",)))
    assert record.job_id == str(run.id)
    assert record.process_id == "echo"
    assert record.status == "failed"
    assert record.message == f"login {MASK} refused"
    assert record.created == T0
    assert record.started == T0 + dt.timedelta(minutes=1)
    assert record.finished == T0 + dt.timedelta(minutes=2)
    assert record.updated == T0 + dt.timedelta(minutes=3)
    assert record.progress == 42
    assert record.schedule_id is None


@pytest.mark.parametrize(
    ("state_type", "status", "message", "progress"),
    [
        (StateType.SCHEDULED, "accepted", "job accepted", 0),
        (StateType.PENDING, "accepted", "job accepted", 0),
        (StateType.RUNNING, "running", "job running", 37),
        (StateType.COMPLETED, "successful", "job finished", 100),
        (StateType.CANCELLING, "dismissed", "job dismissed", 37),
    ],
)
def test_a_run_without_a_message_gets_the_default_message(state_type, status, message, progress):
    record = job_record(_run(State(type=state_type)), 37, Redactor())
    assert (record.status, record.message, record.progress) == (status, message, progress)


def test_only_a_final_job_has_a_finished_time():
    end = T0 + dt.timedelta(minutes=5)
    running = job_record(_run(State(type=StateType.RUNNING), end_time=end), None, Redactor())
    done = job_record(_run(State(type=StateType.COMPLETED), end_time=end), None, Redactor())
    assert running.finished is None
    assert done.finished == end


def test_a_run_without_a_state_is_accepted():
    run = _run(None, updated=T0 + dt.timedelta(seconds=1))
    record = job_record(run, None, Redactor())
    assert (record.status, record.message, record.progress) == ("accepted", "job accepted", 0)
    assert record.updated == T0 + dt.timedelta(seconds=1)


def test_a_run_a_schedule_created_names_the_schedule():
    schedule_id = uuid.uuid4()
    scheduled = _run(
        State(type=StateType.SCHEDULED), created_by=CreatedBy(id=schedule_id, type="SCHEDULE")
    )
    by_automation = _run(
        State(type=StateType.SCHEDULED), created_by=CreatedBy(id=uuid.uuid4(), type="AUTOMATION")
    )
    assert job_record(scheduled, None, Redactor()).schedule_id == str(schedule_id)
    assert job_record(by_automation, None, Redactor()).schedule_id is None


def test_dismissing_a_finished_job_answers_dismissed():
    record = job_record(_run(State(type=StateType.COMPLETED)), None, Redactor())
    answer = dismissed(record)
    assert (answer.status, answer.message) == ("dismissed", "job dismissed")
    assert answer.job_id == record.job_id and answer.finished == record.finished


# --- progress -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tasks", "progress"),
    [
        ([], 0),
        ([("stage-in", StateType.RUNNING)], 5),
        ([("stage-in", StateType.COMPLETED), ("execute", StateType.COMPLETED)], 90),
        ([("execute", StateType.COMPLETED), ("stage-out", StateType.RUNNING)], 90),
        ([("execute", StateType.COMPLETED), ("stage-out", StateType.COMPLETED)], 100),
        ([("stage-in", StateType.COMPLETED), ("execute", StateType.RUNNING)], None),
    ],
)
def test_phase_progress_follows_the_task_runs(tasks, progress):
    run_id = uuid.uuid4()
    assert phase_progress([_task(name, state, run_id) for name, state in tasks]) == progress


@pytest.mark.parametrize(("done", "progress"), [(0, 10), (50, 50), (100, 90), (250, 90), (-5, 10)])
def test_execute_progress_places_the_steps_done_within_10_to_90(done, progress):
    assert execute_progress(done) == progress


# --- job list filters -----------------------------------------------------------------


def test_duration_filters():
    started = _run(
        State(type=StateType.COMPLETED),
        start_time=T0,
        end_time=T0 + dt.timedelta(seconds=30),
    )
    running = _run(State(type=StateType.RUNNING), start_time=T0)
    waiting = _run(State(type=StateType.SCHEDULED))
    assert duration_ok(started, JobFilters(min_duration_s=10, max_duration_s=30))
    assert not duration_ok(started, JobFilters(min_duration_s=31))
    assert not duration_ok(started, JobFilters(max_duration_s=29))
    # A running job has run until now.
    now = T0 + dt.timedelta(seconds=100)
    assert duration_ok(running, JobFilters(min_duration_s=100), now=now)
    assert not duration_ok(running, JobFilters(max_duration_s=99), now=now)
    # One that has not started matches only without a minimum.
    assert duration_ok(waiting, JobFilters(max_duration_s=1))
    assert not duration_ok(waiting, JobFilters(min_duration_s=0))


# --- logs -------------------------------------------------------------------------------


def test_each_log_line_names_its_source():
    run_id = uuid.uuid4()
    execute = _task("execute", StateType.RUNNING, run_id)
    lines = [
        Log(
            name="oapip.gateway", level=20, message="job created", timestamp=T0, flow_run_id=run_id
        ),
        Log(name="prefect.flow_runs", level=20, message="start", timestamp=T0, flow_run_id=run_id),
        Log(
            name="prefect.task_runs",
            level=40,
            message="tool failed",
            timestamp=T0,
            flow_run_id=run_id,
            task_run_id=execute.id,
        ),
        Log(
            name="prefect.task_runs",
            level=20,
            message="from a task run not read",
            timestamp=T0,
            flow_run_id=run_id,
            task_run_id=uuid.uuid4(),
        ),
    ]
    records = log_records(lines, [execute], Redactor())
    assert [(r.source, r.level, r.logger, r.message) for r in records] == [
        ("gateway", 20, "oapip.gateway", "job created"),
        ("flow", 20, "prefect.flow_runs", "start"),
        ("execute", 40, "prefect.task_runs", "tool failed"),
        ("task", 20, "prefect.task_runs", "from a task run not read"),
    ]


def test_users_get_log_lines_without_tracebacks_engine_paths_or_secrets():
    run_id = uuid.uuid4()
    redact = Redactor(secrets=("hunter2",), paths=("/srv/oapip", "/opt/venv/lib/python3.11"))
    failed = (
        "Encountered exception during execution: ToolFailed('step main failed')\n"
        "Traceback (most recent call last):\n"
        '  File "/opt/venv/lib/python3.11/site-packages/prefect/flow_engine.py", line 1\n'
        "core.exceptions.ToolFailed: step main failed"
    )
    lines = [
        Log(name="prefect.flow_runs", level=40, message=failed, timestamp=T0, flow_run_id=run_id),
        Log(
            name="prefect.task_runs",
            level=20,
            message="cwltool: [job main] /srv/oapip/jobs/x/tmp/o1$ echo hunter2",
            timestamp=T0,
            flow_run_id=run_id,
        ),
        Log(
            name="prefect.task_runs",
            level=20,
            message="tool: /srv/oapip/data is mine, hunter2",
            timestamp=T0,
            flow_run_id=run_id,
        ),
    ]
    messages = [r.message for r in log_records(lines, [], redact)]
    assert messages == [
        "Encountered exception during execution: ToolFailed('step main failed')",
        f"cwltool: [job main] {ELIDED}/jobs/x/tmp/o1$ echo {MASK}",
        f"tool: /srv/oapip/data is mine, {MASK}",  # the tool's own output keeps its words
    ]


# --- processes ----------------------------------------------------------------------------


def test_deployment_fields_name_the_package_and_describe_the_inputs(echo: DeployedPackage):
    fields = deployment_fields("alice", echo)
    assert fields["parameters"] == {
        "package": fields["parameters"]["package"],
        "revision": echo.revision,
    }
    assert "alice" in fields["parameters"]["package"] and "echo" in fields["parameters"]["package"]
    assert fields["tags"] == job_tags("alice", "echo")
    assert fields["description"] == "Writes its message to a file."
    schema = fields["parameter_openapi_schema"]
    assert schema["required"] == ["inputs", "package"]
    assert schema["properties"]["inputs"]["properties"]["message"]["type"] == "string"
    assert schema["properties"]["inputs"]["required"] == ["message"]
    positions = [p["position"] for p in schema["properties"].values()]
    assert positions == sorted(positions) == list(range(len(positions)))


def test_the_revision_changes_with_the_workflow(echo: DeployedPackage):
    other = DeployedPackage(
        process_id="echo",
        workflow={**echo.workflow, "doc": "changed"},
        entrypoint=echo.entrypoint,
        description=echo.description,
        source=echo.source,
    )
    assert len(echo.revision) == 16
    assert other.revision != echo.revision


def test_run_parameters_validate_the_inputs(echo: DeployedPackage):
    parameters = run_parameters(echo.description, {"message": {"value": "hi"}}, None, None, "")
    assert parameters == {"inputs": {"message": "hi"}}
    with pytest.raises(InvalidInput):
        run_parameters(echo.description, {"message": 3}, None, None, "")


def test_run_parameters_keep_the_subscriber_and_the_jobs_url(echo: DeployedPackage):
    subscriber = {"successUri": "https://me.example/done", "failedUri": None}
    parameters = run_parameters(
        echo.description,
        {"message": "hi"},
        {"said": {}},
        subscriber,
        "https://gw.example/alice/ogc-api/jobs",
    )
    assert parameters == {
        "inputs": {"message": "hi"},
        "outputs": {"said": {}},
        "subscriber": {"successUri": "https://me.example/done"},
        "jobs_url": "https://gw.example/alice/ogc-api/jobs",
    }
    with pytest.raises(InvalidParameter, match="subscriber URIs must be http"):
        run_parameters(echo.description, {"message": "hi"}, None, {"successUri": "file:///x"}, "")


# --- schedules ------------------------------------------------------------------------


def test_prefect_schedule_of_a_cron_and_of_an_interval():
    cron = prefect_schedule(
        ScheduleSpec(cron="0 2 * * *", timezone="Europe/Rome"), min_interval_s=60
    )
    assert isinstance(cron, CronSchedule) and cron.cron == "0 2 * * *"
    assert cron.timezone == "Europe/Rome"
    interval = prefect_schedule(ScheduleSpec(interval_s=3600, anchor=T0), min_interval_s=60)
    assert isinstance(interval, IntervalSchedule)
    assert interval.interval == dt.timedelta(hours=1) and interval.anchor_date == T0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ScheduleSpec(), "either a `cron` or an `interval`"),
        (ScheduleSpec(cron="0 2 * * *", interval_s=3600), "either a `cron` or an `interval`"),
        (ScheduleSpec(cron="0 2 * * *", timezone="Mars/Olympus"), "unknown timezone"),
        (ScheduleSpec(interval_s=30), "schedules run at most every 60 s"),
        (ScheduleSpec(cron="every day"), "the schedule is not valid"),
    ],
)
def test_prefect_schedule_refuses_what_is_not_valid(spec, message):
    with pytest.raises(InvalidParameter, match=message):
        prefect_schedule(spec, min_interval_s=60)


def test_schedule_record_reads_the_timing_and_the_request():
    process = ProcessRecord(
        process_id="echo",
        owner="alice",
        deployment_id=uuid.uuid4(),
        revision="r",
        package_name="p",
        description={},
    )
    parameters = {"inputs": {"message": "hi"}, "subscriber": {"successUri": "https://x/y"}}
    schedule = DeploymentSchedule(
        schedule=IntervalSchedule(interval=dt.timedelta(minutes=5), anchor_date=T0),
        active=False,
        parameters=parameters,
        created=T0,
        updated=T0 + dt.timedelta(seconds=1),
    )
    record = schedule_record(process, schedule)
    assert record.schedule_id == str(schedule.id)
    assert (record.process_id, record.deployment_id) == ("echo", process.deployment_id)
    assert record.spec == ScheduleSpec(
        interval_s=300.0,
        anchor=T0,
        timezone="UTC",
        active=False,
        inputs={"message": "hi"},
        subscriber={"successUri": "https://x/y"},
    )
    assert record.parameters == parameters
    assert (record.created, record.updated) == (T0, T0 + dt.timedelta(seconds=1))
    cron = DeploymentSchedule(schedule=CronSchedule(cron="0 2 * * *", timezone="Europe/Rome"))
    spec = schedule_record(process, cron).spec
    assert (spec.cron, spec.interval_s, spec.timezone, spec.active, spec.inputs) == (
        "0 2 * * *",
        None,
        "Europe/Rome",
        True,
        {},
    )


def test_the_public_surface_is_what_the_module_defines():
    module = ogc_prefect.mapping
    defined = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
    }
    assert defined <= set(module.__all__)
    assert all(hasattr(module, name) for name in module.__all__)
