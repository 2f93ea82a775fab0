"""The state folder: dagster.yaml generated and upgraded, damaged files named, writes kept inside, read snapshot."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml

from s2d_assets.core.errors import StateError
from s2d_assets.core.paths import StatePaths
from s2d_assets.core.snapshot import snapshot_path
from s2d_assets.core.warehouse import Warehouse
from s2d_assets.defs.instance import DAGSTER_YAML, ensure_dagster_home

OLD_DAGSTER_YAML = """\
# Written by s2d. DuckDB allows one writer per file: every asset that writes the warehouse
# runs in the `duckdb_writer` pool, and pools default to one step at a time.
concurrency:
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""


def test_generated_dagster_yaml_frees_slots_of_dead_runs_and_dagster_accepts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster import DagsterInstance

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    home = ensure_dagster_home(StatePaths(tmp_path))
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_monitoring"]["free_slots_after_run_end_seconds"] > 0
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0


def test_an_old_generated_dagster_yaml_is_upgraded_a_user_one_is_kept(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path / "old")
    paths.dagster_home.mkdir(parents=True)
    (paths.dagster_home / "dagster.yaml").write_text(OLD_DAGSTER_YAML)
    ensure_dagster_home(paths)
    assert (paths.dagster_home / "dagster.yaml").read_text() == DAGSTER_YAML
    mine = StatePaths(tmp_path / "mine")
    mine.dagster_home.mkdir(parents=True)
    custom = "telemetry:\n  enabled: false\n"
    (mine.dagster_home / "dagster.yaml").write_text(custom)
    ensure_dagster_home(mine)
    assert (mine.dagster_home / "dagster.yaml").read_text() == custom


@pytest.mark.parametrize("text", ["", "concurrency:\n  pools: [\n", "just a string", DAGSTER_YAML[:40] + "\n  : :"])
def test_a_truncated_dagster_yaml_is_named_with_the_fix(tmp_path: Path, text: str) -> None:
    paths = StatePaths(tmp_path)
    paths.dagster_home.mkdir(parents=True)
    config = paths.dagster_home / "dagster.yaml"
    config.write_text(text)
    with pytest.raises(StateError, match=rf"{config}: .*delete it"):
        ensure_dagster_home(paths)
    assert config.read_text() == text


@pytest.mark.parametrize("content", [b"", b"hello, not a database", b"\0" * 4096])
def test_a_damaged_warehouse_is_named_with_the_fix(tmp_path: Path, content: bytes) -> None:
    from s2d_assets.distill.preflight import check_warehouse_file

    paths = StatePaths(tmp_path)
    paths.warehouse.write_bytes(content)
    with pytest.raises(StateError, match=rf"{paths.warehouse}: .*mv .*s2d run"):
        check_warehouse_file(paths)
    with pytest.raises(StateError, match=rf"{paths.warehouse}: .*damaged.*mv "):
        Warehouse(paths.warehouse, "e").query("SELECT 1")
    assert paths.warehouse.read_bytes() == content


def test_a_truncated_warehouse_is_named_when_it_is_read(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "warehouse.duckdb", "e")
    warehouse.replace_rows("llm_cache", {"cache_key": "k"}, pl.DataFrame())
    with duckdb.connect(str(warehouse.path)) as con:
        con.execute("CREATE TABLE big AS SELECT range AS i, md5(range::VARCHAR) AS h FROM range(200000)")
    data = warehouse.path.read_bytes()
    warehouse.path.write_bytes(data[: len(data) // 3])
    with pytest.raises(StateError, match="damaged"):
        warehouse.query("SELECT sum(length(h)) FROM big")


def test_writes_outside_the_state_folder_are_refused(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path / "state")
    with pytest.raises(StateError, match="outside the state folder"):
        paths.checkpoint("..", "..", "escape")
    (tmp_path / "elsewhere").mkdir()
    paths.root.mkdir()
    (paths.root / "checkpoints").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StateError, match="outside the state folder"):
        paths.checkpoint("e", "t", "m")


# -- the read snapshot -------------------------------------------------------------------------------
def test_every_write_publishes_the_snapshot(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "warehouse.duckdb", "e")
    frame = pl.DataFrame({"task": ["t"], "split": ["train"], "input_id": ["i1"], "prompt": ["p"]})
    warehouse.replace_rows("inputs", {"task": "t"}, frame)
    snapshot = snapshot_path(warehouse.path)
    with duckdb.connect(str(snapshot), read_only=True) as con:
        assert con.execute("SELECT input_id FROM inputs").fetchall() == [("i1",)]
    warehouse.replace_rows("inputs", {"task": "t"}, frame.with_columns(pl.lit("i2").alias("input_id")))
    with duckdb.connect(str(snapshot), read_only=True) as con:
        assert con.execute("SELECT input_id FROM inputs").fetchall() == [("i2",)]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_missing_or_stale_snapshot_is_published_when_read(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:  # a warehouse written before snapshots existed
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    snapshot = Warehouse(path).read_snapshot()
    with duckdb.connect(str(snapshot), read_only=True) as con:
        assert con.execute("SELECT x FROM t").fetchall() == [(1,)]
    time.sleep(0.01)
    with duckdb.connect(str(path)) as con:  # written behind s2d's back
        con.execute("INSERT INTO t VALUES (2)")
    with duckdb.connect(str(Warehouse(path).read_snapshot()), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM t").fetchall() == [(2,)]


HOLD_SNAPSHOT = """
import os, sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print(con.execute("SELECT count(*) FROM inputs").fetchone()[0], flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(0.05)
print(con.execute("SELECT count(*) FROM inputs").fetchone()[0], flush=True)
"""


@pytest.mark.timeout(60)
def test_a_reader_holding_the_snapshot_never_blocks_a_writer(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "warehouse.duckdb", "e")

    def write(n: int) -> None:
        ids = [f"i{k}" for k in range(n)]
        frame = pl.DataFrame({"task": "t", "split": "train", "input_id": ids, "prompt": ids})
        warehouse.replace_rows("inputs", {"task": "t"}, frame)

    write(1)
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", HOLD_SNAPSHOT, str(snapshot_path(warehouse.path)), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None and reader.stdout.readline().strip() == "1"  # the reader has it open
    for n in range(2, 12):
        write(n)
    assert reader.poll() is None, "the writes should finish while the reader still holds the snapshot"
    assert warehouse.count("inputs") == 11
    stop.touch()
    # The reader keeps the copy it opened; a new reader sees the latest write.
    assert reader.stdout.readline().strip() == "1" and reader.wait(10) == 0
    with duckdb.connect(str(snapshot_path(warehouse.path)), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM inputs").fetchone() == (11,)
