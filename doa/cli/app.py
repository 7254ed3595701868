"""The ``doa`` command line: check, graph, demo (and, with the runtime, run/publish/subscribe).

Errors are one line on stderr and a non-zero exit code; ``doa --debug ...`` shows tracebacks.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import click
from rich.markup import escape

from doa import __version__
from doa.cli.console import err, out
from doa.errors import DoaError
from doa.wire.compat import LEVELS


class _State:
    debug = False
    logging = False  # main() configured logging (not when cli is invoked in tests)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="doa")
@click.option("--debug", is_flag=True,
              help="Show full tracebacks on errors, and the library logs as -v does.")
@click.option("--verbose", "-v", is_flag=True,
              help="Show the logs of doa and its libraries (aiokafka, kafka, faust) on stderr; "
                   "they always go to ~/.cache/doa/logs/doa.log (or $DOA_LOG_FILE).")
def cli(debug: bool, verbose: bool) -> None:
    """doa: typed, replayable streams and stateless ML nodes on Kafka.

    Logs go to ~/.cache/doa/logs/doa.log ($DOA_LOG_FILE moves it); stderr shows doa's own
    warnings, and with -v everything.
    """
    _State.debug = debug
    if _State.logging and (verbose or debug):
        from doa.cli.logs import show_on_stderr

        show_on_stderr(True)


@cli.command()
@click.argument("topology", required=False)
@click.option("--against", "against", nargs=2, type=click.Path(), metavar="OLD.avsc NEW.avsc",
              help="Check that NEW is compatible with OLD instead of checking a topology.")
@click.option("--level", type=click.Choice(LEVELS, case_sensitive=False), default=None,
              help="Compatibility level. With --against: BACKWARD unless given (between two "
                   "files a _TRANSITIVE level is its plain level). With --broker: overrides "
                   "each stream's own level (default BACKWARD_TRANSITIVE).")
@click.option("--broker", default=None, metavar="HOST:PORT",
              help="Also check the schemas against the versions registered on this broker.")
def check(topology: str | None, against: tuple[str, str] | None, level: str | None,
          broker: str | None) -> None:
    """Validate a topology offline, or a schema change with --against OLD NEW."""
    if against:
        _check_against(against, (level or "BACKWARD").upper())
        return
    if topology is None:
        raise click.UsageError("give a TOPOLOGY, or --against OLD.avsc NEW.avsc")
    from doa.topology.loader import load_topology
    from doa.topology.validate import warnings

    t = load_topology(topology)
    found = t.validate()
    waits = bool(found) and broker is not None  # the broker's checks wait for these
    more: list[str] = []
    if not found and broker is not None:
        from doa.catalog.readers import running_problems
        from doa.cluster.registry import plan_registration, read_registry

        try:
            found, more = _partition_problems(t, broker)
            found += running_problems(t, broker)  # foreign writers, unreadable versions
            pending = plan_registration(t, read_registry(broker), level and level.upper())
        except DoaError as exc:
            found = [*found, str(exc)]
        else:
            for stream, version, _schema in pending if not found else ():
                out.print(f"stream {stream!r}: would register schema version {version}")
    for warning in [*warnings(t), *more]:
        err.print(f"[yellow]warning[/yellow]: {escape(warning)}")
    if found:
        for problem in found:
            err.print(f"[red]problem[/red]: {escape(problem)}")
        if waits:
            err.print(f"note: not checked against {broker} (the registered schema versions, "
                      "partitions, running nodes) until the problems above are fixed")
        sys.exit(1)
    out.print(f"[green]ok[/green]: topology {t.name!r}: {len(t.streams)} streams, "
              f"{len(t.nodes)} node{'s' if len(t.nodes) != 1 else ''}")


def _partition_problems(t: Any, broker: str) -> tuple[list[str], list[str]]:
    """Topics of ``t`` that exist on ``broker`` with another partition count: fewer than
    declared, or a stream's with more (``doa run`` refuses both), or a state topic's with
    more (a warning: doa uses the declared ones).
    Topics not there yet are left alone (``doa run`` creates them)."""
    from doa.cluster.admin import more_partitions, topology_topics, wrong_partitions
    from doa.cluster.streams import broker_topics

    # One metadata request for every topic: asking for one that does not exist would create
    # it on brokers that auto-create topics (tansu, Kafka's default).
    existing = broker_topics(broker)
    have = {s.name: (existing[s.name], s) for s in topology_topics(t) if s.name in existing}
    fewer = [str(wrong_partitions({name: (n, s.partitions)})) for name, (n, s) in have.items()
             if 0 < n < s.partitions]  # `doa partitions` grows them
    fewer += [str(more_partitions(name, n, s.partitions)) for name, (n, s) in have.items()
              if n > s.partitions and s.exact]  # doa run refuses them too
    more = [f"topic {name!r} has {n} partitions on the broker, the topology declares "
            f"{s.partitions}: doa uses the first {s.partitions} only" for name, (n, s)
            in have.items() if n > s.partitions and not s.exact]
    return fewer, more


def _check_against(against: tuple[str, str], level: str) -> None:
    from doa.wire.compat import incompatibilities

    new = _schema(against[1], against[1], against)
    try:
        old = _schema(against[0], against[0], against)
    except DoaError:  # OLD saved on its own (git show ...): resolve with NEW's types
        old = _schema(against[0], against[1], against)
    found = incompatibilities(old.json, new.json, level)
    if found:
        for problem in found:
            err.print(f"[red]incompatible[/red] ({level}): {escape(problem)}")
        sys.exit(1)
    out.print(f"[green]ok[/green]: {against[1]} is {level}-compatible with {against[0]}")


@cli.command()
@click.argument("topology")
def graph(topology: str) -> None:
    """Print a topology as a Mermaid flowchart."""
    from doa.topology.loader import load_topology
    from doa.topology.mermaid import mermaid

    click.echo(mermaid(load_topology(topology)))


@cli.command()
@click.argument("topology", default="topologies/fraud.py")
@click.option("--records", "-n", default=20000, show_default=True,
              help="How many records the topology's demo source publishes.")
@click.option("--for", "seconds", type=float, default=180.0, show_default=True,
              help="At most this long the nodes run (broker mode); the demo ends earlier "
                   "once its source is done and the nodes are idle.")
@click.option("--broker", envvar="DOA_BROKER", default=None, metavar="HOST:PORT",
              help="Use this broker instead of starting an embedded one.")
@click.option("--memory", is_flag=True, help="Run in the in-memory harness (no broker).")
def demo(topology: str, records: int, seconds: float, broker: str | None, memory: bool) -> None:
    """Publish a topology's demo source into it, run it, and show what flowed."""
    from doa.demo.run import run_broker_demo, run_memory_demo

    if memory:
        run_memory_demo(topology, records, out)
    else:
        run_broker_demo(topology, records, seconds, broker, out)


def _schema(path: str, beside: str, compared: tuple[str, ...]) -> Any:
    """The schema in ``path``, its named types resolved with the schemas beside ``beside``.

    When those schemas cannot be read together (two differing definitions of one type, a
    file that does not parse) they are left out; if ``path`` then fails to resolve, the
    error says first why they were left out.
    """
    from doa.errors import SchemaError
    from doa.wire.schema import Schema

    try:
        known, problem = _neighbours(beside, compared), None
    except DoaError as exc:
        known, problem = None, exc
    try:
        return Schema.from_file(path, known)
    except SchemaError as exc:
        if problem is None:
            raise
        raise SchemaError(f"{problem}; so the schemas beside {beside} were left out, and "
                          f"{exc}") from None


def _neighbours(path: str, compared: tuple[str, ...] = ()) -> Any:
    """The schemas beside ``path``, so a file may reference named types defined there.

    The files being ``compared`` are left out: two versions of one type may sit side by side.
    A one-line :class:`DoaError` when they cannot be read together.
    """
    from pathlib import Path

    from doa.wire.schema import SchemaSet

    skip = {Path(p).resolve() for p in compared}
    files = [f for f in sorted(Path(path).parent.glob("*.avsc")) if f.resolve() not in skip]
    return SchemaSet.from_files(files)


def _add_broker_commands() -> None:
    from doa.cli import broker, catalog, deploy, dlq, model, streams

    for command in (streams.run_cmd, streams.publish_cmd, streams.subscribe_cmd,
                    broker.broker_cmd, dlq.dlq_cmd, model.model_cmd,
                    deploy.compose_cmd, deploy.deploy_cmd, catalog.catalog_cmd):
        cli.add_command(command)
    from doa.cli.lineage import lineage_cmd

    cli.add_command(lineage_cmd)
    from doa.cli.ui import ui_cmd

    cli.add_command(ui_cmd)
    from doa.cli.collect import dataset_cmd, export_cmd

    cli.add_command(dataset_cmd)
    cli.add_command(export_cmd)
    from doa.cli.partitions import partitions_cmd

    cli.add_command(partitions_cmd)


_add_broker_commands()


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``doa`` console script."""
    from doa.cli.logs import configure

    configure()  # library logs to the log file, not into the command's output
    _State.logging = True
    try:
        return cli.main(args=argv, prog_name="doa", standalone_mode=False)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (DoaError, OSError) as exc:
        _fail(exc)
    except Exception as exc:  # an unexpected error is still one line, unless --debug
        _fail(exc, prefix=f"unexpected {type(exc).__name__}: ")


def _fail(exc: BaseException, prefix: str = "") -> None:
    if _State.debug or "--debug" in sys.argv:
        traceback.print_exception(exc)
    text = str(exc) or type(exc).__name__
    if isinstance(exc, FileNotFoundError) and exc.filename:
        text = f"file not found: {exc.filename}"
    err.print(f"[red]error[/red]: {escape(prefix + text)}")
    sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
