"""Coconut (Hao et al., 2024, arXiv 2412.06769): chain of continuous thought around any causal LM.

Between ``<bot>`` and ``<eot>`` the model does not read token embeddings: the input at each
``<latent>`` position is the last hidden state of the position before it. Thoughts are causal,
so a batch needs one forward pass per thought; each pass extends the KV cache by one column
(the first pass covers the whole prefix) and a last pass covers the language after the
thoughts. Training follows the curriculum of ``coconut.curriculum``, one asset per stage, each with a
fresh optimizer; inference decodes greedily after a fixed number of thoughts.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from s2d_assets.coconut.curriculum import IGNORE, SPECIAL_TOKENS, Example, TokenIds, collate

log = logging.getLogger(__name__)


@dataclass
class Coconut:
    model: Any  # a transformers causal LM
    ids: TokenIds

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, Any]:
        """Logits for every position of the batch, and the KV cache after the last position."""
        input_ids, mask, positions = batch["input_ids"], batch["attention_mask"], batch["position_ids"]
        embeds = self.model.get_input_embeddings()(input_ids)
        n_latent = (input_ids == self.ids.latent).sum(-1)
        start, carry, cache, logits = 0, None, None, []
        for j in range(int(n_latent.max()) if input_ids.numel() else 0):
            end = batch["thought_start"] + j  # the column of thought j in every row that has one
            chunk = embeds[:, start:end] if carry is None else torch.cat([carry, embeds[:, start + 1 : end]], 1)
            out = self.model(
                inputs_embeds=chunk,
                attention_mask=mask[:, :end],
                position_ids=positions[:, start:end],
                cache=cache,
                use_cache=True,
                output_hidden_states=True,
            )
            cache = out.cache
            logits.append(out.logits)
            thought = out.hidden_states[-1][:, -1:]  # the continuous thought for column `end`
            carry = torch.where((n_latent > j)[:, None, None], thought, embeds[:, end : end + 1])
            start = end
        rest = embeds[:, start:] if carry is None else torch.cat([carry, embeds[:, start + 1 :]], 1)
        out = self.model(
            inputs_embeds=rest,
            attention_mask=mask,
            position_ids=positions[:, start:],
            cache=cache,
            use_cache=True,
        )
        logits.append(out.logits)
        return torch.cat(logits, 1), out.cache

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        logits, _ = self.forward(batch)
        return F.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(), batch["labels"][:, 1:].flatten(), ignore_index=IGNORE
        )

    @torch.no_grad()
    def generate(self, batch: dict[str, Any], max_new_tokens: int) -> list[list[int]]:
        """Greedy continuation of each prompt (ending at ``<eos>``, which is included)."""
        if not bool(batch["attention_mask"][:, -1].all()):
            raise ValueError("prompts must end in the same column: build them with build_prompt (left padding only)")
        logits, cache = self.forward(batch)
        mask, position = batch["attention_mask"], batch["position_ids"][:, -1:]
        token = logits[:, -1].argmax(-1)
        outputs: list[list[int]] = [[] for _ in range(token.shape[0])]
        done = torch.zeros_like(token, dtype=torch.bool)
        for step in range(max_new_tokens):
            for row in (~done).nonzero().flatten().tolist():
                outputs[row].append(int(token[row]))
            done |= token == self.ids.eos
            if bool(done.all()) or step == max_new_tokens - 1:
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            position = position + 1
            out = self.model(
                input_ids=token[:, None],
                attention_mask=mask,
                position_ids=position,
                cache=cache,
                use_cache=True,
            )
            cache = out.cache
            token = out.logits[:, -1].argmax(-1)
        return outputs


def device_for(preference: str) -> torch.device:
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def load_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def load(model_dir: Path, device: torch.device) -> tuple[Coconut, Any]:
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device)
    return Coconut(model, TokenIds.of(tokenizer)), tokenizer


@dataclass(frozen=True)
class TrainConfig:
    epochs: float
    learning_rate: float
    batch_size: int
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 0
    device: str = "auto"
    threads: int = 1  # torch CPU threads; 0 = every core


def train(model_dir: Path, examples: Sequence[Example], config: TrainConfig, output_dir: Path) -> dict[str, float]:
    """Train from ``model_dir`` on ``examples`` with a fresh AdamW; save model and tokenizer to ``output_dir``."""
    if not examples:
        raise ValueError("cannot train on an empty set of Coconut examples")
    torch.set_num_threads(config.threads or os.cpu_count() or 1)
    torch.manual_seed(config.seed)
    device = device_for(config.device)
    coconut, tokenizer = load(model_dir, device)
    coconut.model.train()
    optimizer = torch.optim.AdamW(coconut.model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    rng = random.Random(config.seed)
    order = list(range(len(examples)))
    steps = math.ceil(config.epochs * len(examples) / config.batch_size)
    losses: list[float] = []
    batch_indices: list[int] = []
    started = time.perf_counter()
    for step in range(steps):
        while len(batch_indices) < config.batch_size:
            rng.shuffle(order)
            batch_indices += order
        chosen, batch_indices = batch_indices[: config.batch_size], batch_indices[config.batch_size :]
        batch = _to(collate([examples[i] for i in chosen], coconut.ids.pad), device)
        loss = coconut.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(coconut.model.parameters(), config.max_grad_norm)
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % 50 == 0 or step + 1 == steps:
            log.info("step %d/%d loss %.4f (%.0fs)", step + 1, steps, losses[-1], time.perf_counter() - started)
    coconut.model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    tail = losses[-max(1, len(losses) // 10) :]
    return {"train_steps": float(steps), "first_loss": losses[0], "final_loss": sum(tail) / len(tail)}


def generate_all(coconut: Coconut, prompts: Sequence[Example], max_new_tokens: int, batch_size: int) -> list[list[int]]:
    coconut.model.eval()
    device = next(coconut.model.parameters()).device
    outputs: list[list[int]] = []
    for first in range(0, len(prompts), batch_size):
        batch = _to(collate(prompts[first : first + batch_size], coconut.ids.pad), device)
        outputs += coconut.generate(batch, max_new_tokens)
    return outputs


# -- the starting model: any causal LM with the special tokens, or a small Llama from scratch ----------------------
def add_special_tokens(base_dir: Path, output_dir: Path) -> None:
    """Copy ``base_dir`` to ``output_dir`` with ``<bot>``, ``<eot>``, ``<latent>``, ``<pause>`` added."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS)})
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.resize_token_embeddings(len(tokenizer))
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)


@dataclass(frozen=True)
class ScratchConfig:
    hidden_size: int
    layers: int
    heads: int
    intermediate_size: int
    seed: int = 0


def scratch_model(texts: Sequence[str], config: ScratchConfig, output_dir: Path) -> None:
    """A word-level tokenizer over ``texts`` and a randomly initialised Llama sized by ``config``."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    pre = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(" ", behavior="removed"),
            pre_tokenizers.Split(Regex(r"\n"), behavior="isolated"),
            pre_tokenizers.Punctuation(behavior="isolated"),
        ]
    )
    words = sorted({piece for text in texts for piece, _ in pre.pre_tokenize_str(text)} | {"#", "\n"})
    specials = ["<pad>", "<unk>", "<eos>", *SPECIAL_TOKENS]
    vocab = {token: index for index, token in enumerate([*specials, *words])}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        pad_token="<pad>",
        unk_token="<unk>",
        eos_token="<eos>",
        additional_special_tokens=list(SPECIAL_TOKENS),
    )
    torch.manual_seed(config.seed)
    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.heads,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(llama)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
