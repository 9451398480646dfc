"""``sqljobs graph show`` and ``sqljobs graph cancel`` against a real database."""

from __future__ import annotations

from types import ModuleType

from sqljobs import JobState
from tests.integration.test_cli import APP, Cli, app, cli  # noqa: F401  (fixtures)


def test_graph_show_lists_each_job_with_its_state_and_dependencies(
    app: ModuleType,  # noqa: F811
    cli: Cli,  # noqa: F811
) -> None:
    app.jobs.create_schema()
    g = app.jobs.graph(name="nightly")
    first = g.add(app.bump, counter_id=1)
    second = g.add(app.bump, depends_on=first, counter_id=2)
    graph_id = g.enqueue()

    shown = cli.json("graph", "show", str(graph_id))
    assert (shown["name"], shown["state"], shown["on_failure"]) == ("nightly", "running", "cancel")
    assert [(j["id"], j["state"], j["depends_on"]) for j in shown["jobs"]] == [
        (first.id, "available", []),
        (second.id, "blocked", [first.id]),
    ]
    text = cli("graph", "show", str(graph_id), "--app", APP).stdout
    assert "nightly" in text and "blocked" in text


def test_graph_cancel_cancels_the_waiting_jobs_and_an_unknown_graph_exits_3(
    app: ModuleType,  # noqa: F811
    cli: Cli,  # noqa: F811
) -> None:
    app.jobs.create_schema()
    g = app.jobs.graph()
    first = g.add(app.bump, counter_id=1)
    second = g.add(app.bump, depends_on=first, counter_id=2)
    graph_id = g.enqueue()

    out = cli("graph", "cancel", str(graph_id), "--app", APP).stdout
    assert out.strip() == f"graph {graph_id}: 2 job(s) cancelled"
    assert {app.jobs.get(n.id).state for n in (first, second)} == {JobState.CANCELLED}
    missing = cli("graph", "show", "999999", "--app", APP, code=3)
    assert "no job graph with id 999999" in missing.stderr
