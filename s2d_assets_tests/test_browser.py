"""The Dagster UI in a real browser: the stage assets are there and a materialisation succeeds.

Starts ``dagster dev`` on localhost over a tiny-model experiment, opens the asset catalogue in
headless Debian Chromium (driven by Playwright), launches the ``materialize_all`` job through
the webserver's GraphQL API and waits for the run to succeed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from s2d_assets.core.paths import PROJECT_ROOT
from s2d_assets.defs.instance import DAGSTER_YAML
from s2d_assets_tests.conftest import tiny_experiment_data, write_experiment

pytestmark = pytest.mark.slow

LOCATION = "s2d_assets.defs.definitions"  # the code location named in workspace.yaml
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def webserver(tiny_model_dir: Path, tmp_path: Path) -> Iterator[str]:
    data = tiny_experiment_data(tiny_model_dir)
    data["checks"] = {"min_pool_size": 0}
    experiment = write_experiment(tmp_path / "ui.yaml", data)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    port = free_port()
    env = {
        **os.environ,
        "S2D_EXPERIMENT": str(experiment),
        "S2D_STATE": str(tmp_path / "state"),
        "DAGSTER_HOME": str(home),
        "S2D_AUTOMATION": "stopped",  # the test launches its own run; the automation sensor would race it
    }
    dagster = str(Path(sys.executable).with_name("dagster"))
    log = (tmp_path / "dagster-dev.log").open("w")
    process = subprocess.Popen(
        [dagster, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None, (tmp_path / "dagster-dev.log").read_text()[-3000:]
            time.sleep(1)
        else:
            pytest.fail("dagster dev did not start: " + (tmp_path / "dagster-dev.log").read_text()[-3000:])
        yield url
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=60)
        log.close()


def graphql(url: str, query: str, variables: dict | None = None) -> dict:  # type: ignore[type-arg]
    response = requests.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
STATUS = "query Status($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (apt-get install chromium)")
def test_asset_graph_in_the_browser_and_a_materialisation_through_the_api(webserver: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(f"{webserver}/assets", wait_until="networkidle", timeout=120_000)
        skip = page.get_by_role("button", name="Skip")  # the first-visit newsletter prompt
        if skip.count():
            skip.first.click()
        page.get_by_text("coin_flip", exact=False).first.wait_for(timeout=60_000)
        page.screenshot(path=str(tmp_path / "catalog.png"))
        body = page.inner_text("body")
        assert "coin_flip / rar_1step / curated_pool" in body and "base_model" in body  # the list is virtualised
        for group in ("coin_flip", "last_letter"):  # the lineage graph of each task's group
            page.goto(f"{webserver}/locations/{LOCATION}/asset-groups/{group}/lineage", wait_until="networkidle")
            page.get_by_text("curated_pool").first.wait_for(timeout=60_000)
            assert "s2_generations" in page.inner_text("body")
            page.screenshot(path=str(tmp_path / f"asset-graph-{group}.png"))

        repository = graphql(
            webserver, "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"
        )["repositoriesOrError"]["nodes"][0]
        params = {
            "selector": {
                "repositoryLocationName": repository["location"]["name"],
                "repositoryName": repository["name"],
                "jobName": "materialize_all",
            },
            "mode": "default",
        }
        launched = graphql(webserver, LAUNCH, {"params": params})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        status = ""
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            status = graphql(webserver, STATUS, {"id": run_id})["runOrError"]["status"]
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                break
            time.sleep(3)
        assert status == "SUCCESS"

        page.goto(f"{webserver}/runs/{run_id}", wait_until="networkidle", timeout=120_000)
        page.get_by_text("Success", exact=False).first.wait_for(timeout=60_000)
        page.screenshot(path=str(tmp_path / "run.png"))
        browser.close()
