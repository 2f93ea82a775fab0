"""A batched transformers engine for CPU (and any torch device).

One prefill per distinct prompt is shared by all of its samples (the KV cache rows are
repeated), finished sequences leave the batch, and each sequence samples from its own seeded
generator, so a sample's text depends on its seed, not on what else was in the batch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from s2d_assets.engines.base import Completion, GenerationRequest


def cpu_supports_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(name: str) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if cpu_supports_bf16() else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


def load_model(model_dir: Path, dtype: torch.dtype, adapter_dir: Path | None = None) -> PreTrainedModel:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    if adapter_dir is not None and (adapter_dir / "adapter_config.json").exists():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    model.eval()
    return model


class TransformersEngine:
    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        fingerprint: str,
        threads: int | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self._fingerprint = fingerprint
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.stop_ids = self._stop_ids()
        torch.set_num_threads(threads or os.cpu_count() or 1)

    @classmethod
    def from_dir(
        cls, model_dir: Path, fingerprint: str, dtype: str = "auto", adapter_dir: Path | None = None
    ) -> TransformersEngine:
        tokenizer = AutoTokenizer.from_pretrained(adapter_dir if adapter_dir else model_dir)
        return cls(load_model(model_dir, resolve_dtype(dtype), adapter_dir), tokenizer, fingerprint)

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def _stop_ids(self) -> set[int]:
        ids: set[int] = set()
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        if isinstance(configured, int):
            ids.add(configured)
        elif configured:
            ids.update(configured)
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    def render(self, request: GenerationRequest) -> str:
        messages = [{"role": role, "content": content} for role, content in request.messages]
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    @torch.inference_mode()
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        if not requests:
            return []
        started = time.perf_counter()
        prompts = [self.render(request) for request in requests]
        distinct = list(dict.fromkeys(prompts))
        row_prompt = torch.tensor([distinct.index(p) for p in prompts])

        encoded = self.tokenizer(
            distinct, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False
        )
        device = self.model.device
        input_ids = encoded["input_ids"].to(device)
        attention = encoded["attention_mask"].to(device)
        prompt_lengths = attention.sum(-1)[row_prompt].tolist()

        cache = DynamicCache(config=self.model.config)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        logits = self.model(
            input_ids=input_ids,
            attention_mask=attention,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1, :]
        # Share the prefill: every sample row starts from its prompt's cache rows.
        cache.batch_select_indices(row_prompt.to(device))
        attention = attention[row_prompt.to(device)]
        logits = logits[row_prompt.to(device)]

        generators = [torch.Generator().manual_seed(r.seed) for r in requests]
        budgets = [r.params.max_new_tokens for r in requests]
        outputs: list[list[int]] = [[] for _ in requests]
        alive = list(range(len(requests)))  # request index of each batch row
        for _ in range(max(budgets)):
            next_tokens = self._sample(logits, [requests[i] for i in alive], [generators[i] for i in alive])
            keep_rows: list[int] = []
            for row, request_index in enumerate(alive):
                token = int(next_tokens[row])
                outputs[request_index].append(token)
                finished = token in self.stop_ids or len(outputs[request_index]) >= budgets[request_index]
                if not finished:
                    keep_rows.append(row)
            if not keep_rows:
                break
            if len(keep_rows) < len(alive):
                index = torch.tensor(keep_rows, device=device)
                cache.batch_select_indices(index)
                attention = attention[index]
                next_tokens = next_tokens[index]
                alive = [alive[row] for row in keep_rows]
            attention = torch.cat([attention, attention.new_ones((attention.shape[0], 1))], dim=-1)
            positions = attention.sum(-1, keepdim=True) - 1
            logits = self.model(
                input_ids=next_tokens[:, None].to(device),
                attention_mask=attention,
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
            ).logits[:, -1, :]

        seconds = (time.perf_counter() - started) / len(requests)
        return [
            Completion(
                text=self.tokenizer.decode(
                    [t for t in tokens if t not in self.stop_ids], skip_special_tokens=True
                ).strip(),
                prompt_tokens=int(prompt_length),
                completion_tokens=len(tokens),
                seconds=seconds,
            )
            for tokens, prompt_length in zip(outputs, prompt_lengths, strict=True)
        ]

    @staticmethod
    def _sample(
        logits: torch.Tensor, requests: Sequence[GenerationRequest], generators: Sequence[torch.Generator]
    ) -> torch.Tensor:
        """Greedy rows take the argmax; sampling rows draw by inverse CDF from their own generator."""
        logits = logits.float()
        chosen = logits.argmax(dim=-1)
        sampling_rows = [row for row, r in enumerate(requests) if not r.params.greedy]
        if not sampling_rows:
            return chosen
        rows = torch.tensor(sampling_rows, device=logits.device)
        temperature = torch.tensor([requests[r].params.temperature for r in sampling_rows], device=logits.device)
        top_p = torch.tensor([requests[r].params.top_p for r in sampling_rows], device=logits.device)
        probs = torch.softmax(logits[rows] / temperature[:, None], dim=-1)
        sorted_probs, sorted_ids = probs.sort(dim=-1, descending=True)
        cumulative = sorted_probs.cumsum(dim=-1)
        # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
        sorted_probs = sorted_probs.masked_fill(cumulative - sorted_probs >= top_p[:, None], 0.0)
        cumulative = sorted_probs.cumsum(dim=-1)
        uniforms = torch.stack([torch.rand((), generator=generators[r]) for r in sampling_rows]).to(logits.device)
        picks = torch.searchsorted(cumulative, (uniforms * cumulative[:, -1])[:, None]).clamp(max=probs.shape[-1] - 1)
        chosen[rows] = sorted_ids.gather(-1, picks).squeeze(-1)
        return chosen
