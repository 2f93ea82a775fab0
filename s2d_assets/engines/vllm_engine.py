"""vLLM's offline engine on GPUs, as a thin typed mapping from the project's requests.

Everything vLLM receives is first built as plain dataclasses here (``engine_args``,
``plan_chat``, ``lora_args``), so the mapping is tested without vLLM or a GPU; ``VLLMEngine``
only turns them into ``LLM``, ``SamplingParams`` and ``LoRARequest`` objects. The samples of one
prompt go out as one request with ``n`` (automatic prefix caching shares prompts across
requests). Untested on a GPU in this repository: no GPU machine runs its tests.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from s2d_assets.engine_spec import VLLMEngineSpec
from s2d_assets.engines.base import Completion, GenerationRequest


class EngineUnavailable(RuntimeError):
    """The engine cannot run on this machine; the message says what is missing."""


@dataclass(frozen=True)
class EngineArgs:
    """Keyword arguments of ``vllm.LLM``."""

    model: str
    dtype: str
    tensor_parallel_size: int
    gpu_memory_utilization: float
    enable_prefix_caching: bool
    enable_lora: bool
    max_lora_rank: int
    seed: int
    max_model_len: int | None = None
    max_num_seqs: int | None = None

    def as_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class SamplingArgs:
    """Keyword arguments of ``vllm.SamplingParams``."""

    n: int
    seed: int
    temperature: float
    top_p: float
    max_tokens: int

    def as_kwargs(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LoRAArgs:
    """Positional arguments of ``vllm.lora.request.LoRARequest``."""

    lora_name: str
    lora_int_id: int
    lora_path: str


@dataclass(frozen=True)
class ChatPlan:
    """One ``LLM.chat`` call: conversations, their sampling, and where each choice goes."""

    conversations: list[list[dict[str, str]]]
    sampling: list[SamplingArgs]
    rows: list[list[int]]  # request index of each choice, per conversation


def engine_args(spec: VLLMEngineSpec, model: str, seed: int = 0, lora: bool = False) -> EngineArgs:
    return EngineArgs(
        model=model,
        dtype=spec.dtype,
        tensor_parallel_size=spec.tensor_parallel_size,
        gpu_memory_utilization=spec.gpu_memory_utilization,
        enable_prefix_caching=spec.enable_prefix_caching,
        enable_lora=lora,
        max_lora_rank=spec.max_lora_rank,
        seed=seed,
        max_model_len=spec.max_model_len,
        max_num_seqs=spec.max_num_seqs,
    )


def plan_chat(requests: Sequence[GenerationRequest]) -> ChatPlan:
    """Group requests by (messages, sampling): one conversation with ``n`` = its sample count.

    The group's first seed seeds all its choices, so a sample's text depends on its group, which
    the generation cache keys by prompt, sample index and seed.
    """
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault((request.messages, request.params), []).append(index)
    conversations, sampling, rows = [], [], []
    for (messages, params), indices in groups.items():
        first = requests[indices[0]]
        conversations.append([{"role": role, "content": content} for role, content in messages])
        sampling.append(
            SamplingArgs(
                n=len(indices),
                seed=first.seed % (2**63),
                temperature=params.temperature,
                top_p=params.top_p,
                max_tokens=params.max_new_tokens,
            )
        )
        rows.append(indices)
    return ChatPlan(conversations, sampling, rows)


def lora_args(adapter_dir: Path, fingerprint: str) -> LoRAArgs:
    """A stable integer id per adapter content, as vLLM identifies adapters by it."""
    return LoRAArgs(lora_name=fingerprint, lora_int_id=int(fingerprint[:7], 16) + 1, lora_path=str(adapter_dir))


def require_vllm_and_gpu() -> None:
    if importlib.util.find_spec("vllm") is None:
        raise EngineUnavailable(
            "engine.kind 'vllm' needs vLLM, which is not installed: pip install -e '.[vllm]' on a machine with an "
            "NVIDIA GPU (or use engine.kind 'transformers' on CPU, or 'openai_compat' against a server)"
        )
    import torch

    if not torch.cuda.is_available():
        raise EngineUnavailable(
            "engine.kind 'vllm' needs a CUDA GPU and none is visible (torch.cuda.is_available() is False); "
            "use engine.kind 'transformers' on CPU, or 'openai_compat' against a vLLM server elsewhere"
        )


def merged_model_dir(base: str, adapter_dir: Path) -> Path:
    """Merge a LoRA adapter into its base weights once, next to the adapter (``lora: merged``)."""
    target = adapter_dir / "merged"
    if not (target / "config.json").exists():
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter_dir).merge_and_unload()
        staging = adapter_dir / ".merged-staging"
        model.save_pretrained(staging)
        AutoTokenizer.from_pretrained(adapter_dir).save_pretrained(staging)
        staging.rename(target)
    return target


class VLLMEngine:
    def __init__(
        self, spec: VLLMEngineSpec, model: str, fingerprint: str, adapter_dir: Path | None = None, seed: int = 0
    ) -> None:
        require_vllm_and_gpu()
        from vllm import LLM

        self._fingerprint = fingerprint
        self.lora: LoRAArgs | None = None
        has_adapter = adapter_dir is not None and (adapter_dir / "adapter_config.json").exists()
        if has_adapter and adapter_dir is not None and spec.lora == "merged":
            model = str(merged_model_dir(model, adapter_dir))
        elif has_adapter and adapter_dir is not None:
            self.lora = lora_args(adapter_dir, fingerprint)
        self.args = engine_args(spec, model, seed, lora=self.lora is not None)
        self.llm = LLM(**self.args.as_kwargs())

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        import time

        from vllm import SamplingParams
        from vllm.lora.request import LoRARequest

        if not requests:
            return []
        started = time.perf_counter()
        plan = plan_chat(requests)
        outputs = self.llm.chat(
            plan.conversations,
            sampling_params=[SamplingParams(**s.as_kwargs()) for s in plan.sampling],
            lora_request=LoRARequest(self.lora.lora_name, self.lora.lora_int_id, self.lora.lora_path)
            if self.lora
            else None,
            add_generation_prompt=True,
            use_tqdm=False,
        )
        seconds = (time.perf_counter() - started) / len(requests)
        results: list[Completion | None] = [None] * len(requests)
        for output, indices in zip(outputs, plan.rows, strict=True):
            prompt_tokens = len(output.prompt_token_ids or [])
            for choice, index in zip(output.outputs, indices, strict=True):
                results[index] = Completion(choice.text.strip(), prompt_tokens, len(choice.token_ids), seconds)
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            raise RuntimeError(f"vLLM returned no completion for {len(missing)} request(s)")
        return [r for r in results if r is not None]
