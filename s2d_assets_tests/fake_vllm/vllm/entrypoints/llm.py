"""``LLM``: vLLM 0.29.0's offline entry point, imitated without a model (see ../../README.md)."""

from __future__ import annotations

import hashlib
import json
import random
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vllm import _stand_in
from vllm.lora.request import LoRARequest
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.sampling_params import SamplingParams

EOS_TOKEN_ID = 2
MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# Engine arguments the stand-in knows (all are EngineArgs fields in vLLM 0.29.0).
ENGINE_ARGS = frozenset(
    {
        "enable_prefix_caching",
        "enable_lora",
        "max_lora_rank",
        "max_loras",
        "max_model_len",
        "max_num_seqs",
        "enforce_eager",
        "disable_log_stats",
    }
)


def _hash(*parts: object) -> int:
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:15], 16)


def _tokenize(text: str) -> list[int]:
    return [10 + _hash("tok", word) % 5000 for word in text.split()]


class _EngineCore:
    def __init__(self, owner: int) -> None:
        self._owner = owner
        self.dead = False

    def shutdown(self, timeout: float | None = None) -> None:
        self.dead = True
        _stand_in.STATE.reserved.pop(self._owner, None)


class _LLMEngine:
    def __init__(self, owner: int) -> None:
        self.engine_core = _EngineCore(owner)


def _free(owner: int) -> None:
    _stand_in.STATE.reserved.pop(owner, None)


class LLM:
    def __init__(
        self,
        model: str,
        *,
        tokenizer: str | None = None,
        trust_remote_code: bool = False,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        seed: int = 0,
        gpu_memory_utilization: float = 0.92,
        **kwargs: Any,
    ) -> None:
        unknown = set(kwargs) - ENGINE_ARGS
        if unknown:
            raise TypeError(f"EngineArgs.__init__() got an unexpected keyword argument {sorted(unknown)[0]!r}")
        self.enable_lora = bool(kwargs.get("enable_lora", False))
        self.max_lora_rank = kwargs.get("max_lora_rank", 16)
        if self.enable_lora and self.max_lora_rank not in MAX_LORA_RANKS:
            raise ValueError(f"max_lora_rank: Input should be {', '.join(map(str, MAX_LORA_RANKS))}")
        state = _stand_in.STATE
        requested = _stand_in.GPU_TOTAL_GIB * gpu_memory_utilization
        free = _stand_in.GPU_TOTAL_GIB - sum(state.reserved.values())
        if free < requested:
            raise ValueError(
                f"Free memory on device cuda:0 ({free:.2f}/{_stand_in.GPU_TOTAL_GIB:.2f} GiB) on startup is less "
                f"than desired GPU memory utilization ({gpu_memory_utilization}, {requested:.2f} GiB). Decrease GPU "
                "memory utilization or reduce GPU memory used by other processes."
            )
        self.model = model
        state.constructed.append(
            {
                "model": model,
                "tensor_parallel_size": tensor_parallel_size,
                "dtype": dtype,
                "seed": seed,
                "gpu_memory_utilization": gpu_memory_utilization,
                **kwargs,
            }
        )
        state.reserved[id(self)] = requested
        state.max_alive = max(state.max_alive, len(state.reserved))
        self.llm_engine = _LLMEngine(id(self))
        weakref.finalize(self, _free, id(self))

    def chat(
        self,
        messages: Sequence[dict[str, Any]] | Sequence[Sequence[dict[str, Any]]],
        sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
        use_tqdm: bool = True,
        lora_request: Sequence[LoRARequest] | LoRARequest | None = None,
        chat_template: str | None = None,
        chat_template_content_format: str = "auto",
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
        tools: list[dict[str, Any]] | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
        tokenization_kwargs: dict[str, Any] | None = None,
        mm_processor_kwargs: dict[str, Any] | None = None,
    ) -> list[RequestOutput]:
        if self.llm_engine.engine_core.dead:
            raise RuntimeError("EngineCore encountered an issue: the engine was shut down")
        if continue_final_message and add_generation_prompt:  # as transformers' apply_chat_template refuses it
            raise ValueError("continue_final_message and add_generation_prompt are not compatible")
        conversations = [messages] if messages and isinstance(messages[0], dict) else list(messages)
        if sampling_params is None:
            sampling_params = SamplingParams()
        params = (
            [sampling_params] * len(conversations)
            if isinstance(sampling_params, SamplingParams)
            else list(sampling_params)
        )
        if len(params) != len(conversations):
            raise ValueError("The lengths of prompts and sampling_params must be the same.")
        loras = list(lora_request) if isinstance(lora_request, Sequence) else [lora_request] * len(conversations)
        if len(loras) != len(conversations):
            raise ValueError("The lengths of prompts and lora_request must be the same.")
        for lora in loras:
            self._check_lora(lora)
        _stand_in.STATE.calls.append(
            {
                "conversations": conversations,
                "params": [dict(vars(p)) for p in params],
                "lora": [None if lora is None else lora.lora_name for lora in loras],
                "add_generation_prompt": add_generation_prompt,
                "continue_final_message": continue_final_message,
            }
        )
        outputs = []
        for number, (conversation, sampling, lora) in enumerate(zip(conversations, params, loras, strict=True)):
            prompt = self._render(conversation, add_generation_prompt, continue_final_message)
            children = [sampling.child(k) for k in range(sampling.n)] if sampling.n > 1 else [sampling]
            outputs.append(
                RequestOutput(
                    request_id=str(number),
                    prompt=prompt,
                    prompt_token_ids=_tokenize(prompt),
                    prompt_logprobs=None,
                    outputs=[self._complete(k, prompt, child, lora) for k, child in enumerate(children)],
                    finished=True,
                    lora_request=lora,
                )
            )
        return outputs

    def _check_lora(self, lora: LoRARequest | None) -> None:
        if lora is None:
            return
        if not self.enable_lora:
            raise ValueError(f"Got lora_request {lora} but LoRA is not enabled!")
        config = json.loads((Path(lora.lora_path) / "adapter_config.json").read_text())
        if config["r"] > self.max_lora_rank:
            raise ValueError(f"LoRA rank {config['r']} is greater than max_lora_rank {self.max_lora_rank}.")

    @staticmethod
    def _render(
        conversation: Sequence[dict[str, Any]], add_generation_prompt: bool, continue_final_message: bool = False
    ) -> str:
        if continue_final_message and conversation[-1]["role"] != "assistant":
            raise ValueError("continue_final_message is set but the final message is not the assistant's")
        text = " ".join(f"<|{m['role']}|> {m['content']}" for m in conversation)
        return text + (" <|assistant|>" if add_generation_prompt else "")

    def _complete(
        self, index: int, prompt: str, sampling: SamplingParams, lora: LoRARequest | None
    ) -> CompletionOutput:
        adapter = None if lora is None else lora.lora_path
        if sampling.greedy:
            draw = ("greedy",)
        elif sampling.seed is None:
            draw = ("unseeded", random.getrandbits(63))  # vLLM's global generator: not reproducible
        else:
            draw = ("seed", sampling.seed, sampling.temperature, sampling.top_p)
        length = 3 + _hash(self.model, prompt, adapter, draw, "length") % 12  # tokens up to and including EOS
        words = [10 + _hash(self.model, prompt, adapter, draw, step) % 5000 for step in range(length - 1)]
        token_ids = [*words, EOS_TOKEN_ID]
        finish_reason = "stop"
        if sampling.max_tokens is not None and len(token_ids) > sampling.max_tokens:
            token_ids, finish_reason = token_ids[: sampling.max_tokens], "length"
        text = " ".join(f"w{t}" for t in token_ids if t != EOS_TOKEN_ID)
        constraint = sampling.structured_outputs
        if constraint is not None and constraint.choice is not None:  # one of the choices, then EOS
            text = constraint.choice[_hash(self.model, prompt, adapter, draw, "choice") % len(constraint.choice)]
            token_ids, finish_reason = [*token_ids[: len(text.split())], EOS_TOKEN_ID], "stop"
        return CompletionOutput(index, text, token_ids, None, None, finish_reason, None, lora)
