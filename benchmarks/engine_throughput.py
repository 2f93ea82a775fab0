"""Throughput of the project's transformers engine against plain ``model.generate``, side by side.

Both run in one process, on the same model weights (same dtype), on the same prompts: the
Rephrase-and-Respond prompts of the project's two tasks, N samples each, sampling with the
experiment's temperature and top-p. Tokens are the generated tokens up to and including the
end-of-turn token, counted the same way for both.

    .venv/bin/python benchmarks/engine_throughput.py            # 64 prompts x 8 samples, 64 new tokens
    .venv/bin/python benchmarks/engine_throughput.py --prompts 8 --samples 2   # a quick look

The embedded model is provisioned into ``--models-dir`` once (about 30 s) and reused.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from s2d_assets.config.tasks import CoinFlipSpec, LastLetterSpec
from s2d_assets.core.base_models import provision_embedded
from s2d_assets.engines.base import GenerationRequest, SamplingParams, derive_seed
from s2d_assets.engines.hf import TransformersEngine, load_model, resolve_dtype
from s2d_assets.methods import method_definition
from s2d_assets.tasks import build_task


@dataclass
class Run:
    name: str
    tokens: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds

    def line(self) -> str:
        return f"{self.name:<38} {self.tokens:>7} tokens {self.seconds:>8.1f} s {self.rate:>8.1f} tok/s"


def questions(count: int) -> list[str]:
    """RaR one-step prompts over last-letter and coin-flip inputs, alternating."""
    half = (count + 1) // 2
    tasks = [
        build_task(LastLetterSpec(kind="last_letter", n_words=2, train_size=half, eval_size=1, seed=7)),
        build_task(CoinFlipSpec(kind="coin_flip", n_people=2, train_size=half, eval_size=1, seed=7)),
    ]
    step = method_definition("rar_1step").steps[0]
    per_task = [[step.render(i.prompt, {}) for i in t.build_inputs() if i.split == "train"] for t in tasks]
    mixed = [q for pair in zip(*per_task, strict=False) for q in pair]
    return mixed[:count]


def stop_ids(engine: TransformersEngine) -> set[int]:
    return engine.stop_ids


def count_generated(rows: torch.Tensor, stops: set[int]) -> int:
    """Generated tokens per row up to and including the first stop token."""
    total = 0
    for row in rows.tolist():
        for n, token in enumerate(row, start=1):
            if token in stops:
                total += n
                break
        else:
            total += len(row)
    return total


def plain_generate(
    engine: TransformersEngine, prompts: list[str], samples: int, params: SamplingParams, batch: int
) -> Run:
    """``model.generate`` with ``num_return_sequences``: each batch holds batch // samples prompts."""
    model, tokenizer = engine.model, engine.tokenizer
    per_call = max(1, batch // samples)
    tokens, started = 0, time.perf_counter()
    for start in range(0, len(prompts), per_call):
        texts = [engine.render(GenerationRequest.user(p, params)) for p in prompts[start : start + per_call]]
        encoded = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(
                **encoded,
                do_sample=not params.greedy,
                temperature=params.temperature if not params.greedy else None,
                top_p=params.top_p if not params.greedy else None,
                top_k=0,
                max_new_tokens=params.max_new_tokens,
                num_return_sequences=samples,
                pad_token_id=tokenizer.pad_token_id,
            )
        tokens += count_generated(out[:, encoded["input_ids"].shape[1] :], stop_ids(engine))
    return Run(f"model.generate (batch {per_call * samples})", tokens, time.perf_counter() - started)


def project_engine(engine: TransformersEngine, prompts: list[str], samples: int, params: SamplingParams) -> Run:
    requests = [
        GenerationRequest.user(p, params, sample_idx=s, seed=derive_seed(0, s, p))
        for p in prompts
        for s in range(samples)
    ]
    started = time.perf_counter()
    completions = engine.generate(requests)
    seconds = time.perf_counter() - started
    return Run(
        f"TransformersEngine (max batch {engine.max_batch})", sum(c.completion_tokens for c in completions), seconds
    )


def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"{model}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=Path("/tmp/s2d-bench-models"))
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--generate-batch", type=int, default=64, help="rows per model.generate call")
    parser.add_argument("--engine-batch", type=int, default=256, help="the engine's max decode batch")
    parser.add_argument("--rounds", type=int, default=2, help="alternate engine and generate in rounds (0 = skip)")
    parser.add_argument("--single", type=int, default=4, help="prompts for the batch-1 comparison (0 = skip)")
    args = parser.parse_args()

    base = provision_embedded(args.models_dir)
    dtype = resolve_dtype(args.dtype)
    model = load_model(base.path, dtype)
    from transformers import AutoTokenizer

    engine = TransformersEngine(
        model, AutoTokenizer.from_pretrained(base.path), base.fingerprint, max_batch=args.engine_batch
    )
    params = SamplingParams(args.temperature, args.top_p, args.new_tokens)
    prompts = questions(args.prompts)
    print(f"machine: {machine()}; dtype {dtype}; load average before: {load_average()}")
    print(f"work: {len(prompts)} prompts x {args.samples} samples, up to {args.new_tokens} new tokens")

    warm = SamplingParams(args.temperature, args.top_p, 4)
    project_engine(engine, prompts[:2], 2, warm)
    plain_generate(engine, prompts[:2], 2, warm, 4)

    if args.rounds:
        batched(engine, prompts, params, args)
    if args.single:
        single(engine, prompts[: args.single], params)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MiB; load average after: {load_average()}")


def batched(engine: TransformersEngine, prompts: list[str], params: SamplingParams, args: argparse.Namespace) -> None:
    # Alternate the two in rounds, so a change in the machine's load hits both alike.
    baseline = Run(f"model.generate (batch {args.generate_batch})", 0, 0.0)
    ours = Run(f"TransformersEngine (max batch {args.engine_batch})", 0, 0.0)
    per_round = -(-len(prompts) // args.rounds)
    for start in range(0, len(prompts), per_round):
        chunk = prompts[start : start + per_round]
        for total, run in (
            (baseline, plain_generate(engine, chunk, args.samples, params, args.generate_batch)),
            (ours, project_engine(engine, chunk, args.samples, params)),
        ):
            total.tokens += run.tokens
            total.seconds += run.seconds
        print(f"  round {start // per_round + 1}: load {load_average()}", flush=True)
    print(baseline.line())
    print(ours.line())
    print(f"ratio (engine / generate): {ours.rate / baseline.rate:.2f}x")


def single(engine: TransformersEngine, prompts: list[str], params: SamplingParams) -> None:
    """One sequence at a time, alternating the two prompt by prompt."""
    totals = {
        "generate": Run("model.generate (batch 1)", 0, 0.0),
        "engine": Run("TransformersEngine (batch 1)", 0, 0.0),
    }
    for prompt in prompts:
        for name, run in (
            ("generate", plain_generate(engine, [prompt], 1, params, 1)),
            ("engine", project_engine(engine, [prompt], 1, params)),
        ):
            totals[name].tokens += run.tokens
            totals[name].seconds += run.seconds
    print(totals["generate"].line())
    print(totals["engine"].line())
    print(f"ratio at batch 1 (engine / generate): {totals['engine'].rate / totals['generate'].rate:.2f}x")


if __name__ == "__main__":
    main()
