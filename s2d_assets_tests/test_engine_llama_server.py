"""The OpenAI-compatible engine against a real llama.cpp server serving the packaged SmolLM2 GGUF (slow).

Every wait is bounded: the server gets START_DEADLINE_S to answer, polled with a capped backoff,
and a server process that dies at start-up fails the test at once with the end of its log.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest
import requests

from s2d_assets.config.engine import OpenAICompatEngineSpec
from s2d_assets.core.base_models import embedded_gguf_path
from s2d_assets.engines.base import GenerationRequest, SamplingParams
from s2d_assets.engines.openai_compat import OpenAICompatEngine

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="needs llama.cpp's server: pip install 'llama-cpp-python[server]' (builds from source, minutes)",
    ),
]

QUESTION = 'Take the last letters of the words in "Elon Musk" and concatenate them.'
START_DEADLINE_S = 180.0  # loading the 93 MB GGUF takes seconds on an idle machine; allow for a busy one
POLL_FIRST_S, POLL_MAX_S = 0.1, 2.0  # readiness polling: doubling, capped
T = TypeVar("T")


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def fail(self, reason: str) -> NoReturn:
        tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no log)"
        pytest.fail(f"llama.cpp server {reason}; end of its log:\n{tail}", pytrace=False)

    def fail_if_dead(self) -> None:
        if self.process.poll() is not None:
            self.fail(f"exited with code {self.process.returncode}")

    def wait_until_up(self, seconds: float = START_DEADLINE_S) -> None:
        """Polls /models with a capped backoff until it answers, the process dies, or the time is up."""
        deadline, delay = time.monotonic() + seconds, POLL_FIRST_S
        while True:
            self.fail_if_dead()
            try:
                if requests.get(f"{self.url}/models", timeout=5).ok:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() + delay > deadline:
                self.fail(f"not up within {seconds:.0f} s")
            time.sleep(delay)
            delay = min(delay * 2, POLL_MAX_S)

    def call(self, fn: Callable[[], T], seconds: float = START_DEADLINE_S) -> T:
        """Runs fn in a thread while watching the server: fails at once if it dies, or when the time is up."""
        deadline = time.monotonic() + seconds
        outcome: dict[str, object] = {}

        def target() -> None:
            try:
                outcome["value"] = fn()
            except BaseException as error:  # re-raised in the test's thread
                outcome["error"] = error

        worker = threading.Thread(target=target, daemon=True)  # its retries are bounded, so it ends by itself
        worker.start()
        while worker.is_alive():
            worker.join(timeout=0.5)
            if worker.is_alive():
                self.fail_if_dead()
                if time.monotonic() > deadline:
                    self.fail(f"gave no answer within {seconds:.0f} s")
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        return outcome["value"]  # type: ignore[return-value]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Starts the server and returns at once: the first engine call must retry until it is up."""
    port = free_port()
    log = Path(tmp_path_factory.mktemp("llama")) / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_gguf_path())]
    command += ["--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield Server(f"http://127.0.0.1:{port}/v1", process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture
def ready(server: Server) -> Server:
    server.wait_until_up()
    return server


def engine(url: str, **overrides: object) -> OpenAICompatEngine:
    # Retries bounded in count (the engine also caps each wait); the test's own deadline comes first.
    spec = {"kind": "openai_compat", "base_url": url, "model": "smollm2", "concurrency": 2, "timeout_seconds": 60}
    return OpenAICompatEngine(OpenAICompatEngineSpec(**{**spec, **overrides}), "llama.cpp:smollm2")


def test_retries_until_the_server_is_up_and_reads_usage(server: Server) -> None:
    client = engine(server.url, max_retries=12, backoff_seconds=0.25)
    params = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=24)
    (result,) = server.call(lambda: client.generate([GenerationRequest.user(QUESTION, params)]))
    assert server.process.poll() is None
    assert client.stats.retries >= 1  # connection refused while the server was loading
    assert result.text
    assert result.prompt_tokens > 15  # the chat template's turns are counted by the server
    assert 1 <= result.completion_tokens <= 24


def test_samples_follow_their_seeds(ready: Server) -> None:
    client = engine(ready.url, max_retries=3, backoff_seconds=0.25)
    params = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=16)
    requests_ = [GenerationRequest.user(QUESTION, params, sample_idx=i, seed=500 + i) for i in range(4)]
    first = client.generate(requests_)
    # llama.cpp answers one choice whatever n says: the engine falls back to one request per sample.
    assert client.stats.n_requests == 0
    assert len({c.text for c in first}) > 1
    again = client.generate([requests_[2], requests_[0]])
    assert [c.text for c in again] == [first[2].text, first[0].text]
    assert all(1 <= c.completion_tokens <= 16 for c in first + again)


def test_a_constrained_answer_is_one_of_the_answer_set(ready: Server) -> None:
    # llama.cpp's server reads the answer set as a GBNF grammar (engine.constrained_answers: llama_cpp_grammar).
    from s2d_assets.core.answer_set import AnswerSet

    client = engine(ready.url, max_retries=3, backoff_seconds=0.25, constrained_answers="llama_cpp_grammar")
    params = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=12)
    sets = [AnswerSet.of("yes", "no"), AnswerSet(regex="[a-z]{2}"), AnswerSet(regex=r"-?[0-9]{1,4}")]
    requests_ = [
        GenerationRequest.user(QUESTION, params, sample_idx=i, seed=900 + i, answer_set=answer_set)
        for answer_set in sets
        for i in range(3)
    ]
    results = client.generate(requests_)
    assert all(
        r.answer_set is not None and r.answer_set.matches(c.text) for r, c in zip(requests_, results, strict=True)
    )
