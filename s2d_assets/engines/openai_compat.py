"""An engine for any OpenAI-compatible chat-completions server (vLLM serve, llama.cpp, Ollama, ...).

- At most ``concurrency`` HTTP requests are in flight.
- 429, 5xx, timeouts and connection errors are retried with exponential backoff (honouring a
  numeric ``Retry-After``); any other error stops the stage with the server's message.
- Token counts come from each response's ``usage``.
- The N samples of one prompt are asked for in one request with ``n`` when the server honours
  it; a server that ignores or refuses ``n`` gets one request per sample, each with its own seed
  (``use_n: auto`` detects this on the first multi-sample request and remembers it).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests

from s2d_assets.engine_spec import OpenAICompatEngineSpec
from s2d_assets.engines.base import Completion, GenerationRequest

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class ServerError(RuntimeError):
    """The server refused a request, or kept failing after every retry."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ServerStats:
    http_requests: int = 0
    retries: int = 0
    n_requests: int = 0  # requests that asked for several samples at once


@dataclass(frozen=True)
class _Choice:
    text: str
    prompt_tokens: int
    completion_tokens: int


class OpenAICompatEngine:
    def __init__(self, spec: OpenAICompatEngineSpec, fingerprint: str) -> None:
        self.spec = spec
        self._fingerprint = fingerprint
        self.url = spec.base_url.rstrip("/") + "/chat/completions"
        self.headers = {"Content-Type": "application/json"}
        if spec.api_key_env:
            key = os.environ.get(spec.api_key_env)
            if not key:
                raise ServerError(f"engine.api_key_env: environment variable {spec.api_key_env} is not set")
            self.headers["Authorization"] = f"Bearer {key}"
        self.stats = ServerStats()
        self._server_honours_n: bool | None = {"always": True, "never": False}.get(spec.use_n)
        self._lock = threading.Lock()
        self._probe = threading.Lock()
        self._local = threading.local()

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def generate(self, requests_: Sequence[GenerationRequest]) -> list[Completion]:
        if not requests_:
            return []
        started = time.perf_counter()
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, request in enumerate(requests_):
            groups.setdefault((request.messages, request.params), []).append(index)
        results: list[_Choice | None] = [None] * len(requests_)

        def run(indices: list[int]) -> None:
            for index, choice in zip(indices, self._samples([requests_[i] for i in indices]), strict=True):
                results[index] = choice

        with ThreadPoolExecutor(max_workers=self.spec.concurrency) as pool:
            for future in [pool.submit(run, indices) for indices in groups.values()]:
                future.result()
        seconds = (time.perf_counter() - started) / len(requests_)
        completions = []
        for choice in results:
            assert choice is not None  # every group either filled its rows or raised
            completions.append(Completion(choice.text, choice.prompt_tokens, choice.completion_tokens, seconds))
        return completions

    # -- one prompt's samples ------------------------------------------------------------------
    def _samples(self, group: list[GenerationRequest]) -> list[_Choice]:
        if len(group) > 1 and self._server_honours_n is None:
            with self._probe:  # one group finds out whether the server honours n; the others wait for the answer
                if self._server_honours_n is None:
                    choices = self._ask_n(group)
                    if choices is not None:
                        return choices
        if len(group) > 1 and self._server_honours_n:
            choices = self._ask_n(group)
            if choices is not None:
                return choices
        choices = []
        for request in group:
            got = self._post(self._body(request, n=1))
            choices.append(got[0])
        return choices

    def _ask_n(self, group: list[GenerationRequest]) -> list[_Choice] | None:
        """All samples in one request; None when the server does not honour ``n`` (then per-sample requests)."""
        try:
            choices = self._post(self._body(group[0], n=len(group)))
        except ServerError as error:
            if self.spec.use_n == "auto" and error.status in (400, 422):  # the server refuses n > 1
                self._server_honours_n = False
                return None
            raise
        if len(choices) == len(group):
            with self._lock:
                self.stats.n_requests += 1
                self._server_honours_n = True
            return choices
        if self.spec.use_n == "always":
            raise ServerError(f"{self.url}: asked for n={len(group)} choices, got {len(choices)}")
        self._server_honours_n = False
        if len(choices) == 1:  # the first sample is usable as is; ask for the rest one by one
            rest = [self._post(self._body(request, n=1))[0] for request in group[1:]]
            return [choices[0], *rest]
        return None

    def _body(self, request: GenerationRequest, n: int) -> dict[str, Any]:
        params = request.params
        return {
            "model": self.spec.model,
            "messages": [{"role": role, "content": content} for role, content in request.messages],
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
            "seed": request.seed % (2**31),  # servers take 32-bit seeds
            "n": n,
        }

    # -- HTTP with retries -----------------------------------------------------------------------
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _post(self, body: dict[str, Any]) -> list[_Choice]:
        attempt = 0
        while True:
            delay: float | None = None
            try:
                with self._lock:
                    self.stats.http_requests += 1
                response = self._session().post(
                    self.url, json=body, headers=self.headers, timeout=self.spec.timeout_seconds
                )
            except (requests.Timeout, requests.ConnectionError) as error:
                failure = f"{type(error).__name__}: {error}"
                status = None
            else:
                if response.status_code == 200:
                    return _parse_choices(response.json(), self.url)
                failure = f"HTTP {response.status_code}: {response.text[:500]}"
                status = response.status_code
                if status not in RETRYABLE_STATUS:
                    raise ServerError(f"{self.url}: {failure}", status)
                delay = _retry_after(response.headers.get("Retry-After"))
            if attempt >= self.spec.max_retries:
                raise ServerError(f"{self.url}: gave up after {attempt + 1} attempts; last: {failure}", status)
            with self._lock:
                self.stats.retries += 1
            time.sleep(delay if delay is not None else self.spec.backoff_seconds * (2**attempt))
            attempt += 1


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _parse_choices(payload: dict[str, Any], url: str) -> list[_Choice]:
    try:
        choices = sorted(payload["choices"], key=lambda c: int(c.get("index", 0)))
        texts = [str(c["message"].get("content") or "") for c in choices]
    except (KeyError, TypeError, AttributeError) as error:
        raise ServerError(f"{url}: response without choices[].message.content ({error!r})") from None
    usage = payload.get("usage") or {}
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    completion_tokens = _split(int(usage.get("completion_tokens") or 0), texts)
    return [_Choice(t.strip(), prompt_tokens, c) for t, c in zip(texts, completion_tokens, strict=True)]


def _split(total: int, texts: list[str]) -> list[int]:
    """Split a response's completion tokens over its choices, in proportion to their lengths."""
    if len(texts) == 1:
        return [total]
    weights = [max(len(t), 1) for t in texts]
    shares = [total * w // sum(weights) for w in weights]
    for i in range(total - sum(shares)):
        shares[i % len(shares)] += 1
    return shares
