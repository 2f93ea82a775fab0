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

from s2d_assets.config.experiment import DEFAULT_EXPERIMENT, PROJECT_ROOT, experiment_path
from s2d_assets.core.errors import UserError, one_line
from s2d_assets.core.paths import ensure_dagster_home, state_paths
from s2d_assets.sql.query import add_sql_command

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
    from s2d_assets.defs.runs import open_instance, preflight, report_failure, run_job

    experiment = _use_experiment(args.experiment)
    paths = state_paths()
    ensure_dagster_home(paths)
    started = time.perf_counter()
    defs = load_definitions(experiment, paths)
    preflight(defs, paths)  # every input checked before anything is written
    with open_instance(paths) as instance:
        result = run_job(defs.resolve_job_def(MATERIALIZE_ALL), instance, debug=args.debug)
    elapsed = time.perf_counter() - started
    if not result.success:
        report_failure(result, f"The run failed after {elapsed:.0f}s")
        return EXIT_INTERNAL_ERROR
    print(f"\nMaterialised the '{experiment.stem}' experiment in {elapsed:.0f}s (run id {result.run_id}).\n")
    print_results(paths.warehouse)
    print(f"\nWarehouse (DuckDB): {paths.warehouse}")
    print(f"Dagster home:       {paths.dagster_home}")
    print(
        "Open the Dagster UI on the same history with:\n"
        f"  DAGSTER_HOME={paths.dagster_home} .venv/bin/dagster dev -w workspace.yaml\n"
        "or simply: .venv/bin/s2d ui"
    )
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    """Materialise the stale closure: stale or missing assets and everything downstream, in one run."""
    from s2d_assets.defs.automation import REFRESH
    from s2d_assets.defs.definitions import load_definitions
    from s2d_assets.defs.refresh import stale_closure, stale_reasons
    from s2d_assets.defs.runs import open_instance, preflight, report_failure, run_job

    experiment = _use_experiment(args.experiment)
    paths = state_paths()
    ensure_dagster_home(paths)
    defs = load_definitions(experiment, paths)
    preflight(defs, paths)
    asset_graph = defs.resolve_asset_graph()
    with open_instance(paths) as instance:
        reasons = stale_reasons(instance, asset_graph)
        closure = stale_closure(instance, asset_graph)
        if not closure:
            print("Everything is up to date; nothing to materialise.")
            return 0
        print(f"{len(closure)} asset(s) to materialise:")
        for key in closure:
            why = "; ".join(reasons.get(key, [])) or "downstream of a stale asset"
            print(f"  {key.to_user_string():50s} {why}")
        if args.dry_run:
            return 0
        result = run_job(defs.resolve_job_def(REFRESH), instance, debug=args.debug, asset_selection=closure)
    if not result.success:
        report_failure(result, "The refresh run failed")
        return EXIT_INTERNAL_ERROR
    print(f"Refreshed {len(closure)} asset(s) (run id {result.run_id}).")
    return 0


def print_results(warehouse_path: Path) -> None:
    """The evaluation table, read from the warehouse's read snapshot (never blocks a run)."""
    import duckdb

    from s2d_assets.core.warehouse import Warehouse
    from s2d_assets.sql.query import SANDBOX

    snapshot = Warehouse(warehouse_path).read_snapshot()
    with duckdb.connect(str(snapshot), read_only=True, config=dict(SANDBOX)) as con:
        table = con.sql(
            "SELECT experiment, task, method, system, n, round(100 * accuracy, 1) AS accuracy_pct, "
            "round(mean_tokens, 1) AS mean_tokens, round(seconds_per_item, 3) AS seconds_per_item, train_examples "
            "FROM evaluations ORDER BY experiment, task, method, "
            "CASE system WHEN 'system1' THEN 0 WHEN 'system2' THEN 1 ELSE 2 END"
        ).pl()
    import polars as pl

    with pl.Config(tbl_rows=200, tbl_width_chars=160, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        print(
            "Evaluation (eval split; System 1 = base model direct answer, System 2 = the method, "
            "distilled = fine-tuned System 1):"
        )
        print(table)


def cmd_results(args: argparse.Namespace) -> int:
    print_results(state_paths().warehouse)
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    _use_experiment(args.experiment)
    home = ensure_dagster_home()
    os.environ["DAGSTER_HOME"] = str(home)
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
    results.set_defaults(func=cmd_results)

    add_sql_command(commands)

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
