"""The OpenAI-compatible engine against a scripted local HTTP server: retries, usage, n, concurrency."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from s2d_assets.config.engine import OpenAICompatEngineSpec
from s2d_assets.engines.base import GenerationRequest, SamplingParams
from s2d_assets.engines.openai_compat import OpenAICompatEngine, ServerError
from s2d_assets_tests.openai_fake_server import FakeServer, Reply, completion, fake_servers

pytestmark = pytest.mark.timeout(60)

PARAMS = SamplingParams(temperature=0.7, top_p=0.95, max_new_tokens=16)


@pytest.fixture
def serve() -> Iterator[Callable[..., FakeServer]]:
    with fake_servers() as start:
        yield start


def engine_for(fake: FakeServer, **overrides: Any) -> OpenAICompatEngine:
    spec = {"kind": "openai_compat", "base_url": fake.url, "model": "smollm2", "backoff_seconds": 0.01, **overrides}
    return OpenAICompatEngine(OpenAICompatEngineSpec(**spec), "server-model")


def samples(question: str, n: int, seed0: int = 100) -> list[GenerationRequest]:
    return [GenerationRequest.user(question, PARAMS, sample_idx=i, seed=seed0 + i) for i in range(n)]


def test_retries_429_and_5xx_then_reads_usage(serve: Callable[..., FakeServer]) -> None:
    def script(call: int, body: dict[str, Any]) -> Reply:
        if call == 0:
            return 429, {"error": "slow down"}, {"Retry-After": "0"}
        if call == 1:
            return 503, {"error": "loading"}, {}
        return completion(body, prompt_tokens=23)

    fake = serve(script)
    engine = engine_for(fake)
    (result,) = engine.generate([GenerationRequest.user("Is the coin heads up?", PARAMS, seed=7)])
    assert engine.stats.retries == 2
    assert engine.stats.http_requests == 3
    assert result.text.startswith("answer seed=7")
    assert (result.prompt_tokens, result.completion_tokens) == (23, 5)
    body = fake.bodies[-1]
    assert body["messages"] == [{"role": "user", "content": "Is the coin heads up?"}]
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"], body["model"]) == (
        0.7,
        0.95,
        16,
        7,
        "smollm2",
    )


def test_timeouts_are_retried(serve: Callable[..., FakeServer]) -> None:
    def script(call: int, body: dict[str, Any]) -> Reply:
        if call == 0:
            time.sleep(1.5)  # longer than the client's timeout
        return completion(body)

    engine = engine_for(serve(script), timeout_seconds=0.5)
    (result,) = engine.generate([GenerationRequest.user("q", PARAMS, seed=1)])
    assert engine.stats.retries == 1
    assert result.completion_tokens == 5


def test_gives_up_after_max_retries_naming_the_server(serve: Callable[..., FakeServer]) -> None:
    fake = serve(lambda call, body: (500, {"error": "boom"}, {}))
    engine = engine_for(fake, max_retries=2)
    with pytest.raises(ServerError, match=r"gave up after 3 attempts; last: HTTP 500"):
        engine.generate([GenerationRequest.user("q", PARAMS)])
    assert len(fake.bodies) == 3


def test_client_errors_are_not_retried(serve: Callable[..., FakeServer]) -> None:
    fake = serve(lambda call, body: (401, {"error": "bad key"}, {}))
    with pytest.raises(ServerError, match="HTTP 401"):
        engine_for(fake).generate([GenerationRequest.user("q", PARAMS)])
    assert len(fake.bodies) == 1


def test_n_in_one_request_when_the_server_honours_it(serve: Callable[..., FakeServer]) -> None:
    fake = serve(lambda call, body: completion(body))
    engine = engine_for(fake)
    results = engine.generate(samples("q", 4))
    assert len(fake.bodies) == 1 and fake.bodies[0]["n"] == 4
    assert [r.text.split()[2] for r in results] == ["choice=0", "choice=1", "choice=2", "choice=3"]
    assert sum(r.completion_tokens for r in results) == 20  # usage.completion_tokens is split over choices
    assert all(r.prompt_tokens == 11 for r in results)


def test_server_that_ignores_n_gets_one_request_per_sample(serve: Callable[..., FakeServer]) -> None:
    fake = serve(lambda call, body: completion(body, choices=1))  # like llama.cpp: one choice whatever n says
    engine = engine_for(fake)
    results = engine.generate(samples("q", 3, seed0=40) + samples("other", 3, seed0=50))
    assert len({r.text for r in results}) == 6
    assert [r.text.split()[1] for r in results[:3]] == ["seed=40", "seed=41", "seed=42"]
    # After the first multi-sample request the engine knows: later ones ask for n=1 only.
    assert sum(1 for b in fake.bodies if b["n"] > 1) == 1
    assert len(fake.bodies) == 6


def test_server_that_refuses_n_falls_back(serve: Callable[..., FakeServer]) -> None:
    def script(call: int, body: dict[str, Any]) -> Reply:
        if body["n"] > 1:
            return 400, {"error": "n > 1 is not supported"}, {}
        return completion(body)

    results = engine_for(serve(script)).generate(samples("q", 3))
    assert [r.text.split()[1] for r in results] == ["seed=100", "seed=101", "seed=102"]


def test_use_n_never_and_bounded_concurrency(serve: Callable[..., FakeServer]) -> None:
    fake = serve(lambda call, body: completion(body), delay=0.05)
    engine = engine_for(fake, use_n="never", concurrency=3)
    requests = [r for q in range(8) for r in samples(f"question {q}", 2)]
    results = engine.generate(requests)
    assert len(results) == 16 and all(b["n"] == 1 for b in fake.bodies)
    assert fake.peak <= 3
    assert fake.peak >= 2  # requests really overlap


def test_missing_api_key_is_named() -> None:
    spec = OpenAICompatEngineSpec(kind="openai_compat", base_url="http://x/v1", model="m", api_key_env="S2D_NO_KEY")
    with pytest.raises(ServerError, match="S2D_NO_KEY"):
        OpenAICompatEngine(spec, "f")
