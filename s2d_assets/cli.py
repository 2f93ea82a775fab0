"""The `s2d` command: run the pipeline, show results, open the UI.

Error contract: an error in what the user gave (a ``UserError``: experiment file, task or inbox
file, SQL model, query, a corrupt file in the state folder) is one line on stderr naming the
file and the field or row, exit status 2, no traceback; ``s2d --debug ...`` (or ``S2D_DEBUG=1``)
adds the traceback. Any other error is internal: exit status 1. A run that fails because a step
raised a user error is reported the same way (``defs/runs.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from s2d_assets.config.experiment import DEFAULT_EXPERIMENT, experiment_path
from s2d_assets.core.errors import UserError, one_line
from s2d_assets.core.paths import PROJECT_ROOT, state_paths
from s2d_assets.defs.instance import ensure_dagster_home
from s2d_assets.report.results_doc import DEFAULT_OUTPUT
from s2d_assets.report.results_table import RESULT_FORMATS, print_results
from s2d_assets.sql.query import FORMATS, QueryError, check_read_only, render, run_query

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


def _experiment_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--experiment",
        "-e",
        type=Path,
        default=None,
        help=f"experiment file (default: $S2D_EXPERIMENT or {DEFAULT_EXPERIMENT.relative_to(PROJECT_ROOT)})",
    )


def _use_experiment(path: Path | None) -> Path:
    resolved = experiment_path(path)
    os.environ["S2D_EXPERIMENT"] = str(resolved)  # the UI and run workers load the same file
    return resolved


def cmd_run(args: argparse.Namespace) -> int:
    from s2d_assets.defs.definitions import MATERIALIZE_ALL, load_definitions
    from s2d_assets.defs.run_report import format_timings, run_timings
    from s2d_assets.defs.runs import open_instance, preflight, report_failure, run_job

    experiment = _use_experiment(args.experiment)
    paths = state_paths()
    ensure_dagster_home(paths)
    started = time.perf_counter()
    defs = load_definitions(experiment, paths)
    preflight(defs, paths)  # every input checked before anything is written
    with open_instance(paths) as instance:
        result = run_job(defs.resolve_job_def(MATERIALIZE_ALL), instance, debug=args.debug)
        timings = run_timings(instance, result.run_id)
    elapsed = time.perf_counter() - started
    if not result.success:
        report_failure(result, f"The run failed after {elapsed:.0f}s")
        return EXIT_INTERNAL_ERROR
    print(f"\nMaterialised the '{experiment.stem}' experiment in {elapsed:.0f}s (run id {result.run_id}).\n")
    print("Wall time per stage, and the generation cache's hits and misses:")
    print(format_timings(timings) + "\n")
    print_results(paths.warehouse, experiment_name(defs))
    print(f"\nWarehouse (DuckDB): {paths.warehouse}")
    print(f"Dagster home:       {paths.dagster_home}")
    print(
        "Open the Dagster UI on the same history with:\n"
        f"  DAGSTER_HOME={paths.dagster_home} .venv/bin/dagster dev -w workspace.yaml\n"
        "or simply: .venv/bin/s2d ui"
    )
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    """Observe the sources, then materialise the stale closure (stale or missing assets and everything
    downstream) in one run. ``--dry-run`` computes the sources' data versions without recording them."""
    from s2d_assets.defs.automation import REFRESH
    from s2d_assets.defs.definitions import load_definitions
    from s2d_assets.defs.refresh import DependencyGraph, observe_sources, plan_refresh, unrecorded_sources
    from s2d_assets.defs.runs import open_instance, preflight, report_failure, run_job
    from s2d_assets.defs.sources import source_versions

    experiment = _use_experiment(args.experiment)
    paths = state_paths()
    ensure_dagster_home(paths)
    defs = load_definitions(experiment, paths)
    preflight(defs, paths)
    graph = DependencyGraph.of(defs)
    versions = source_versions(defs.resources["s2d"])  # every file's bytes hashed, nothing recorded yet
    with open_instance(paths) as instance:
        changed = unrecorded_sources(instance, versions)
        if changed and not args.dry_run:  # record the new data versions: Dagster's own observations
            observe_sources(defs, instance, changed, run=lambda job, inst, **kw: run_job(job, inst, args.debug, **kw))
        plan = plan_refresh(instance, graph, observed=versions)
        for key, why in plan.changed_sources.items():
            print(f"  {key.to_user_string():50s} new data: {'; '.join(why)}")
        if not plan.closure:
            print("Everything is up to date; nothing to materialise.")
            return 0
        print(f"{len(plan.closure)} asset(s) to materialise:")
        for key in plan.closure:
            why = "; ".join(plan.reasons.get(key, [])) or "downstream of a stale asset"
            print(f"  {key.to_user_string():50s} {why}")
        if args.dry_run:
            return 0
        result = run_job(defs.resolve_job_def(REFRESH), instance, debug=args.debug, asset_selection=plan.closure)
    if not result.success:
        report_failure(result, "The refresh run failed")
        return EXIT_INTERNAL_ERROR
    print(f"Refreshed {len(plan.closure)} asset(s) (run id {result.run_id}).")
    return 0


def experiment_name(defs: Any) -> str | None:
    ctx = (defs.resources or {}).get("s2d")
    return getattr(getattr(ctx, "experiment", None), "name", None)


def _experiment_name_arg(value: str | None) -> str | None:
    """``--experiment`` of ``s2d results``: a name, or an experiment file whose name is used."""
    if value and value.endswith((".yaml", ".yml")) and Path(value).is_file():
        from s2d_assets.config.experiment import load_experiment

        return load_experiment(Path(value)).name
    return value


def cmd_results(args: argparse.Namespace) -> int:
    print_results(state_paths().warehouse, _experiment_name_arg(args.experiment), args.format)
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    """Errors are ``UserError``s: printed as one line, exit status 2."""
    from s2d_assets.core.warehouse import Warehouse

    if args.file is not None:
        if args.query is not None:
            raise QueryError("give the query as an argument or with --file, not both")
        source = str(args.file)
        try:
            sql = args.file.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise QueryError(f"{source}: cannot read the query file ({one_line(str(error))})") from None
    elif args.query is None:
        raise QueryError("no query given: s2d sql \"SELECT ...\" (or --file query.sql, or '-' for stdin)")
    else:
        source = "<stdin>" if args.query == "-" else "query"
        sql = sys.stdin.read() if args.query == "-" else args.query
    try:
        check_read_only(sql)  # refuse a write before looking for the warehouse
        database = args.warehouse or Warehouse(state_paths().warehouse).read_snapshot()
        result = run_query(database, sql)
    except QueryError as error:
        raise type(error)(f"{source}: {error}") from None
    print(render(result, args.format))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from s2d_assets.report.results_doc import build_blocks, default_sources, render, write_report

    files = [Path(p) for p in args.experiment] or default_sources()
    warehouse = args.warehouse or state_paths().warehouse
    if args.stdout:
        print(render(build_blocks(warehouse, files)))
        return 0
    write_report(warehouse, files, args.output)
    print(f"Wrote {args.output} from {warehouse}.")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from s2d_assets.config.experiment import load_experiment
    from s2d_assets.distill.sweep import run_sweep

    for path in args.experiments:
        run_sweep(load_experiment(path), state_paths(), self_consistency=args.self_consistency)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write a curated pool or distillation set, with a dataset card, from the warehouse and Dagster's history."""
    from s2d_assets.defs.export import export_one
    from s2d_assets.defs.runs import open_instance
    from s2d_assets.report.export import PoolRef

    ref = PoolRef.parse(args.pool)
    paths = state_paths()
    ensure_dagster_home(paths)
    out = args.out or paths.root / "exports" / Path(*ref.parts) / args.format
    with open_instance(paths) as instance:
        written = export_one(instance, paths.warehouse, ref, args.format, out)
    print(f"Exported {ref} as {args.format} to {out}:")
    for path in written:
        print(f"  {path}")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from s2d_assets.defs.runs import open_instance

    _use_experiment(args.experiment)
    paths = state_paths()
    home = ensure_dagster_home(paths)
    os.environ["DAGSTER_HOME"] = str(home)
    with open_instance(paths):  # its tables exist before the webserver and the daemon both open it
        pass
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), *args.dagster_args]
    os.chdir(PROJECT_ROOT)
    os.execv(command[0], command)
    return 0  # not reached


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s2d", description="System 2 distillation on Dagster")
    parser.add_argument(
        "--debug",
        action="store_true",
        default=bool(os.environ.get("S2D_DEBUG")),
        help="on an error, show the traceback (and Dagster's full run log); also S2D_DEBUG=1",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="materialise every stage of the experiment, then print the evaluation")
    _experiment_arg(run)
    run.set_defaults(func=cmd_run)

    refresh = commands.add_parser(
        "refresh", help="materialise what is stale or missing, and everything downstream of it, in one run"
    )
    _experiment_arg(refresh)
    refresh.add_argument("--dry-run", action="store_true", help="only list what would be materialised and why")
    refresh.set_defaults(func=cmd_refresh)

    results = commands.add_parser("results", help="print the evaluation table from the warehouse")
    results.add_argument(
        "--experiment", "-e", default=None, help="only this experiment (its name, or its file); default: every one"
    )
    results.add_argument("--format", choices=RESULT_FORMATS, default="table", help="output format (default: table)")
    results.set_defaults(func=cmd_results)

    export = commands.add_parser(
        "export", help="write a curated pool or distillation set (parquet, jsonl or a datasets folder) with a card"
    )
    export.add_argument("pool", help="the pool's asset key, e.g. default/coin_flip/rar_1step/curated_pool")
    export.add_argument("--format", choices=("parquet", "jsonl", "hf"), default="parquet")
    export.add_argument("--out", type=Path, default=None, help="folder (default: <state>/exports/<pool>/<format>)")
    export.set_defaults(func=cmd_export)

    sql = commands.add_parser(
        "sql",
        help="run one read-only SQL query on the warehouse and print the result",
        description="Run one read-only query on the warehouse (writes are refused), e.g. "
        "s2d sql \"SELECT * FROM analytics.pool_summary\". Use '-' to read the query from stdin.",
    )
    sql.add_argument("query", nargs="?", help="the SQL query, or '-' to read it from stdin")
    sql.add_argument("--file", type=Path, default=None, help="read the query from this file instead")
    sql.add_argument("--format", "-f", choices=FORMATS, default="table", help="output format (default: table)")
    sql.add_argument(
        "--warehouse",
        type=Path,
        default=None,
        help="DuckDB file to read (default: the state folder's read snapshot, warehouse.read.duckdb)",
    )
    sql.set_defaults(func=cmd_sql)

    report = commands.add_parser(
        "report",
        help="regenerate docs/results.md from the warehouse (mean ± sd over seeds, baselines, the paper)",
        description="Regenerate the results document from the warehouse. Blocks between "
        "'<!-- s2d report: begin ID -->' and 'end ID' are replaced; text outside them is kept.",
    )
    report.add_argument(
        "-e",
        "--experiment",
        action="append",
        default=[],
        help="an experiment file to report (repeatable; default: experiments/*.yaml and experiments/sweeps/*.yaml "
        "that have rows in the warehouse)",
    )
    report.add_argument("--output", "-o", type=Path, default=DEFAULT_OUTPUT, help="the document (default: %(default)s)")
    report.add_argument("--warehouse", type=Path, default=None, help="DuckDB file (default: the state folder's)")
    report.add_argument("--stdout", action="store_true", help="print a fresh document instead of writing the file")
    report.set_defaults(func=cmd_report)
    sweep = commands.add_parser(
        "sweep",
        help="generation-only sweep: System 1 and each System 2 method on the eval split, for every seed",
        description="Inputs, the System 1 baseline and each method's System 2 answers on the eval split, for "
        "every seed and task of the given experiment files; no train-split samples, no training. "
        "`s2d report` then shows the sweep table.",
    )
    sweep.add_argument("experiments", nargs="+", type=Path, help="sweep experiment files (experiments/sweeps/*.yaml)")
    sweep.add_argument(
        "--self-consistency",
        action="store_true",
        help="also each method's plurality answer over the experiment's n_samples sampled chains",
    )
    sweep.set_defaults(func=cmd_sweep)

    ui = commands.add_parser("ui", help="start the Dagster UI on the project's persistent DAGSTER_HOME")
    _experiment_arg(ui)
    ui.add_argument("dagster_args", nargs=argparse.REMAINDER, help="passed on to `dagster dev`")
    ui.set_defaults(func=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UserError as error:
        if args.debug:
            traceback.print_exc()
        print(f"s2d: error: {one_line(str(error))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("s2d: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            traceback.print_exc()
        print(
            f"s2d: internal error: {type(error).__name__}: {one_line(str(error))[:500]}"
            + ("" if args.debug else " (run with --debug for the traceback)"),
            file=sys.stderr,
        )
        return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
