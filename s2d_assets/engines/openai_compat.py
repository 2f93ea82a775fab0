"""An engine for any OpenAI-compatible chat-completions server (vLLM serve, llama.cpp, Ollama, ...).

Built on the official ``openai`` client, which sends the requests; retries are driven here so
that every wait and every count is the one the experiment configured:

- At most ``concurrency`` HTTP requests are in flight.
- Each attempt is bounded: ``connect_timeout_s`` to connect and ``timeout_seconds`` between
  bytes of the response.
- 429, 5xx, timeouts, connection errors and malformed responses are retried, at most
  ``max_retries`` times, with exponential backoff from ``backoff_seconds``. No wait is longer
  than ``max_retry_wait_s``: a numeric or date ``Retry-After`` within that limit is honoured, and
  a longer one stops the stage at once with an error that says so, instead of sleeping for hours.
  One request therefore takes at most ``(max_retries + 1)`` attempts and ``max_retries`` waits.
- Any other HTTP error stops the stage with the server's message.
- A response is used only when it is well formed: JSON, with one ``choices[].message.content``
  string per sample. Empty ``choices``, a non-JSON body (an HTML error page with status 200) or a
  ``null`` content is retried like a server error and is never returned, so it never reaches
  the generation cache. Every error is one line naming the server URL and what was wrong.
- Token counts come from each response's ``usage``; each completion records its
  ``finish_reason`` (``"length"``: the answer was cut at ``max_new_tokens``; it is still a
  well-formed completion and is cached like any other, and ``stats.truncated`` counts it).
- The N samples of one prompt are asked for in one request with ``n`` when the server honours
  it; a server that ignores or refuses ``n`` gets one request per sample, each with its own seed
  (``use_n: auto`` detects this on the first multi-sample request and remembers it).
- A constrained answer (a request with an answer set) is sent in the server's own parameter, named by
  ``engine.constrained_answers``: llama.cpp's ``grammar`` (GBNF) or vLLM's ``structured_outputs``
  (``choice`` / ``regex``). Without it the experiment is refused when it loads.
- Only the configured key is sent: the ``Authorization`` header comes from ``api_key_env`` (or
  is left out), never from ``OPENAI_API_KEY``; the ``OPENAI_ORG_ID`` / ``OPENAI_PROJECT_ID``
  headers the client would add from the environment are left out too.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai

from s2d_assets.core.answer_set import AnswerSet
from s2d_assets.core.errors import UserError
from s2d_assets.engines.base import Completion, GenerationRequest
from s2d_assets.engines.openai_responses import (
    MalformedResponse,
    ParsedChoice,
    cause,
    parse_choices,
    retry_after,
    snippet,
)

if TYPE_CHECKING:
    from s2d_assets.config.engine import OpenAICompatEngineSpec

# Fields outside the OpenAI schema, sent through the client's extra_body: continuation switches (vLLM serve) and
# constrained answers (llama.cpp's grammar, vLLM serve's structured_outputs).
EXTRA_BODY_FIELDS = frozenset({"continue_final_message", "add_generation_prompt", "grammar", "structured_outputs"})
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
CONNECT_TIMEOUT_S = 10.0  # connecting to a server that is up takes milliseconds
MAX_RETRY_WAIT_S = 30.0  # the longest single wait between two attempts, Retry-After included


class ConstraintUnsupported(UserError):
    """A constrained answer was asked of a server whose constraint API the experiment does not name."""


class ServerError(RuntimeError):
    """The server refused a request, answered something unusable, or kept failing after every retry."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ServerStats:
    http_requests: int = 0
    retries: int = 0
    n_requests: int = 0  # requests that asked for several samples at once
    malformed: int = 0  # responses refused as malformed (each one retried or reported)
    truncated: int = 0  # completions cut at max_new_tokens (finish_reason "length")


@dataclass(frozen=True)
class _Failure:
    """One failed attempt: what to report, and whether and when to try again."""

    message: str
    status: int | None
    retryable: bool
    retry_after: float | None = None


class OpenAICompatEngine:
    def __init__(
        self,
        spec: OpenAICompatEngineSpec,
        fingerprint: str,
        *,
        connect_timeout_s: float | None = None,
        max_retry_wait_s: float | None = None,
    ) -> None:
        self.spec = spec
        self._fingerprint = fingerprint
        self.url = spec.base_url.rstrip("/") + "/chat/completions"
        # Explicit arguments win, then the experiment file (when its schema has the field), then the defaults.
        self.max_retry_wait_s = _setting(max_retry_wait_s, spec, "max_retry_wait_seconds", MAX_RETRY_WAIT_S)
        self.read_timeout_s = float(spec.timeout_seconds)
        self.connect_timeout_s = min(
            _setting(connect_timeout_s, spec, "connect_timeout_seconds", CONNECT_TIMEOUT_S), self.read_timeout_s
        )
        key = None
        if spec.api_key_env:
            key = os.environ.get(spec.api_key_env)
            if not key:
                raise ServerError(f"engine.api_key_env: environment variable {spec.api_key_env} is not set")
        # Per-request headers override whatever the client took from the environment.
        self._headers: dict[str, Any] = {
            "Authorization": f"Bearer {key}" if key else openai.omit,
            "OpenAI-Organization": openai.omit,
            "OpenAI-Project": openai.omit,
        }
        self._client = openai.OpenAI(
            api_key="unused",  # never sent: the Authorization header above replaces it
            base_url=spec.base_url,
            timeout=openai.Timeout(self.read_timeout_s, connect=self.connect_timeout_s),
            max_retries=0,  # retried here, with this engine's bounds
        )
        self.stats = ServerStats()
        self._server_honours_n: bool | None = {"always": True, "never": False}.get(spec.use_n)
        self._lock = threading.Lock()
        self._probe = threading.Lock()

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def close(self) -> None:
        self._client.close()

    def generate(self, requests_: Sequence[GenerationRequest]) -> list[Completion]:
        if not requests_:
            return []
        started = time.perf_counter()
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, request in enumerate(requests_):
            groups.setdefault((request.messages, request.params, request.answer_set), []).append(index)
        results: list[ParsedChoice | None] = [None] * len(requests_)

        def run(indices: list[int]) -> None:
            for index, choice in zip(indices, self._samples([requests_[i] for i in indices]), strict=True):
                results[index] = choice

        pool = ThreadPoolExecutor(max_workers=self.spec.concurrency)
        try:
            futures = [pool.submit(run, indices) for indices in groups.values()]
            wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:
                if future.done():
                    future.result()  # the first failure stops the batch: nothing of it is returned
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        seconds = (time.perf_counter() - started) / len(requests_)
        completions: list[Completion] = []
        for choice in results:
            assert choice is not None  # every group either filled its rows or raised
            completions.append(
                Completion(choice.text, choice.prompt_tokens, choice.completion_tokens, seconds, choice.finish_reason)
            )
        return completions

    # -- one prompt's samples ------------------------------------------------------------------
    def _samples(self, group: list[GenerationRequest]) -> list[ParsedChoice]:
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
        return [self._post(self._body(request, n=1))[0] for request in group]

    def _ask_n(self, group: list[GenerationRequest]) -> list[ParsedChoice] | None:
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
        return chat_body(self.spec, request, n)

    # -- HTTP with bounded retries ---------------------------------------------------------------
    def _post(self, body: dict[str, Any]) -> list[ParsedChoice]:
        attempt = 0
        while True:
            with self._lock:
                self.stats.http_requests += 1
            outcome = self._attempt(body)
            if not isinstance(outcome, _Failure):
                self._count_truncated(outcome)
                return outcome
            if not outcome.retryable:
                raise ServerError(f"{self.url}: {outcome.message}", outcome.status)
            if outcome.retry_after is not None and outcome.retry_after > self.max_retry_wait_s:
                raise ServerError(
                    f"{self.url}: {outcome.message}; the server asks to wait {outcome.retry_after:g} s "
                    f"(Retry-After), more than the {self.max_retry_wait_s:g} s limit: not retried",
                    outcome.status,
                )
            if attempt >= self.spec.max_retries:
                raise ServerError(
                    f"{self.url}: gave up after {attempt + 1} attempt{'s' if attempt else ''}; last: {outcome.message}",
                    outcome.status,
                )
            delay = outcome.retry_after
            if delay is None:
                delay = self.spec.backoff_seconds * 2 ** min(attempt, 60)
            with self._lock:
                self.stats.retries += 1
            time.sleep(min(delay, self.max_retry_wait_s))
            attempt += 1

    def _attempt(self, body: dict[str, Any]) -> list[ParsedChoice] | _Failure:
        try:
            standard = {key: value for key, value in body.items() if key not in EXTRA_BODY_FIELDS}
            extra = {key: value for key, value in body.items() if key in EXTRA_BODY_FIELDS} or None
            raw = self._client.chat.completions.with_raw_response.create(
                **standard, extra_body=extra, extra_headers=self._headers
            )
        except openai.APITimeoutError as error:
            return _Failure(
                f"no response in time ({cause(error)}; timeouts: connect {self.connect_timeout_s:g} s, "
                f"read {self.read_timeout_s:g} s)",
                None,
                retryable=True,
            )
        except openai.APIConnectionError as error:
            return _Failure(f"cannot connect ({cause(error)})", None, retryable=True)
        except openai.APIStatusError as error:
            status = error.status_code
            return _Failure(
                f"HTTP {status}: {snippet(error.response.text) or '(empty body)'}",
                status,
                retryable=status in RETRYABLE_STATUS,
                retry_after=retry_after(error.response.headers),
            )
        response = raw.http_response
        try:
            return parse_choices(response.content, response.headers.get("content-type"))
        except MalformedResponse as error:
            with self._lock:
                self.stats.malformed += 1
            return _Failure(f"malformed response (HTTP {response.status_code}): {error}", response.status_code, True)

    def _count_truncated(self, choices: list[ParsedChoice]) -> None:
        truncated = sum(1 for choice in choices if choice.finish_reason == "length")
        if truncated:
            with self._lock:
                self.stats.truncated += truncated


def _setting(explicit: float | None, spec: object, field: str, default: float) -> float:
    value = explicit if explicit is not None else getattr(spec, field, None)
    value = default if value is None else float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"engine.{field}: expected a finite number >= 0, got {value!r}")
    return value


def chat_body(spec: OpenAICompatEngineSpec, request: GenerationRequest, n: int) -> dict[str, Any]:
    """The chat-completions JSON body of one request (``n`` samples), as the server receives it.

    A continuation (the last message the assistant's) is sent as ``engine.assistant_prefix`` says:
    with vLLM serve's ``continue_final_message`` / ``add_generation_prompt`` switches, or as it is, for a
    server that continues a final assistant message itself (llama.cpp's server). An engine configured
    with ``none`` never gets one: the experiment is refused at load.
    """
    params = request.params
    body: dict[str, Any] = {
        "model": spec.model,
        "messages": [{"role": role, "content": content} for role, content in request.messages],
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_new_tokens,
        "seed": request.seed % (2**31),  # servers take 32-bit seeds
        "n": n,
    }
    if request.continuation:
        if spec.assistant_prefix == "none":
            raise ValueError(
                f"{spec.base_url}: engine.assistant_prefix is 'none': the server cannot continue an assistant turn"
            )
        if spec.assistant_prefix == "continue_final_message":
            body |= {"continue_final_message": True, "add_generation_prompt": False}
    if request.answer_set is not None:
        body |= constraint_fields(spec, request.answer_set)
    return body


def constraint_fields(spec: OpenAICompatEngineSpec, answer_set: AnswerSet) -> dict[str, Any]:
    """A constrained answer in the server's own parameter (``engine.constrained_answers``), sent in the body."""
    mode = spec.constrained_answers
    if mode == "llama_cpp_grammar":  # llama.cpp's server: a GBNF grammar
        return {"grammar": answer_set.ebnf()}
    if mode == "vllm_structured_outputs":  # vLLM serve: StructuredOutputsParams as JSON
        kind = {"choice": list(answer_set.choices)} if answer_set.choices else {"regex": answer_set.regex}
        return {"structured_outputs": kind}
    raise ConstraintUnsupported(
        f"engine 'openai_compat' ({spec.base_url}) cannot constrain answers: set engine.constrained_answers"
    )


def from_spec(spec: Any, model_dir: Path, fingerprint: str, adapter_dir: Path | None) -> OpenAICompatEngine:
    """The engine of ``engine.kind: openai_compat`` (its registry entry, ``config/engine.py``)."""
    if adapter_dir is not None:
        raise ValueError(
            f"engine.kind 'openai_compat' cannot load the LoRA checkpoint {adapter_dir}: serve it from the "
            "server (e.g. vLLM serve --lora-modules) and point engine.model at it, or use 'transformers'/'vllm'"
        )
    return OpenAICompatEngine(spec, fingerprint)
