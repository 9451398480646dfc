"""``sqljobs graph show ID`` and ``sqljobs graph cancel ID``: a job graph's jobs and states."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from rich.table import Table

from ..graphs import GraphSnapshot
from ._loading import load_for_command, reporting
from ._output import _escape, _iso, _state, console, job_summary, print_json


def graph_json(graph: GraphSnapshot) -> dict[str, Any]:
    """A graph as the CLI's ``--json`` and the REST API give it."""
    return {
        "id": graph.id,
        "name": graph.name,
        "on_failure": graph.on_failure,
        "created_at": _iso(graph.created_at),
        "state": graph.state,
        "counts": {state.value: n for state, n in sorted(graph.counts().items())},
        "jobs": [
            {**job_summary(job), "depends_on": graph.parents_of(job.id)} for job in graph.jobs
        ],
    }


def render_graph(graph: GraphSnapshot) -> Table:
    title = f"graph {graph.id}" + (f" {_escape(graph.name)}" if graph.name else "")
    table = Table(title=f"{title}: {graph.state} (on_failure={graph.on_failure})")
    for column in ("id", "task", "state", "depends on", "attempt", "last error"):
        table.add_column(column)
    for job in graph.jobs:
        last = job.last_error
        table.add_row(
            str(job.id),
            _escape(job.task),
            _state(job.state),
            ", ".join(map(str, graph.parents_of(job.id))),
            f"{job.attempt}/{job.max_attempts}",
            _escape(f"{last.type}: {last.message}"[:120]) if last else "",
        )
    return table


def add_graph_commands(
    app: typer.Typer, app_option: Callable[[], Any], json_option: Callable[[], Any]
) -> None:
    graph_app = typer.Typer(help="Show and cancel job graphs.", no_args_is_help=True)
    app.add_typer(graph_app, name="graph")

    @graph_app.command("show")
    def show(
        graph_id: int = typer.Argument(..., metavar="ID"),
        app_path: str = app_option(),
        as_json: bool = json_option(),
    ) -> None:
        """A graph's jobs: state, dependencies, attempts and last error."""
        with reporting():
            graph = load_for_command(app_path).get_graph(graph_id)
            if as_json:
                print_json(graph_json(graph))
            else:
                console().print(render_graph(graph))

    @graph_app.command("cancel")
    def cancel(
        graph_id: int = typer.Argument(..., metavar="ID"), app_path: str = app_option()
    ) -> None:
        """Cancel every unfinished job of a graph; a running one can no longer commit."""
        with reporting():
            cancelled = load_for_command(app_path).cancel_graph(graph_id)
            typer.echo(f"graph {graph_id}: {len(cancelled)} job(s) cancelled")
