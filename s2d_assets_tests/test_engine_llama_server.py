"""The OpenAI-compatible engine against a real llama.cpp server serving the packaged SmolLM2 GGUF (slow)."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from s2d_assets.base_models import embedded_gguf_path
from s2d_assets.engine_spec import OpenAICompatEngineSpec
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Starts the server and returns at once: the first engine call must retry until it is up."""
    port = free_port()
    log = Path(tmp_path_factory.mktemp("llama")) / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_gguf_path())]
    command += ["--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}/v1", process
    finally:
        process.terminate()
        process.wait(timeout=30)


def engine(url: str, **overrides: object) -> OpenAICompatEngine:
    spec = {"kind": "openai_compat", "base_url": url, "model": "smollm2", "concurrency": 2, **overrides}
    return OpenAICompatEngine(OpenAICompatEngineSpec(**spec), "llama.cpp:smollm2")


def test_retries_until_the_server_is_up_and_reads_usage(server: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, process = server
    client = engine(url, max_retries=60, backoff_seconds=0.25)
    params = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=24)
    (result,) = client.generate([GenerationRequest.user(QUESTION, params)])
    assert process.poll() is None
    assert client.stats.retries >= 1  # connection refused while the server was loading
    assert result.text
    assert result.prompt_tokens > 15  # the chat template's turns are counted by the server
    assert 1 <= result.completion_tokens <= 24


def test_samples_follow_their_seeds(server: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, _ = server
    client = engine(url, max_retries=60, backoff_seconds=0.25)
    params = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=16)
    requests = [GenerationRequest.user(QUESTION, params, sample_idx=i, seed=500 + i) for i in range(4)]
    first = client.generate(requests)
    # llama.cpp answers one choice whatever n says: the engine falls back to one request per sample.
    assert client.stats.n_requests == 0
    assert len({c.text for c in first}) > 1
    again = client.generate([requests[2], requests[0]])
    assert [c.text for c in again] == [first[2].text, first[0].text]
    assert all(1 <= c.completion_tokens <= 16 for c in first + again)
