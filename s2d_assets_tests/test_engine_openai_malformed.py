"""The OpenAI-compatible engine against a misbehaving server: every outcome is bounded in time, every
error is one line naming the server, and nothing malformed reaches the generation cache."""

from __future__ import annotations

import email.utils
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from s2d_assets.config.engine import OpenAICompatEngineSpec
from s2d_assets.core.warehouse import Warehouse
from s2d_assets.engines import CachedEngine, GenerationCache
from s2d_assets.engines.base import GenerationRequest, SamplingParams
from s2d_assets.engines.openai_compat import OpenAICompatEngine, ServerError
from s2d_assets.engines.openai_responses import retry_after as _retry_after
from s2d_assets_tests.openai_fake_server import FakeServer, Reply, completion, fake_servers

PARAMS = SamplingParams(temperature=0.7, top_p=0.95, max_new_tokens=16)
BOUND_S = 10.0  # generous: every case below takes well under a second when it behaves

HTML_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1>\n</body></html>"
MALFORMED: dict[str, tuple[Reply, str]] = {
    "empty choices": ((200, {"choices": [], "usage": {"prompt_tokens": 3}}, {}), "no choices"),
    "html body": ((200, HTML_PAGE, {"Content-Type": "text/html"}), r"body is not JSON \(content-type text/html\)"),
    "null content": (
        (200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": None}}]}, {}),
        "choice 0 has null content",
    ),
    "truncated json": ((200, b'{"choices": [{"index": 0, "mess', {}), "body is not JSON"),
    "error object": ((200, {"error": {"message": "model is loading"}}, {}), "error in body.*model is loading"),
}


@pytest.fixture
def serve() -> Iterator[Callable[..., FakeServer]]:
    with fake_servers() as start:
        yield start


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path / "w.duckdb")


def engine_for(fake: FakeServer | str, max_retry_wait_s: float | None = None, **overrides: Any) -> OpenAICompatEngine:
    url = fake if isinstance(fake, str) else fake.url
    spec = {"kind": "openai_compat", "base_url": url, "model": "smollm2", "backoff_seconds": 0.01, **overrides}
    return OpenAICompatEngine(OpenAICompatEngineSpec(**spec), "server-model", max_retry_wait_s=max_retry_wait_s)


def cached(warehouse: Warehouse, engine: OpenAICompatEngine, batch_size: int = 64) -> CachedEngine:
    return CachedEngine("server-model", lambda: engine, GenerationCache(warehouse), batch_size=batch_size)


def cached_outputs(warehouse: Warehouse) -> list[str]:
    with warehouse.connect() as con:
        return sorted(row[0] for row in con.execute("SELECT output FROM llm_cache").fetchall())


def question(text: str = "q", seed: int = 7) -> GenerationRequest:
    return GenerationRequest.user(text, PARAMS, seed=seed)


def failure(call: Callable[[], object]) -> tuple[ServerError, float]:
    """The ServerError ``call`` raises, and how long it took to raise it."""
    started = time.monotonic()
    with pytest.raises(ServerError) as caught:
        call()
    return caught.value, time.monotonic() - started


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_response_is_retried_then_an_error_and_never_cached(
    case: str, serve: Callable[..., FakeServer], warehouse: Warehouse
) -> None:
    reply, expected = MALFORMED[case]
    fake = serve(lambda call, body: reply)
    engine = engine_for(fake, max_retries=2)
    error, seconds = failure(lambda: cached(warehouse, engine).generate([question()]))
    message = str(error)
    assert seconds < BOUND_S
    assert len(fake.bodies) == 3 and engine.stats.malformed == 3  # bounded retries, then the error
    assert message.startswith(f"{fake.url}/chat/completions: gave up after 3 attempts; last: malformed response")
    assert "\n" not in message
    assert error.status == 200
    assert re.search(expected, message), message
    assert cached_outputs(warehouse) == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_response_once_is_retried_and_only_the_good_answer_is_cached(
    case: str, serve: Callable[..., FakeServer], warehouse: Warehouse
) -> None:
    reply, _ = MALFORMED[case]
    fake = serve(lambda call, body: reply if call == 0 else completion(body))
    engine = engine_for(fake)
    (result,) = cached(warehouse, engine).generate([question(seed=7)])
    assert result.text == "answer seed=7 choice=0"
    assert engine.stats.retries == 1 and engine.stats.malformed == 1
    assert cached_outputs(warehouse) == ["answer seed=7 choice=0"]


@pytest.mark.timeout(60)
def test_one_null_choice_among_n_retries_the_whole_request(
    serve: Callable[..., FakeServer], warehouse: Warehouse
) -> None:
    def script(call: int, body: dict[str, Any]) -> Reply:
        status, payload, headers = completion(body)
        if call == 0:
            assert isinstance(payload, dict)
            payload["choices"][1]["message"]["content"] = None
        return status, payload, headers

    fake = serve(script)
    engine = engine_for(fake)
    requests = [GenerationRequest.user("q", PARAMS, sample_idx=i, seed=100 + i) for i in range(3)]
    results = cached(warehouse, engine).generate(requests)
    assert [r.text.split()[2] for r in results] == ["choice=0", "choice=1", "choice=2"]
    assert [b["n"] for b in fake.bodies] == [3, 3]
    assert len(cached_outputs(warehouse)) == 3 and "" not in cached_outputs(warehouse)


@pytest.mark.timeout(60)
def test_a_failed_batch_leaves_earlier_batches_cached_and_nothing_of_its_own(
    serve: Callable[..., FakeServer], warehouse: Warehouse
) -> None:
    bad = "a longer question the server cannot answer"

    def script(call: int, body: dict[str, Any]) -> Reply:
        if body["messages"][0]["content"] == bad:
            return 200, {"choices": [{"index": 0, "message": {"content": None}, "finish_reason": "stop"}]}, {}
        return completion(body)

    fake = serve(script)
    engine = engine_for(fake, max_retries=1, use_n="never")
    requests = [question("q1", seed=1), question("q2", seed=2), question(bad, seed=3), question("q4 long", seed=4)]
    error, seconds = failure(lambda: cached(warehouse, engine, batch_size=2).generate(requests))
    assert seconds < BOUND_S
    assert "null content" in str(error)
    # The first batch (the two shortest prompts) was committed; the failing batch left nothing.
    assert cached_outputs(warehouse) == ["answer seed=1 choice=0", "answer seed=2 choice=0"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("retry_after", ["99999", "inf", "1e999", "http-date"])
def test_a_huge_retry_after_fails_at_once_with_a_clear_error(
    retry_after: str, serve: Callable[..., FakeServer], warehouse: Warehouse
) -> None:
    if retry_after == "http-date":
        retry_after = email.utils.formatdate(time.time() + 86_400, usegmt=True)
    fake = serve(lambda call, body: (429, {"error": {"message": "quota exceeded"}}, {"Retry-After": retry_after}))
    engine = engine_for(fake, max_retries=5)
    error, seconds = failure(lambda: cached(warehouse, engine).generate([question()]))
    message = str(error)
    assert seconds < BOUND_S
    assert len(fake.bodies) == 1  # no retry: the server said it will not answer in time
    assert message.startswith(f"{fake.url}/chat/completions: HTTP 429: ")
    assert "quota exceeded" in message and "(Retry-After), more than the 30 s limit" in message
    assert "\n" not in message and error.status == 429
    assert cached_outputs(warehouse) == []


@pytest.mark.timeout(60)
def test_a_retry_after_within_the_limit_is_honoured(serve: Callable[..., FakeServer], warehouse: Warehouse) -> None:
    fake = serve(lambda call, body: (429, {}, {"Retry-After": "0.3"}) if call == 0 else completion(body))
    engine = engine_for(fake, max_retry_wait_s=5)
    started = time.monotonic()
    (result,) = cached(warehouse, engine).generate([question(seed=3)])
    assert 0.25 <= time.monotonic() - started < BOUND_S
    assert result.text == "answer seed=3 choice=0" and engine.stats.retries == 1


@pytest.mark.timeout(60)
def test_a_500_that_succeeds_on_the_third_try(serve: Callable[..., FakeServer], warehouse: Warehouse) -> None:
    fake = serve(lambda call, body: (500, {"error": "boom"}, {}) if call < 2 else completion(body, prompt_tokens=9))
    engine = engine_for(fake, backoff_seconds=0.05)  # the spec's default of 5 retries
    started = time.monotonic()
    (result,) = cached(warehouse, engine).generate([question(seed=5)])
    assert time.monotonic() - started < BOUND_S
    assert (engine.stats.http_requests, engine.stats.retries) == (3, 2)
    assert (result.text, result.prompt_tokens, result.completion_tokens) == ("answer seed=5 choice=0", 9, 5)
    assert cached_outputs(warehouse) == ["answer seed=5 choice=0"]


@pytest.mark.timeout(60)
def test_backoff_never_waits_longer_than_the_limit(serve: Callable[..., FakeServer]) -> None:
    fake = serve(lambda call, body: (503, {}, {}) if call < 3 else completion(body))
    engine = engine_for(fake, backoff_seconds=1000.0, max_retry_wait_s=0.1)
    started = time.monotonic()
    (result,) = engine.generate([question(seed=1)])
    assert time.monotonic() - started < BOUND_S
    assert result.text == "answer seed=1 choice=0" and engine.stats.retries == 3


@pytest.mark.timeout(60)
def test_an_unreachable_server_is_a_bounded_one_line_error() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    engine = engine_for(url, max_retries=1)
    error, seconds = failure(lambda: engine.generate([question()]))
    assert seconds < BOUND_S
    assert str(error).startswith(f"{url}/chat/completions: gave up after 2 attempts; last: cannot connect (")
    assert "\n" not in str(error)


@pytest.mark.timeout(60)
def test_finish_reason_is_recorded_and_truncation_counted(
    serve: Callable[..., FakeServer], warehouse: Warehouse
) -> None:
    fake = serve(lambda call, body: completion(body, finish_reason="length" if body["seed"] == 1 else "stop"))
    engine = engine_for(fake, use_n="never")
    results = cached(warehouse, engine).generate([question("a", seed=1), question("b", seed=2)])
    assert [r.finish_reason for r in results] == ["length", "stop"]
    assert engine.stats.truncated == 1
    assert len(cached_outputs(warehouse)) == 2  # a truncated answer is still a well-formed completion


@pytest.mark.timeout(60)
def test_only_the_configured_key_is_sent(serve: Callable[..., FakeServer], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-this-server")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-not-for-this-server")
    monkeypatch.setenv("S2D_TEST_SERVER_KEY", "local-key")
    fake = serve(lambda call, body: completion(body))
    engine_for(fake).generate([question()])
    engine_for(fake, api_key_env="S2D_TEST_SERVER_KEY").generate([question()])
    anonymous, keyed = fake.headers
    assert "authorization" not in anonymous and "openai-organization" not in anonymous
    assert keyed["authorization"] == "Bearer local-key" and "openai-organization" not in keyed


@pytest.mark.timeout(60)
def test_retry_after_values() -> None:
    assert _retry_after({}) is None
    assert _retry_after({"retry-after": "5"}) == 5.0
    assert _retry_after({"retry-after": "-3"}) == 0.0
    assert _retry_after({"retry-after": "soon"}) is None
    assert _retry_after({"retry-after": "nan"}) is None
    assert _retry_after({"retry-after": "1e999"}) == float("inf")
    assert _retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    in_an_hour = _retry_after({"retry-after": email.utils.formatdate(time.time() + 3600, usegmt=True)})
    assert in_an_hour is not None and 3500 < in_an_hour <= 3600
    assert _retry_after({"retry-after": email.utils.formatdate(time.time() - 3600, usegmt=True)}) == 0.0
