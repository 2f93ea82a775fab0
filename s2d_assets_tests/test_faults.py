"""Faults: a run killed with SIGKILL loses nothing and the rerun finishes; readers never make a writer fail.

Runs are real `s2d run` processes on a tiny experiment (the tiny random model, one task, one method). The kill
comes from the fault-injection hook (``S2D_FAULT_POINT``, ``core/faults.py``): the process sends itself SIGKILL at
a named point, exactly as ``kill -9`` would there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from s2d_assets.core.paths import StatePaths
from s2d_assets.core.snapshot import snapshot_path
from s2d_assets_tests.conftest import tiny_experiment_data, write_experiment

pytestmark = pytest.mark.slow
BATCH = 8
LOCK_ERRORS = ("Could not set lock", "Conflicting lock", "database is locked")


def experiment(model: Path, tmp: Path, name: str = "tiny") -> Path:
    data = tiny_experiment_data(
        model,
        name=name,
        engine={"kind": "transformers", "batch_size": BATCH, "dtype": "float32"},
        checks={"min_pool_size": 0},
    )
    data["tasks"] = {"coin_flip": data["tasks"]["coin_flip"]}
    data["methods"] = {"rar_1step": data["methods"]["rar_1step"]}
    return write_experiment(tmp / f"{name}.yaml", data)


def s2d(state: Path, *args: str, fault: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "S2D_STATE": str(state), "DAGSTER_HOME": str(state / "dagster_home")}
    env.pop("S2D_FAULT_POINT", None)
    if fault:
        env["S2D_FAULT_POINT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "s2d_assets.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def rows(state: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read the warehouse as the next run would open it (replaying its log)."""
    with duckdb.connect(str(StatePaths(state).warehouse)) as con:
        return con.execute(sql).fetchall()


def cache(state: Path) -> dict[str, str]:
    return dict(rows(state, "SELECT cache_key, output FROM llm_cache"))


def answered(state: Path) -> list[tuple[Any, ...]]:
    """Each cached request with its answer, whatever model fingerprint keys it."""
    return sorted(rows(state, "SELECT request::VARCHAR, output FROM llm_cache"))


def pool(state: Path) -> list[tuple[Any, ...]]:
    """The pool's rows, each input's votes object with its answers sorted (the pool lists them in no
    particular order, so two runs may write the same votes in a different order)."""
    found = rows(
        state,
        "SELECT task, method, input_id, answer, votes, n_samples, agreement, kept, reason FROM curated_pool "
        "ORDER BY ALL",
    )
    return [(*row[:4], json.dumps(json.loads(row[4]), sort_keys=True), *row[5:]) for row in found]


def slots_held(state: Path) -> tuple[int, list[str]]:
    """Claimed slots of the writer pool, and the runs still marked as started."""
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    with DagsterInstance.from_config(str(state / "dagster_home")) as instance:
        info = instance.event_log_storage.get_concurrency_info("duckdb_writer")
        started = instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED]))
        return len(info.claimed_slots), [r.run_id for r in started]


def last_run_misses(state: Path) -> int:
    """Generation-cache misses of the latest successful run (the materialisations' ``cache_misses``)."""
    from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

    with DagsterInstance.from_config(str(state / "dagster_home")) as instance:
        (record,) = instance.get_run_records(filters=RunsFilter(statuses=[DagsterRunStatus.SUCCESS]), limit=1)
        entries = instance.all_logs(record.dagster_run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
        return sum(
            int(entry.asset_materialization.metadata["cache_misses"].value)
            for entry in entries
            if entry.asset_materialization is not None and "cache_misses" in entry.asset_materialization.metadata
        )


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An uninterrupted run: its pool and its cache."""
    tmp = tmp_path_factory.mktemp("reference")
    state = tmp / "state"
    done = s2d(state, "run", "-e", str(experiment(tiny_model_dir, tmp)))
    assert done.returncode == 0, done.stderr[-3000:]
    reference = {"pool": pool(state), "cache": cache(state), "answered": answered(state)}
    assert last_run_misses(state) == len(reference["cache"])  # every miss is stored once
    return reference


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "fault",
    ["generation:before_commit:2", "warehouse:in_transaction:3", "training:before_publish:1"],
)
def test_a_run_killed_anywhere_loses_nothing(
    fault: str, reference: dict[str, Any], tiny_model_dir: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    path = experiment(tiny_model_dir, tmp_path)
    killed = s2d(state, "run", "-e", str(path), fault=fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]

    before = cache(state)
    assert set(before.items()) <= set(reference["cache"].items())
    if fault.startswith("generation"):
        # The first batch was committed; the second was generated, not committed, and died with the process.
        assert 0 < len(before) <= BATCH
    if fault.startswith("training"):
        staging = [p for p in StatePaths(state).checkpoints.rglob(".staging-*")]
        assert staging, "the kill should leave the trained staging folder behind"

    started = time.monotonic()
    rerun = s2d(state, "run", "-e", str(path), timeout=600)  # a held pool slot would make this hang
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert time.monotonic() - started < 600

    after = cache(state)
    assert set(before.items()) <= set(after.items()), "a completed sample was lost"
    # Every request answered once, with the same text as the uninterrupted run. Compared by request, since the
    # distilled checkpoint of a run resumed after a kill can carry another fingerprint than the uninterrupted
    # run's (an open question: same data and seed), and its fingerprint is part of the cache key.
    assert answered(state) == reference["answered"]
    # The rerun generates exactly what was not committed before the kill: nothing committed is generated again,
    # so the work lost to the kill is at most the one batch in flight.
    assert last_run_misses(state) == len(reference["cache"]) - len(before)
    assert pool(state) == reference["pool"]
    assert not list(StatePaths(state).checkpoints.rglob(".staging-*"))
    claimed, started_runs = slots_held(state)
    assert claimed == 0 and started_runs == []
    with duckdb.connect(str(snapshot_path(StatePaths(state).warehouse)), read_only=True) as con:
        assert sorted(con.execute("SELECT cache_key, output FROM llm_cache").fetchall()) == sorted(after.items())


HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print(con.execute("SELECT count(*) FROM llm_cache").fetchone()[0], flush=True)
stop = sys.argv[2]
import os
while not os.path.exists(stop):
    con.execute("SELECT count(*) FROM llm_cache").fetchone()
    time.sleep(0.2)
print("held", flush=True)
"""


@pytest.mark.timeout(900)
def test_a_reader_holding_the_snapshot_across_a_whole_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    from s2d_assets.core.warehouse import Warehouse

    state = tmp_path / "state"
    warehouse = Warehouse(StatePaths(state).warehouse)
    with warehouse.connect():  # an empty warehouse and its first snapshot
        pass
    snapshot = warehouse.read_snapshot()
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", HOLD, str(snapshot), str(stop)], stdout=subprocess.PIPE, text=True)
    assert reader.stdout is not None and reader.stdout.readline().strip() == "0"
    run = s2d(state, "run", "-e", str(experiment(tiny_model_dir, tmp_path)))
    stop.touch()
    assert reader.wait(30) == 0 and reader.stdout.readline().strip() == "held"
    assert run.returncode == 0, run.stderr[-3000:]
    assert not any(marker in run.stderr for marker in LOCK_ERRORS)


READER = """
import os, sys, time
from s2d_assets.cli import main
stop, failures = sys.argv[1], 0
queries = ["SELECT count(*) FROM llm_cache", "SELECT task, count(*) FROM inputs GROUP BY ALL",
           "SELECT experiment, count(*) FROM curated_pool GROUP BY ALL"]
ok = 0
while not os.path.exists(stop):
    for query in queries:
        code = main(["sql", "--format", "csv", query])
        ok += code == 0
        failures += code not in (0, 2)  # 2: no snapshot yet, or a table not created yet
    time.sleep(0.1)
print(f"ok={ok} failures={failures}", flush=True)
"""


@pytest.mark.timeout(900)
def test_two_runs_and_two_readers_at_once_without_lock_errors(tiny_model_dir: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {**os.environ, "S2D_STATE": str(state), "DAGSTER_HOME": str(state / "dagster_home")}
    env.pop("S2D_FAULT_POINT", None)
    stop = tmp_path / "stop"
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "s2d_assets.cli", "run", "-e", str(experiment(tiny_model_dir, tmp_path, name))],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("first", "second")
    ]
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(stop)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = [run.communicate(timeout=800) for run in runs]
    stop.touch()
    reads = [reader.communicate(timeout=60) for reader in readers]
    for run, (_, err) in zip(runs, outcomes, strict=True):
        assert run.returncode == 0, err[-3000:]
        assert not any(marker in err for marker in LOCK_ERRORS), err[-3000:]
    for reader, (out, err) in zip(readers, reads, strict=True):
        assert reader.returncode == 0, err[-3000:]
        assert "failures=0" in out and "ok=0" not in out, (out, err[-2000:])
        assert not any(marker in err for marker in LOCK_ERRORS), err[-3000:]
    assert {name for (name,) in rows(state, "SELECT DISTINCT experiment FROM evaluations")} == {"first", "second"}


OPENER = """
import sys, time
from pathlib import Path
from s2d_assets.core.paths import StatePaths
from s2d_assets.defs.instance import ensure_dagster_home
from s2d_assets.defs.runs import open_instance
paths = StatePaths(Path(sys.argv[1]))
ensure_dagster_home(paths)
while time.time() < float(sys.argv[2]):  # every process loads the instance at the same moment
    time.sleep(0.001)
with open_instance(paths) as instance:
    print(len(instance.get_runs()))
"""


def test_processes_opening_a_fresh_instance_at_once_all_succeed(tmp_path: Path) -> None:
    """Two ``s2d run`` on a fresh state folder both create Dagster's SQLite tables; neither may fail."""
    state = tmp_path / "state"
    env = {**os.environ, "DAGSTER_HOME": str(state / "dagster_home")}
    start = time.time() + 8  # after every interpreter has imported Dagster
    openers = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(state), str(start)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for opener in openers:
        out, err = opener.communicate(timeout=120)
        assert opener.returncode == 0, err[-2000:]
        assert out.strip() == "0"
