"""A batched transformers engine for CPU (and any torch device).

- One prefill per distinct prompt is shared by all of its samples (the prompt's KV-cache rows
  are copied for each sample).
- Requests are split into decode batches of at most ``max_batch`` rows, bucketed by prompt
  length so little padding is computed.
- The KV cache is preallocated per batch and written in place (``kv.PreallocatedLayer``).
- Finished rows leave the batch once enough of them have finished to make the copy worth it.
- Sampling is vectorised and each sequence's draws are a pure function of its seed
  (``sampling.py``), so a sample's text does not depend on what else shares its batch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from s2d_assets.core.hardware import generation_dtype_name
from s2d_assets.engines.base import Completion, GenerationRequest, require_adapter
from s2d_assets.engines.constrained import AnswerGrammars, RowMatchers
from s2d_assets.engines.kv import preallocated_cache
from s2d_assets.engines.sampling import sample, seed_words

# Drop finished rows from the batch when at least this share of the batch has finished.
COMPACT_FRACTION = 0.125


def resolve_dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[generation_dtype_name(name)]


def load_model(model_dir: Path, dtype: torch.dtype, adapter_dir: Path | None = None) -> PreTrainedModel:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    if adapter_dir is not None:
        from peft import PeftModel

        require_adapter(adapter_dir)

        model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    model.eval()
    return model


@dataclass
class _Prompt:
    text: str
    ids: list[int]
    rows: list[int]  # request indices that continue this prompt


def torch_threads() -> int:
    """Threads for CPU generation: ``$S2D_TORCH_THREADS`` when set, else every core.

    On a machine other processes keep busy, one thread can be several times faster than two
    (threads of one matrix multiply wait for each other at every step); see docs/benchmarks.md.
    """
    value = os.environ.get("S2D_TORCH_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else (os.cpu_count() or 1)


def _contiguous_inputs(module: torch.nn.Module, args: tuple[object, ...]) -> tuple[object, ...]:
    """The output head's input as a contiguous tensor.

    With ``logits_to_keep=1`` the head gets ``hidden[:, -1:, :]``, a strided view. On CPU a bf16
    linear layer over that view can take a path that materialises a (rows, vocabulary, hidden)
    intermediate: for 64 rows about 3.5 GB and several seconds per prefill (measured with a merged
    LoRA checkpoint, sometimes with the base model too). The contiguous copy is 64 x 576 values.
    """
    return tuple(a.contiguous() if isinstance(a, torch.Tensor) else a for a in args)


def chat_text(tokenizer: Any, messages: Sequence[tuple[str, str]]) -> str:
    """The chat as the model's chat template renders it for generation: a new assistant turn opened, or,
    when the last message is the assistant's (a continuation), that message left open for the model to go on.

    The one rendering of a prompt: the engine generates from it and a taught System 2 is trained on it.
    """
    chat = [{"role": role, "content": content} for role, content in messages]
    if messages[-1][0] == "assistant":
        return tokenizer.apply_chat_template(
            chat, continue_final_message=True, add_generation_prompt=False, tokenize=False
        )
    return tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)


class TransformersEngine:
    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        fingerprint: str,
        threads: int | None = None,
        max_batch: int = 256,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self._fingerprint = fingerprint
        self.max_batch = max_batch
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.stop_ids = self._stop_ids()
        self._grammars: AnswerGrammars | None = None  # xgrammar, compiled on the first constrained request
        self._stop_tensor = torch.tensor(sorted(self.stop_ids), dtype=torch.long)
        torch.set_num_threads(threads or torch_threads())
        head = model.get_output_embeddings()
        if head is not None:  # the prefill's last-position slice, made contiguous (see _contiguous_inputs)
            head.register_forward_pre_hook(_contiguous_inputs)

    @classmethod
    def from_dir(
        cls,
        model_dir: Path,
        fingerprint: str,
        dtype: str = "auto",
        adapter_dir: Path | None = None,
        max_batch: int = 256,
    ) -> TransformersEngine:
        tokenizer = AutoTokenizer.from_pretrained(adapter_dir if adapter_dir else model_dir)
        model = load_model(model_dir, resolve_dtype(dtype), adapter_dir)
        return cls(model, tokenizer, fingerprint, max_batch=max_batch)

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

    def _answer_rows(self, requests: Sequence[GenerationRequest]) -> RowMatchers | None:
        if all(request.answer_set is None for request in requests):
            return None
        if self._grammars is None:
            self._grammars = AnswerGrammars(self.tokenizer, self.stop_ids, int(self.model.config.vocab_size))
        return self._grammars.rows(requests)

    def render(self, request: GenerationRequest) -> str:
        return chat_text(self.tokenizer, request.messages)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        if not requests:
            return []
        started = time.perf_counter()
        prompts: dict[str, _Prompt] = {}
        for index, request in enumerate(requests):
            text = self.render(request)
            if text not in prompts:
                prompts[text] = _Prompt(text, [], [])
            prompts[text].rows.append(index)
        encoded = self.tokenizer([p.text for p in prompts.values()], add_special_tokens=False)["input_ids"]
        for prompt, ids in zip(prompts.values(), encoded, strict=True):
            prompt.ids = ids
        outputs: list[list[int]] = [[] for _ in requests]
        for batch in self._plan(list(prompts.values())):
            self._generate_batch(batch, requests, outputs)
        seconds = (time.perf_counter() - started) / len(requests)
        prompt_tokens = {row: len(p.ids) for p in prompts.values() for row in p.rows}
        return [
            Completion(
                text=self.tokenizer.decode(
                    [t for t in tokens if t not in self.stop_ids], skip_special_tokens=True
                ).strip(),
                prompt_tokens=prompt_tokens[index],
                completion_tokens=len(tokens),
                seconds=seconds,
                # cut at max_new_tokens unless its last token is a stop token
                finish_reason="stop" if tokens and tokens[-1] in self.stop_ids else "length",
            )
            for index, tokens in enumerate(outputs)
        ]

    def _plan(self, prompts: list[_Prompt]) -> list[list[_Prompt]]:
        """Length buckets: prompts sorted by length fill batches of at most ``max_batch`` rows."""
        batches: list[list[_Prompt]] = []
        current: list[_Prompt] = []
        size = 0
        for prompt in sorted(prompts, key=lambda p: len(p.ids)):
            for start in range(0, len(prompt.rows), self.max_batch):
                part = _Prompt(prompt.text, prompt.ids, prompt.rows[start : start + self.max_batch])
                if size + len(part.rows) > self.max_batch:
                    batches.append(current)
                    current, size = [], 0
                current.append(part)
                size += len(part.rows)
        if current:
            batches.append(current)
        return batches

    @torch.inference_mode()
    def _generate_batch(
        self, batch: list[_Prompt], requests: Sequence[GenerationRequest], outputs: list[list[int]]
    ) -> None:
        device = self.model.device
        pad = int(self.tokenizer.pad_token_id)
        width = max(len(p.ids) for p in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for i, prompt in enumerate(batch):  # left padding
            input_ids[i, width - len(prompt.ids) :] = torch.tensor(prompt.ids)
            attention[i, width - len(prompt.ids) :] = 1

        rows = [row for prompt in batch for row in prompt.rows]  # request index of each batch row
        row_prompt = torch.tensor([i for i, prompt in enumerate(batch) for _ in prompt.rows])
        batch_requests = [requests[row] for row in rows]
        budgets = torch.tensor([r.params.max_new_tokens for r in batch_requests])
        steps = int(budgets.max())
        temperature = torch.tensor([r.params.temperature for r in batch_requests], dtype=torch.float32)
        top_p = torch.tensor([r.params.top_p for r in batch_requests], dtype=torch.float32)
        words = seed_words([r.seed for r in batch_requests])
        answers = self._answer_rows(batch_requests)  # constrained rows' grammars (engines/constrained.py)

        # Attention mask and positions for the whole decode, written column by column.
        mask = torch.zeros((len(batch), width + steps), dtype=torch.long)
        mask[:, :width] = attention
        cache = preallocated_cache(self.model.config.num_hidden_layers, width + steps)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        logits = self.model(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            position_ids=positions.to(device),
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1, :]
        # Share the prefill: every sample row starts from its prompt's cache rows.
        cache.batch_select_indices(row_prompt.to(device))
        logits = logits[row_prompt.to(device)]
        mask = mask[row_prompt]
        next_position = attention.sum(-1)[row_prompt]

        tokens = torch.zeros((len(rows), steps), dtype=torch.long)  # generated ids per batch row
        lengths = torch.zeros(len(rows), dtype=torch.long)
        alive = torch.arange(len(rows))  # batch row of each row still in the model's batch
        done = torch.zeros(len(rows), dtype=torch.bool)  # per batch row
        for step in range(steps):
            active = ~done[alive]
            if answers is not None:
                answers.mask(logits, alive)
            chosen = sample(logits, temperature[alive], top_p[alive], words[alive], step).cpu()
            live = alive[active]
            if answers is not None:
                answers.accept(live, chosen[active])
            tokens[live, step] = chosen[active]
            lengths[live] += 1
            finished = torch.isin(chosen, self._stop_tensor) | (step + 1 >= budgets[alive])
            done[alive] |= finished
            if bool(done.all()):
                break
            still = ~done[alive]
            if int((~still).sum()) >= max(1, int(COMPACT_FRACTION * alive.numel())):
                keep = still.nonzero().squeeze(-1)
                cache.batch_select_indices(keep.to(device))
                alive, chosen, mask, next_position = alive[keep], chosen[keep], mask[keep], next_position[keep]
            mask[:, width + step] = 1
            logits = self.model(
                input_ids=chosen[:, None].to(device),
                attention_mask=mask[:, : width + step + 1].to(device),
                position_ids=next_position[:, None].to(device),
                cache=cache,
                use_cache=True,
            ).logits[:, -1, :]
            next_position = next_position + 1

        for batch_row, request_index in enumerate(rows):
            outputs[request_index] = tokens[batch_row, : int(lengths[batch_row])].tolist()


def from_spec(spec: Any, model_dir: Path, fingerprint: str, adapter_dir: Path | None) -> TransformersEngine:
    """The engine of ``engine.kind: transformers`` (its registry entry, ``config/engine.py``)."""
    return TransformersEngine.from_dir(
        model_dir, fingerprint, dtype=spec.dtype, adapter_dir=adapter_dir, max_batch=spec.batch_size
    )
