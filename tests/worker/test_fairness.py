"""The fast worker's pick-up order (no server): the next run comes from the user with
the fewest running, users at their limit are passed over."""

from __future__ import annotations

import datetime as dt
import uuid

from prefect.client.schemas.objects import FlowRun

from worker.fairness import Usage, pick, run_user

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _run(user: str, minute: int) -> FlowRun:
    return FlowRun(
        id=uuid.uuid4(),
        flow_id=uuid.uuid4(),
        tags=["oapip", f"user:{user}", "process:p"],
        expected_start_time=T0 + dt.timedelta(minutes=minute),
    )


def test_a_single_job_of_another_user_goes_before_a_long_backlog():
    backlog = [_run("a", m) for m in range(1000)]
    late = _run("b", 2000)
    chosen = pick([*backlog, late], {"a": Usage(3, 4), "b": Usage(0, 4)}, free=1)
    assert chosen == [late]


def test_users_at_their_limit_are_passed_over_and_slots_alternate():
    a = [_run("a", m) for m in range(10)]
    b = [_run("b", 100 + m) for m in range(10)]
    chosen = pick(a + b, {"a": Usage(1, 2), "b": Usage(0, 4)}, free=5)
    users = [run_user(r) for r in chosen]
    assert users.count("a") == 1  # a had 1 running of 2
    assert users[0] == "b" and users.count("b") == 4
    assert chosen[users.index("a")] is a[0]  # the oldest of a user's runs first


def test_no_limit_known_means_oldest_first():
    runs = [_run("c", m) for m in range(3)]
    assert pick(reversed(runs), {}, free=2) == runs[:2]
    assert pick(runs, {"c": Usage(9, None)}, free=3) == runs
