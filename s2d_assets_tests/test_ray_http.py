"""engine.kind openai_compat with executor: ray runs ray.data.llm's HTTP processor against the server.

Needs ray.data.llm, which imports aiohttp (in the ray extra and its lock): skipped without the ray extra.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from s2d_assets.config.engine import OpenAICompatEngineSpec
from s2d_assets.engines.base import GenerationRequest, SamplingParams, derive_seed
from s2d_assets.engines.ray_executor import RayExecutor
from s2d_assets_tests.openai_fake_server import FakeServer, completion, fake_servers
from s2d_assets_tests.ray_support import NO_RAY, ray_cluster  # noqa: F401  (the session's cluster)

pytest.importorskip("ray", reason=NO_RAY)
try:
    import ray.data.llm  # noqa: F401
except ImportError:
    pytest.skip("ray.data.llm is not importable (it needs aiohttp, in the ray extra)", allow_module_level=True)

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


@pytest.fixture
def serve() -> Iterator[Callable[..., FakeServer]]:
    with fake_servers() as start:
        yield start


@pytest.mark.usefixtures("ray_cluster")
def test_http_processor_answers_each_sample_and_reports_malformed_rows(
    serve: Callable[..., FakeServer], tmp_path: Path
) -> None:
    def script(call: int, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if "broken" in body["messages"][-1]["content"]:
            return 200, {"choices": []}, {}  # well-formed JSON, no answer: a failed row
        return completion(body)

    fake = serve(script)
    spec = OpenAICompatEngineSpec(
        kind="openai_compat", base_url=fake.url, model="m", executor="ray", ray={"replicas": 1}
    )
    params = SamplingParams(0.7, 0.95, 16)
    requests = [
        GenerationRequest.user(q, params, sample_idx=s, seed=derive_seed(0, s, q))
        for q in ("Is the coin heads up?", "a broken question")
        for s in range(2)
    ]
    keyed = [(r.cache_key("p"), r) for r in requests]
    result = RayExecutor(spec, "m", None, str(tmp_path / "ray")).generate("p", "coin_flip/rar_1step", keyed)
    result.finish()
    good = {key: r for key, r in keyed if "broken" not in r.messages[-1][1]}
    broken = {key for key, _ in keyed} - set(good)
    assert set(result.completions) == set(good) and set(result.failures) == broken
    for key, request in good.items():
        assert result.completions[key].text == f"answer seed={request.seed % 2**31} choice=0"
        assert result.completions[key].prompt_tokens == 11
    assert all("malformed response: no choices" in error for error in result.failures.values())
    assert sorted(body["seed"] for body in fake.bodies) == sorted(r.seed % 2**31 for r in requests)
    assert {body["n"] for body in fake.bodies} == {1}
