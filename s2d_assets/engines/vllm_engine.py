"""vLLM's offline engine on GPUs, as a thin typed mapping from the project's requests.

Everything vLLM receives is first built as plain dataclasses here (``engine_args``, ``plan_chat``,
``lora_args``), so the mapping is tested without vLLM or a GPU; ``VLLMEngine`` only turns them into
``LLM``, ``SamplingParams`` and ``LoRARequest`` objects. The keywords are checked against the pinned
vLLM wheel's source (``test_vllm_signature.py``) and the engine runs against a stand-in ``vllm``
package that behaves like the real one (``test_vllm_contract.py``); no GPU machine runs its tests.

- **One request per sample, with the sample's own seed.** A sampled completion is a function of
  its request alone (prompt, sampling parameters, seed), as with the transformers engine, so a
  cached text can be regenerated from its key whatever else shared its batch. vLLM batches the
  requests itself and automatic prefix caching shares the prompt's prefill across them.
- **Identical greedy samples are generated once.** vLLM refuses ``n > 1`` with temperature 0, and
  greedy decoding has one answer: greedy requests that differ only in sample index and seed go
  out as one ``n = 1`` request and its completion is given to each of them.
- **One ``LLM`` per process** (``vllm_registry.SHARED``): base-model and adapter requests share it.
- **Truncation is recorded**: ``Completion.finish_reason`` and ``VLLMEngine.stats.truncated``.
- **Continuations continue the assistant's message**: requests whose last message is the assistant's go
  out in their own ``LLM.chat`` call with ``continue_final_message=True, add_generation_prompt=False``.
- **Constrained answers** use vLLM's structured outputs: a request's answer set becomes
  ``SamplingParams(structured_outputs=StructuredOutputsParams(choice=[...]))`` (or ``regex=...``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from s2d_assets.config.engine import VLLM_LORA_RANKS, VLLM_MAX_TEMPERATURE, VLLMEngineSpec
from s2d_assets.core.answer_set import AnswerSet
from s2d_assets.engines.base import Completion, GenerationRequest, require_adapter
from s2d_assets.engines.vllm_registry import SHARED

log = logging.getLogger(__name__)

# The vLLM the mapping is checked against (the ``gpu`` extra pins it; ray[llm] 2.60.0 requires it).
TESTED_VLLM_VERSION = "0.29.0"
# finish_reason values that are not a completion: never cached.
FAILED_FINISH_REASONS = frozenset({"abort", "error"})


class EngineUnavailable(RuntimeError):
    """The engine cannot run on this machine; the message says what is missing."""


@dataclass(frozen=True)
class EngineArgs:
    """Keyword arguments of ``vllm.LLM``; also the identity of the process's shared ``LLM``."""

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
class StructuredOutputsArgs:
    """Keyword arguments of ``vllm.sampling_params.StructuredOutputsParams``: a constrained answer's set."""

    choice: tuple[str, ...] | None = None
    regex: str | None = None

    @classmethod
    def of(cls, answer_set: AnswerSet) -> StructuredOutputsArgs:
        return cls(choice=answer_set.choices) if answer_set.choices else cls(regex=answer_set.regex)

    def as_kwargs(self) -> dict[str, Any]:
        return {"choice": list(self.choice)} if self.choice is not None else {"regex": self.regex}


@dataclass(frozen=True)
class SamplingArgs:
    """Keyword arguments of ``vllm.SamplingParams``: always one completion per request."""

    seed: int | None  # None for greedy requests, which do not draw
    temperature: float
    top_p: float
    max_tokens: int
    n: int = 1
    structured_outputs: StructuredOutputsArgs | None = None  # a constrained answer (vLLM's structured outputs)

    def as_kwargs(self) -> dict[str, Any]:
        """Plain values; ``structured_outputs`` (when set) as the keywords of its ``StructuredOutputsParams``."""
        kwargs = {name: value for name, value in asdict(self).items() if name != "structured_outputs"}
        if self.structured_outputs is not None:
            kwargs["structured_outputs"] = self.structured_outputs.as_kwargs()
        return kwargs


@dataclass(frozen=True)
class LoRAArgs:
    """Keyword arguments of ``vllm.lora.request.LoRARequest``."""

    lora_name: str
    lora_int_id: int
    lora_path: str


@dataclass(frozen=True)
class ChatPlan:
    """One ``LLM.chat`` call: conversations, their sampling, and the requests each one answers."""

    conversations: list[list[dict[str, str]]]
    sampling: list[SamplingArgs]
    rows: list[list[int]]  # request indices answered by each conversation (several: identical greedy samples)
    continuation: bool = False  # every conversation ends with the assistant's message, which the model continues

    def template_kwargs(self) -> dict[str, bool]:
        """How ``LLM.chat`` renders the conversations: a new assistant turn, or the final message continued."""
        return {"add_generation_prompt": not self.continuation, "continue_final_message": self.continuation}


@dataclass
class VLLMStats:
    samples: int = 0  # completions returned
    requests: int = 0  # requests sent to vLLM (identical greedy samples share one)
    truncated: int = 0  # completions cut at the token budget (finish_reason "length")

    def as_metadata(self) -> dict[str, int]:
        return {"vllm_samples": self.samples, "vllm_requests": self.requests, "vllm_truncated": self.truncated}


def engine_args(spec: VLLMEngineSpec, model: str, seed: int = 0) -> EngineArgs:
    """LoRA is enabled whenever adapters are served as adapters, so base and adapter requests share it."""
    return EngineArgs(
        model=model,
        dtype=spec.dtype,
        tensor_parallel_size=spec.tensor_parallel_size,
        gpu_memory_utilization=spec.gpu_memory_utilization,
        enable_prefix_caching=spec.enable_prefix_caching,
        enable_lora=spec.lora == "adapter",
        max_lora_rank=spec.max_lora_rank,
        seed=seed,
        max_model_len=spec.max_model_len,
        max_num_seqs=spec.max_num_seqs,
    )


def plan_chat(requests: Sequence[GenerationRequest]) -> ChatPlan:
    """One ``n = 1`` request per sample with its own seed; identical greedy samples share one request.

    The requests are all continuations or none (``LLM.chat`` renders one way per call; see ``plan_chats``).
    """
    kinds = {request.continuation for request in requests}
    if len(kinds) > 1:
        raise ValueError("one LLM.chat call renders continuations and new turns alike: plan them apart")
    greedy: dict[tuple[Any, ...], int] = {}  # (messages, params) -> conversation index
    conversations: list[list[dict[str, str]]] = []
    sampling: list[SamplingArgs] = []
    rows: list[list[int]] = []
    for index, request in enumerate(requests):
        params = request.params
        if params.greedy:
            key = (request.messages, params, request.answer_set)
            if key in greedy:
                rows[greedy[key]].append(index)
                continue
            greedy[key] = len(rows)
        conversations.append([{"role": role, "content": content} for role, content in request.messages])
        sampling.append(
            SamplingArgs(
                seed=None if params.greedy else request.seed,
                temperature=params.temperature,
                top_p=params.top_p,
                max_tokens=params.max_new_tokens,
                structured_outputs=None if request.answer_set is None else StructuredOutputsArgs.of(request.answer_set),
            )
        )
        rows.append([index])
    return ChatPlan(conversations, sampling, rows, continuation=kinds == {True})


def plan_chats(requests: Sequence[GenerationRequest]) -> list[tuple[list[int], ChatPlan]]:
    """One plan per rendering (new turns, continuations), each with the request indices it answers."""
    groups: dict[bool, list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault(request.continuation, []).append(index)
    return [(indices, plan_chat([requests[i] for i in indices])) for _, indices in sorted(groups.items())]


def sampling_params(args: SamplingArgs) -> Any:
    """``vllm.SamplingParams`` from its arguments (a constrained answer as ``StructuredOutputsParams``)."""
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    kwargs = args.as_kwargs()
    if "structured_outputs" in kwargs:
        kwargs["structured_outputs"] = StructuredOutputsParams(**kwargs["structured_outputs"])
    return SamplingParams(**kwargs)


def lora_args(adapter_dir: Path, fingerprint: str) -> LoRAArgs:
    """A stable positive integer id per adapter content, as vLLM identifies adapters by it."""
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()
    return LoRAArgs(lora_name=fingerprint, lora_int_id=int(digest[:7], 16) + 1, lora_path=str(adapter_dir))


def check_adapter(adapter_dir: Path, max_lora_rank: int) -> None:
    """Refuse, naming the adapter, what vLLM's ``PEFTHelper.validate_legal`` would refuse on load."""
    config_path = adapter_dir / "adapter_config.json"
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{config_path}: cannot read the LoRA adapter's config: {error}") from None
    rank = config.get("r")
    problems = []
    if not isinstance(rank, int) or rank <= 0:
        problems.append(f"its rank r={rank!r} is not a positive integer")
    elif rank > max_lora_rank:
        bigger = [r for r in VLLM_LORA_RANKS if r >= rank]
        hint = (
            f"set engine.max_lora_rank to {bigger[0]} or more" if bigger else f"vLLM's largest is {VLLM_LORA_RANKS[-1]}"
        )
        problems.append(f"its rank r={rank} is above engine.max_lora_rank={max_lora_rank} ({hint})")
    if config.get("bias", "none") != "none":
        problems.append(f"it trains biases (bias={config['bias']!r}), which vLLM does not support")
    if config.get("use_dora"):
        problems.append("it is a DoRA adapter, which vLLM does not support")
    if config.get("modules_to_save"):
        problems.append(f"it saves whole modules ({config['modules_to_save']}), which vLLM does not support")
    if problems:
        raise ValueError(f"LoRA adapter {adapter_dir}: vLLM would refuse it: " + "; ".join(problems))


def require_vllm_and_gpu() -> None:
    if importlib.util.find_spec("vllm") is None:
        raise EngineUnavailable(
            "engine.kind 'vllm' needs vLLM, which is not installed: pip install -e '.[gpu]' on a machine with an "
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
    """One model (the base, or the base with a LoRA adapter) on the process's shared ``LLM``."""

    def __init__(
        self, spec: VLLMEngineSpec, model: str, fingerprint: str, adapter_dir: Path | None = None, seed: int = 0
    ) -> None:
        require_vllm_and_gpu()
        import vllm

        if getattr(vllm, "__version__", None) != TESTED_VLLM_VERSION:
            log.warning(
                "vLLM %s is installed; the engine is checked against %s (pip install -e '.[gpu]')",
                getattr(vllm, "__version__", "?"),
                TESTED_VLLM_VERSION,
            )
        self._fingerprint = fingerprint
        self.lora: LoRAArgs | None = None
        self.stats = VLLMStats()
        if adapter_dir is not None:
            require_adapter(adapter_dir)
            if spec.lora == "merged":
                model = str(merged_model_dir(model, adapter_dir))
            else:
                check_adapter(adapter_dir, spec.max_lora_rank)
                self.lora = lora_args(adapter_dir, fingerprint)
        self.args = engine_args(spec, model, seed)
        self._acquire()  # fail here, not on the first batch, when the model cannot start

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def _acquire(self) -> Any:
        """The process's ``LLM`` for these arguments; never kept, so it can be replaced between calls."""

        def construct() -> Any:
            from vllm import LLM

            return LLM(**self.args.as_kwargs())

        return SHARED.get(self.args, construct)

    def _lora_request(self) -> Any:
        if self.lora is None:
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest(**asdict(self.lora))

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        if not requests:
            return []
        too_hot = sorted({r.params.temperature for r in requests if r.params.temperature > VLLM_MAX_TEMPERATURE})
        if too_hot:
            raise ValueError(f"vLLM accepts temperatures in [0, {VLLM_MAX_TEMPERATURE:g}], got {too_hot}")
        started = time.perf_counter()
        results: list[Completion | None] = [None] * len(requests)
        failed: dict[str, int] = {}
        sent = 0
        for indices, plan in plan_chats(requests):
            outputs = self._acquire().chat(
                plan.conversations,
                sampling_params=[sampling_params(s) for s in plan.sampling],
                lora_request=self._lora_request(),
                use_tqdm=False,
                **plan.template_kwargs(),
            )
            if len(outputs) != len(plan.rows):
                raise RuntimeError(f"vLLM answered {len(outputs)} of {len(plan.rows)} request(s)")
            sent += len(plan.rows)
            for output, rows in zip(outputs, plan.rows, strict=True):
                if len(output.outputs) != 1:
                    raise RuntimeError(f"vLLM returned {len(output.outputs)} completions for an n = 1 request")
                choice = output.outputs[0]
                reason = None if choice.finish_reason is None else str(choice.finish_reason)
                if reason in FAILED_FINISH_REASONS:
                    failed[reason] = failed.get(reason, 0) + len(rows)
                    continue
                completion = Completion(
                    text=choice.text.strip(),
                    prompt_tokens=len(output.prompt_token_ids or []),
                    completion_tokens=len(choice.token_ids),  # includes the EOS token, as the transformers engine
                    seconds=0.0,
                    finish_reason=reason,
                )
                for row in rows:
                    results[indices[row]] = completion
        seconds = (time.perf_counter() - started) / len(requests)
        results = [None if r is None else replace(r, seconds=seconds) for r in results]
        if failed:
            raise RuntimeError(f"vLLM did not complete {sum(failed.values())} request(s): {failed}")
        truncated = sum(1 for r in results if r is not None and r.finish_reason == "length")
        self.stats.samples += len(requests)
        self.stats.requests += sent
        self.stats.truncated += truncated
        if truncated:
            log.warning("vLLM: %d of %d completion(s) stopped at max_tokens (truncated)", truncated, len(requests))
        return [r for r in results if r is not None]


def from_spec(spec: Any, model_dir: Path, fingerprint: str, adapter_dir: Path | None) -> VLLMEngine:
    """The engine of ``engine.kind: vllm`` (its registry entry, ``config/engine.py``)."""
    return VLLMEngine(spec, str(model_dir), fingerprint, adapter_dir)
