"""The processors of a Ray generation job: request rows in, result rows out (``ray_staging.py``'s schema).

One per engine kind, chosen by ``process``:

- ``transformers``: ``map_batches`` with a class (``EngineReplica``), so each replica is one actor
  that loads the model once and runs the project's own engine (the in-process producer).
- ``vllm``: ``ray.data.llm``'s vLLM processor (``vLLMEngineProcessorConfig``) on GPUs, with tensor
  and pipeline parallelism inside each replica. Needs the ``gpu`` extra. Each row's chat is rendered
  here with the model's chat template (``render_chat``, as ``LLM.chat`` does), so a continuation leaves
  the final assistant message open, which the processor's own chat-template stage would close.
- ``openai_compat``: ``ray.data.llm``'s HTTP processor (``HttpRequestProcessorConfig``) against the
  server. Needs ``ray.data.llm``, which imports aiohttp.

``require`` refuses, before anything is staged, an engine kind whose needs are missing here.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import Any

from s2d_assets.config.engine import OWN_ENGINE, EngineSpec, OpenAICompatEngineSpec, VLLMEngineSpec
from s2d_assets.core.errors import UserError
from s2d_assets.engines.base import Completion, Engine, GenerationRequest
from s2d_assets.engines.ray_staging import SAMPLE_ID, request_from_json, result_columns, result_row

log = logging.getLogger(__name__)

EngineFactory = Callable[[Path, str, "Path | None"], Engine]


class RayUnavailable(UserError):
    """The Ray path cannot run here; the message says what is missing."""


# -- processor 1: the project's own engine in a map_batches actor (CPU here, any torch device) --------


class EngineReplica:
    """One engine replica: a Ray Data actor that loads the model once and answers batches of request rows.

    On an error with ``continue_on_error`` the batch is answered row by row, so only the rows that
    fail are reported as failed (with their error), never dropped.
    """

    def __init__(
        self,
        factory: EngineFactory,
        model_dir: str,
        fingerprint: str,
        adapter_dir: str | None,
        threads: int,
        continue_on_error: bool,
    ) -> None:
        import torch

        self.engine = factory(Path(model_dir), fingerprint, Path(adapter_dir) if adapter_dir else None)
        torch.set_num_threads(threads)  # after the engine, which takes every core by default
        self.continue_on_error = continue_on_error

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        keys = [str(key) for key in batch[SAMPLE_ID]]
        requests = [request_from_json(str(text)) for text in batch["request"]]
        try:
            completions = self.engine.generate(requests)
            rows = [result_row(key, completion) for key, completion in zip(keys, completions, strict=True)]
        except Exception as error:
            if not self.continue_on_error:
                raise
            log.warning("a batch of %d row(s) failed (%s); retrying its rows one by one", len(keys), error)
            rows = [self._one(key, request) for key, request in zip(keys, requests, strict=True)]
        return result_columns(rows)

    def _one(self, key: str, request: GenerationRequest) -> dict[str, Any]:
        try:
            return result_row(key, self.engine.generate([request])[0])
        except Exception as error:
            return result_row(key, error=f"{type(error).__name__}: {error}")


def default_engine_factory(spec: EngineSpec) -> EngineFactory:
    """The engine the experiment names, built inside the actor (a picklable callable)."""
    return partial(_build_engine, spec)


def _build_engine(spec: EngineSpec, model_dir: Path, fingerprint: str, adapter_dir: Path | None) -> Engine:
    from s2d_assets.engines import build_engine

    return build_engine(spec, model_dir, fingerprint, adapter_dir)


# -- processor 2: vLLM through ray.data.llm (GPUs) -----------------------------------------------------


def vllm_processor_kwargs(spec: VLLMEngineSpec, model: str, adapter_dir: Path | None = None) -> dict[str, Any]:
    """Keyword arguments of ``ray.data.llm.vLLMEngineProcessorConfig`` for this experiment (no GPU needed).

    The engine keywords are the in-process engine's (``vllm_engine.engine_args``) with the replica's
    tensor and pipeline parallel sizes; ``concurrency`` is the number of replicas.
    """
    from s2d_assets.engines.vllm_engine import engine_args

    ray = spec.ray
    tensor = ray.tensor_parallel_size or spec.tensor_parallel_size
    pipeline = ray.pipeline_parallel_size
    gpus = ray.gpus_per_replica or tensor * pipeline
    if gpus != tensor * pipeline:
        raise ValueError(
            f"engine.ray.gpus_per_replica is {gpus} but vLLM runs one worker per GPU: tensor_parallel_size "
            f"{tensor} x pipeline_parallel_size {pipeline} = {tensor * pipeline}"
        )
    engine_kwargs = {key: value for key, value in engine_args(spec, model).as_kwargs().items() if key != "model"}
    engine_kwargs |= {"tensor_parallel_size": tensor, "pipeline_parallel_size": pipeline}
    if adapter_dir is not None and spec.lora == "adapter":
        engine_kwargs["enable_lora"] = True
    return {
        "model_source": model,
        "engine_kwargs": engine_kwargs,
        "batch_size": ray.batch_size or spec.batch_size,
        "concurrency": ray.replicas,
        "accelerator_type": ray.accelerator_type,
        "should_continue_on_error": ray.continue_on_error,
        # One bundle per vLLM worker (tensor x pipeline), packed on one node when they fit.
        "placement_group_config": {"bundle_per_worker": {"GPU": 1, "CPU": 1}, "strategy": "PACK"},
        # The chat is rendered in ``vllm_row`` (the processor's own stage would close a final assistant message).
        "chat_template_stage": False,
    }


@cache
def _tokenizer(model: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model)


def render_chat(model: str, request: GenerationRequest) -> str:
    """The request's chat as ``LLM.chat`` renders it (the model's chat template through transformers): a new
    assistant turn, or for a continuation the final assistant message left open."""
    messages = [{"role": role, "content": content} for role, content in request.messages]
    return str(
        _tokenizer(model).apply_chat_template(
            messages,
            tokenize=False,
            add_generation_prompt=not request.continuation,
            continue_final_message=request.continuation,
        )
    )


def vllm_row(adapter: str | None, model: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A request row -> the vLLM processor's input: the rendered chat and this sample's sampling parameters."""
    from s2d_assets.engines.vllm_engine import SamplingArgs

    def preprocess(row: dict[str, Any]) -> dict[str, Any]:
        request = request_from_json(row["request"])
        params = request.params
        sampling = SamplingArgs(
            seed=None if params.greedy else request.seed,  # as the in-process engine: greedy does not draw
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_new_tokens,
        )
        out = {
            SAMPLE_ID: row[SAMPLE_ID],
            "prompt": render_chat(model, request),
            "sampling_params": sampling.as_kwargs(),
        }
        if adapter is not None:
            out["model"] = adapter  # a LoRA request; the path must be readable on every GPU node
        return out

    return preprocess


def from_vllm_row(row: dict[str, Any]) -> dict[str, Any]:
    error = row.get("__inference_error__") or None
    if error:
        return result_row(str(row[SAMPLE_ID]), error=str(error))
    seconds = row.get("time_taken_llm")
    return {
        SAMPLE_ID: str(row[SAMPLE_ID]),
        "output": str(row.get("generated_text") or "").strip(),
        "prompt_tokens": int(row.get("num_input_tokens") or 0),
        "completion_tokens": int(row.get("num_generated_tokens") or 0),
        "seconds": float(seconds) if isinstance(seconds, int | float) and seconds >= 0 else 0.0,
        # Not reported by ray.data.llm 2.60: "length" is inferred from the request's budget where the
        # completion spent it (engines.base.known_finish_reason, when cached); below it, unknown.
        "finish_reason": None,
        "error": None,
    }


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def require_vllm_and_gpu() -> None:
    """vLLM on Ray needs vLLM (the gpu extra) and a GPU in the cluster: refuse clearly otherwise."""
    if not installed("vllm"):
        raise RayUnavailable(
            "engine.kind 'vllm' with executor: ray needs vLLM (ray[llm] 2.60 pins vllm 0.29.0): "
            "pip install -e '.[gpu]' on the cluster's image; on CPU use engine.kind 'transformers'"
        )
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)
    if gpus < 1:
        raise RayUnavailable(
            "engine.kind 'vllm' with executor: ray needs GPUs and the Ray cluster has none "
            f"({ray.cluster_resources().get('CPU', 0):g} CPUs, 0 GPUs); on CPU use engine.kind 'transformers'"
        )


# -- processor 3: an OpenAI-compatible server through ray.data.llm's HTTP processor --------------------


def http_processor_kwargs(spec: OpenAICompatEngineSpec) -> dict[str, Any]:
    """Keyword arguments of ``ray.data.llm.HttpRequestProcessorConfig`` for this experiment."""
    import os

    headers = None
    if spec.api_key_env:
        key = os.environ.get(spec.api_key_env)
        if not key:
            raise RayUnavailable(f"engine.api_key_env: environment variable {spec.api_key_env} is not set")
        headers = {"Authorization": f"Bearer {key}"}
    return {
        "url": spec.base_url.rstrip("/") + "/chat/completions",
        "headers": headers,
        "batch_size": spec.ray.batch_size or spec.batch_size,
        "concurrency": spec.ray.replicas,
        "max_retries": spec.max_retries,
        "base_retry_wait_time_in_s": spec.backoff_seconds,
    }


def http_body(spec: OpenAICompatEngineSpec, request: GenerationRequest) -> dict[str, Any]:
    """The chat-completions body of one sample: the in-process engine's ``n = 1`` request (continuations too)."""
    from s2d_assets.engines.openai_compat import chat_body

    return chat_body(spec, request, n=1)


def http_row(spec: OpenAICompatEngineSpec) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def preprocess(row: dict[str, Any]) -> dict[str, Any]:
        return {SAMPLE_ID: row[SAMPLE_ID], "payload": http_body(spec, request_from_json(row["request"]))}

    return preprocess


def from_http_row(row: dict[str, Any]) -> dict[str, Any]:
    """A response -> a result row; a malformed one is a failed row (the in-process engine would retry it)."""
    from s2d_assets.engines.openai_responses import MalformedResponse, parse_choices

    key = str(row[SAMPLE_ID])
    try:
        choice = parse_choices(json.dumps(row.get("http_response")).encode(), "application/json")[0]
    except MalformedResponse as error:
        return result_row(key, error=f"malformed response: {error}")
    return result_row(
        key, Completion(choice.text, choice.prompt_tokens, choice.completion_tokens, 0.0, choice.finish_reason)
    )


# -- choosing the processor ------------------------------------------------------------------------------


def require(spec: EngineSpec) -> None:
    """What this engine kind's processor needs on Ray, refused with what to install."""
    PROCESSORS[spec.processor][1]()


def process(
    dataset: Any,
    spec: EngineSpec,
    model_dir: str,
    adapter_dir: Path | None,
    model_fingerprint: str,
    files: int,
    batch_size: int,
    engine_factory: EngineFactory | None = None,
) -> Any:
    """The request rows of ``dataset`` through this engine kind's processor, as result rows."""
    run = PROCESSORS[spec.processor][0]
    return run(dataset, spec, model_dir, adapter_dir, model_fingerprint, files, batch_size, engine_factory)


def _replicas(
    dataset: Any,
    spec: EngineSpec,
    model_dir: str,
    adapter_dir: Path | None,
    model_fingerprint: str,
    files: int,
    batch_size: int,
    engine_factory: EngineFactory | None,
) -> Any:
    import ray.data

    factory = engine_factory or default_engine_factory(spec)
    return dataset.map_batches(
        EngineReplica,
        fn_constructor_kwargs={
            "factory": factory,
            "model_dir": model_dir,
            "fingerprint": model_fingerprint,
            "adapter_dir": str(adapter_dir) if adapter_dir else None,
            "threads": max(1, int(spec.ray.cpus_per_replica)),
            "continue_on_error": spec.ray.continue_on_error,
        },
        batch_size=batch_size,
        # A fixed pool of replicas; none is started without a batch to answer.
        compute=ray.data.ActorPoolStrategy(size=max(1, min(spec.ray.replicas, files))),
        num_cpus=spec.ray.cpus_per_replica,
        batch_format="numpy",
    )


def _vllm(dataset: Any, spec: VLLMEngineSpec, model_dir: str, adapter_dir: Path | None, *_: Any) -> Any:
    llm = _ray_data_llm()
    model, adapter = model_dir, None
    if adapter_dir is not None:
        from s2d_assets.engines.vllm_engine import check_adapter, merged_model_dir

        if spec.lora == "merged":
            model = str(merged_model_dir(model, adapter_dir))
        else:
            check_adapter(adapter_dir, spec.max_lora_rank)
            adapter = str(adapter_dir.resolve())
    config = llm.vLLMEngineProcessorConfig(**vllm_processor_kwargs(spec, model, adapter_dir))
    processor = llm.build_processor(config, preprocess=vllm_row(adapter, model))
    return processor(dataset).map(from_vllm_row, num_cpus=0)


def _http(dataset: Any, spec: OpenAICompatEngineSpec, model_dir: str, adapter_dir: Path | None, *_: Any) -> Any:
    if adapter_dir is not None:
        raise ValueError(
            f"engine.kind 'openai_compat' cannot load the LoRA checkpoint {adapter_dir}: serve it from the "
            "server and point engine.model at it"
        )
    llm = _ray_data_llm()
    config = llm.HttpRequestProcessorConfig(**http_processor_kwargs(spec))
    processor = llm.build_processor(config, preprocess=http_row(spec))
    return processor(dataset).map(from_http_row, num_cpus=0)


def _ray_data_llm() -> Any:
    try:
        import ray.data.llm as llm
    except ImportError as error:
        raise RayUnavailable(
            f"ray.data.llm cannot be imported ({error}); the vLLM and HTTP processors need Ray's llm extra "
            "(pip install -e '.[gpu]'; the HTTP processor alone needs aiohttp)"
        ) from None
    return llm


def _needs_vllm() -> None:
    require_vllm_and_gpu()
    _ray_data_llm()


def _needs_ray_data_llm() -> None:
    _ray_data_llm()


# Each processor an engine spec names (its ``processor``): how it runs, and what it needs here.
PROCESSORS: dict[str, tuple[Callable[..., Any], Callable[[], None]]] = {
    OWN_ENGINE: (_replicas, lambda: None),
    "ray.data.llm.vllm": (_vllm, _needs_vllm),
    "ray.data.llm.http": (_http, _needs_ray_data_llm),
}
