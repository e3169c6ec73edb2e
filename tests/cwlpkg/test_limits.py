"""A job's time limit from the site's and the package's CWL ToolTimeLimit."""

from __future__ import annotations

from cwlpkg.limits import job_time_limit_s


def _tool(limit: object = None, where: str = "hints") -> dict:
    tool: dict = {"class": "CommandLineTool", "baseCommand": "true"}
    if limit is not None:
        tool[where] = [{"class": "ToolTimeLimit", "timelimit": limit}]
    return tool


def test_a_tool_limit_lowers_the_site_limit_never_raises_it():
    assert job_time_limit_s(_tool(5), 100) == 5
    assert job_time_limit_s(_tool(500, "requirements"), 100) == 100
    assert job_time_limit_s(_tool(5), 0) == 5


def test_the_job_may_take_the_sum_of_its_tools_limits_when_all_have_one():
    graph = {"$graph": [{"class": "Workflow"}, _tool(5), _tool(7)]}
    assert job_time_limit_s(graph, 100) == 12
    graph = {"$graph": [{"class": "Workflow"}, _tool(5), _tool()]}
    assert job_time_limit_s(graph, 100) == 100
    assert job_time_limit_s(graph, 0) is None


def test_a_workflow_limit_covers_its_tools_and_expressions_or_zero_do_not_count():
    workflow = {"class": "Workflow", "requirements": {"ToolTimeLimit": {"timelimit": 4}}}
    assert job_time_limit_s({"$graph": [workflow, _tool(), _tool()]}, 100) == 8
    assert job_time_limit_s(_tool("$(inputs.t)"), 100) == 100
    assert job_time_limit_s(_tool(0), 100) == 100
