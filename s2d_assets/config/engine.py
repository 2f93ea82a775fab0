"""The ``engine`` section of the experiment file: which engine generates, with its own settings.

A discriminated union by ``kind``. Each spec says which of its fields shape the generated text
(``version_data``, part of the generation assets' code versions and of the cache's producer)
and which only change how fast it is produced (batch sizes, concurrency, retries, GPU memory).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from s2d_assets.config.base import Strict
from s2d_assets.config.registry import Registry
from s2d_assets.core.fingerprint import content_hash


class RayExecutorSpec(BaseModel):
    """Where and how wide generation runs when ``engine.executor`` is ``ray`` (docs/scaling.md).

    None of these change the generated text: they are not part of the producer or of any code version.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    address: str | None = Field(
        None,
        description="the Ray cluster ('auto', 'ray://head:10001', 'host:6379'); None starts a local one "
        "(ray.init(num_cpus=...)) unless this process is already connected",
    )
    num_cpus: int | None = Field(None, ge=1, description="logical CPUs of a local cluster (default: this machine's)")
    replicas: int = Field(1, ge=1, description="engine replicas (data parallel), one model load each")
    cpus_per_replica: float = Field(1.0, gt=0, description="CPUs Ray reserves per replica (torch threads on CPU)")
    tensor_parallel_size: int | None = Field(
        None, ge=1, description="vLLM: GPUs one replica spans (default: engine.tensor_parallel_size)"
    )
    pipeline_parallel_size: int = Field(1, ge=1, description="vLLM: pipeline stages per replica")
    gpus_per_replica: int | None = Field(
        None, ge=1, description="vLLM: GPUs reserved per replica (default: tensor x pipeline parallel size)"
    )
    accelerator_type: str | None = Field(None, description="vLLM: the Ray accelerator type, e.g. A100 or H100")
    batch_size: int | None = Field(None, ge=1, description="rows per Ray Data batch (default: engine.batch_size)")
    continue_on_error: bool = Field(
        True, description="a row that fails goes to the generation_failures table instead of failing the job"
    )
    staging: str | None = Field(
        None,
        description="where request and result Parquet files are staged: a folder every node sees, or an "
        "s3:// / gs:// URI (default: <state folder>/ray)",
    )


# Settings of where generation runs, never of what it generates (left out of version_data).
EXECUTOR_FIELDS = frozenset({"executor", "ray"})
# The Ray Data processor an engine kind runs through (``engines/ray_processors.py``). "engine" is the project's
# own engine inside a map_batches actor: the same code as in process, so the same text (its cache entries are shared).
OWN_ENGINE = "engine"


class EngineSpecBase(Strict):
    # Fields that change throughput only; everything else is part of what is generated.
    runtime_fields: ClassVar[frozenset[str]] = frozenset({"batch_size"})
    # The Ray Data processor of this kind under ``executor: ray``.
    processor: ClassVar[str] = OWN_ENGINE
    # Whether this kind spans GPUs (the ray section's tensor/pipeline parallel and accelerator settings apply).
    spans_gpus: ClassVar[bool] = False

    # Left out of dumps at their defaults, so experiments without them keep their fingerprints.
    executor: Literal["local", "ray"] = Field(
        "local", exclude_if=lambda v: v == "local", description="local: in this process; ray: a Ray Data pipeline"
    )
    ray: RayExecutorSpec = Field(default_factory=RayExecutorSpec, exclude_if=lambda v: v == RayExecutorSpec())

    def version_data(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data = {k: v for k, v in data.items() if k not in self.runtime_fields | EXECUTOR_FIELDS}
        if self.ray_processor is not None and self.ray_processor != OWN_ENGINE:
            data["processor"] = self.ray_processor  # another implementation: another producer
        return data

    @property
    def ray_processor(self) -> str | None:
        """The Ray Data processor generation runs through (None when it runs in process)."""
        return self.processor if self.executor == "ray" else None

    @model_validator(mode="after")
    def _ray_settings_apply(self) -> EngineSpecBase:
        kind = self.kind  # type: ignore[attr-defined]
        if self.executor == "local" and self.ray != RayExecutorSpec():
            raise ValueError("ray: these settings apply only with executor: ray")
        gpu_only = {
            "tensor_parallel_size": self.ray.tensor_parallel_size,
            "gpus_per_replica": self.ray.gpus_per_replica,
            "accelerator_type": self.ray.accelerator_type,
            "pipeline_parallel_size": None if self.ray.pipeline_parallel_size == 1 else self.ray.pipeline_parallel_size,
        }
        if not self.spans_gpus:
            for name, value in gpu_only.items():
                if value is not None:
                    raise ValueError(f"ray.{name} applies to engine kind 'vllm' only (this engine is {kind!r})")
        elif (
            self.ray.tensor_parallel_size is not None
            and "tensor_parallel_size" in self.model_fields_set
            and self.ray.tensor_parallel_size != getattr(self, "tensor_parallel_size", None)
        ):
            raise ValueError("ray.tensor_parallel_size and tensor_parallel_size disagree: set one of them")
        return self

    @property
    def producer(self) -> str:
        """The engine's part of a cache entry's producer (the model fingerprint is the other part)."""
        return f"{self.kind}:{content_hash(self.version_data(), length=12)}"  # type: ignore[attr-defined]

    def check_experiment(self, temperatures: Mapping[str, float], lora_ranks: Mapping[str, int]) -> None:
        """Refuse settings this engine would reject at run time (keys are the experiment's field paths)."""

    def continuation_problem(self) -> str | None:
        """Why this engine cannot continue a final assistant message (a method's answer stage in the
        assistant's own turn); None when it can."""
        return None

    def constrained_answer_problem(self) -> str | None:
        """Why this engine cannot constrain a final answer to an answer set (None when it can)."""
        processor, kind = self.ray_processor, self.kind  # type: ignore[attr-defined]
        if processor is not None and processor != OWN_ENGINE:
            return f"engine {kind!r} under executor: ray runs through {processor}, which cannot constrain answers"
        return None


class TransformersEngineSpec(EngineSpecBase):
    """transformers on CPU (or any torch device): the embedded default."""

    kind: Literal["transformers"] = "transformers"
    batch_size: int = Field(64, ge=1, description="sequences decoded together")
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"

    @property
    def producer(self) -> str:
        return f"{self.kind}:{self.dtype}"


class OpenAICompatEngineSpec(EngineSpecBase):
    """Any OpenAI-compatible server: vLLM ``serve``, llama.cpp's server, Ollama, a hosted API."""

    # constrained_answers: how a constrained request is sent; its answer set is in the request's cache key.
    runtime_fields: ClassVar[frozenset[str]] = frozenset(
        {"batch_size", "concurrency", "timeout_seconds", "max_retries", "backoff_seconds", "api_key_env", "use_n"}
        | {"constrained_answers"}
    )
    processor: ClassVar[str] = "ray.data.llm.http"
    kind: Literal["openai_compat"]
    base_url: str = Field(description="the API root, e.g. http://127.0.0.1:8080/v1")
    model: str = Field(description="the model name the server expects in requests")
    api_key_env: str | None = Field(None, description="environment variable that holds the API key, if any")
    batch_size: int = Field(64, ge=1, description="requests handed to the engine (and cached) together")
    concurrency: int = Field(8, ge=1, description="HTTP requests in flight at once")
    timeout_seconds: float = Field(120.0, gt=0)
    max_retries: int = Field(5, ge=0, description="retries on 429, 5xx, timeouts and connection errors")
    backoff_seconds: float = Field(1.0, ge=0, description="first retry delay; doubles each retry")
    use_n: Literal["auto", "always", "never"] = Field(
        "auto", description="ask for N samples in one request (auto: try it, fall back to one request per sample)"
    )
    assistant_prefix: Literal["none", "continue_final_message", "prefill"] = Field(
        "none",
        exclude_if=lambda v: v == "none",
        description="how the server continues a final assistant message (answer stages in the assistant's own "
        "turn): continue_final_message (vLLM serve: continue_final_message=true, add_generation_prompt=false), "
        "prefill (the server continues a final assistant message itself: llama.cpp's server), none (it cannot: "
        "methods that need it are refused)",
    )

    constrained_answers: Literal["unsupported", "llama_cpp_grammar", "vllm_structured_outputs"] = Field(
        "unsupported",
        exclude_if=lambda v: v == "unsupported",
        description="how the server constrains a final answer (answer: constrained): llama_cpp_grammar sends a "
        "GBNF `grammar` (llama.cpp's server), vllm_structured_outputs sends `structured_outputs` (vLLM serve)",
    )

    def continuation_problem(self) -> str | None:
        if self.assistant_prefix == "none":
            return (
                "engine.assistant_prefix is 'none'; set it to continue_final_message (vLLM serve) or prefill "
                "(llama.cpp's server) if the server continues a final assistant message"
            )
        return None

    def constrained_answer_problem(self) -> str | None:
        if self.constrained_answers == "unsupported":
            return (
                "engine 'openai_compat' cannot constrain answers unless engine.constrained_answers names the "
                "server's API (llama_cpp_grammar or vllm_structured_outputs)"
            )
        return super().constrained_answer_problem()


# What vLLM accepts, mirrored so a bad setting is refused when the experiment loads (the signature
# test checks both against the pinned wheel): ``MaxLoRARanks`` in vllm/config/lora.py and the
# temperature bound in ``SamplingParams._verify_args`` (vllm/sampling_params.py).
VLLM_LORA_RANKS: tuple[int, ...] = (1, 8, 16, 32, 64, 128, 256, 320, 512)
VLLM_MAX_TEMPERATURE = 2.0


@lru_cache(maxsize=1)
def installed_vllm_version() -> str | None:
    """The installed vLLM's version, read from its metadata without importing it (None when absent)."""
    try:
        return importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        return None


class VLLMEngineSpec(EngineSpecBase):
    """vLLM's offline ``LLM`` on GPUs (the ``s2d[gpu]`` extra)."""

    runtime_fields: ClassVar[frozenset[str]] = frozenset(
        {"batch_size", "gpu_memory_utilization", "enable_prefix_caching", "max_num_seqs", "tensor_parallel_size"}
    )
    processor: ClassVar[str] = "ray.data.llm.vllm"
    spans_gpus: ClassVar[bool] = True
    kind: Literal["vllm"]
    batch_size: int = Field(4096, ge=1, description="requests handed to vLLM (and cached) together")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs one engine spans")
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    max_model_len: int | None = Field(None, ge=16)
    max_num_seqs: int | None = Field(None, ge=1)
    enable_prefix_caching: bool = True
    lora: Literal["adapter", "merged"] = Field(
        "adapter", description="distilled LoRA checkpoints: served as adapters (LoRARequest) or merged weights"
    )
    max_lora_rank: int = Field(64, description=f"one of {VLLM_LORA_RANKS} (vLLM's MaxLoRARanks)")

    @field_validator("max_lora_rank")
    @classmethod
    def _rank_vllm_accepts(cls, value: int) -> int:
        if value not in VLLM_LORA_RANKS:
            raise ValueError(f"vLLM accepts max_lora_rank in {list(VLLM_LORA_RANKS)}, got {value}")
        return value

    def version_data(self) -> dict[str, Any]:
        """The vLLM version shapes the text too: a different vLLM is a different producer."""
        return {**super().version_data(), "vllm_version": installed_vllm_version()}

    def check_experiment(self, temperatures: Mapping[str, float], lora_ranks: Mapping[str, int]) -> None:
        problems = [
            f"{where}: vLLM accepts temperatures in [0, {VLLM_MAX_TEMPERATURE:g}], got {value:g}"
            for where, value in temperatures.items()
            if value > VLLM_MAX_TEMPERATURE
        ] + [
            f"{where}: LoRA rank {rank} is above engine.max_lora_rank {self.max_lora_rank}; vLLM would refuse the "
            "adapter (raise engine.max_lora_rank or lower the rank)"
            for where, rank in lora_ranks.items()
            if rank > self.max_lora_rank
        ]
        if problems:
            raise ValueError("; ".join(problems))


def _kind(value: Any) -> str:
    """``kind`` may be left out: the transformers engine is the default."""
    if isinstance(value, dict):
        return str(value.get("kind", "transformers"))
    return str(getattr(value, "kind", "transformers"))


ENGINES: Registry[Any] = Registry("engine")
ENGINES.register("s2d_assets.engines.hf:from_spec", spec=TransformersEngineSpec)
ENGINES.register("s2d_assets.engines.openai_compat:from_spec", spec=OpenAICompatEngineSpec)
ENGINES.register("s2d_assets.engines.vllm_engine:from_spec", spec=VLLMEngineSpec)

EngineSpec = ENGINES.union(discriminator=_kind)
