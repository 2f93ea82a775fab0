"""training.workers: 2 runs the same TRL SFT under Ray Train (gloo on CPU), and its checkpoint is the
single-process one: same files, same weights within float tolerance, same answers."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from s2d_assets import distill
from s2d_assets.config.experiment import parse_experiment
from s2d_assets.core.checkpoints import read_manifest
from s2d_assets.core.paths import StatePaths
from s2d_assets.engines.base import GenerationRequest, SamplingParams
from s2d_assets.engines.hf import TransformersEngine
from s2d_assets_tests.conftest import tiny_experiment_data
from s2d_assets_tests.ray_support import NO_RAY, ray_cluster  # noqa: F401  (the session's cluster)

pytest.importorskip("ray", reason=NO_RAY)
pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]

# Eight examples: two steps of the global batch of 4 per epoch, two examples per worker per step.
PAIRS = [("Elon", "Musk"), ("Ann", "Bob"), ("Kim", "Lee"), ("Tom", "Sue"), ("Max", "Eva"), ("Ray", "Joe"),
         ("Ada", "Lin"), ("Ben", "Kai")]  # fmt: skip
EXAMPLES = [(f'Take the last letters of the words in "{a} {b}" and concatenate them.', a[-1] + b[-1]) for a, b in PAIRS]
# Large steps, so the adapter moves measurably away from its initialisation in two epochs.
TRAINING = {"mode": "lora", "epochs": 2, "batch_size": 4, "learning_rate": 0.005, "max_length": 256,
            "lora_r": 4, "lora_alpha": 8, "precision": "fp32"}  # fmt: skip


def train(model_dir: Path, state: Path, workers: int) -> tuple[distill.StageContext, Path, dict]:
    data = tiny_experiment_data(model_dir, training={**TRAINING, "workers": workers})
    ctx = distill.StageContext(parse_experiment(data), StatePaths(state))
    frame = pl.DataFrame(
        {
            "task": "last_letter",
            "method": "rar_1step",
            "input_id": [f"i{n}" for n in range(len(EXAMPLES))],
            "prompt": [prompt for prompt, _ in EXAMPLES],
            "completion": [answer for _, answer in EXAMPLES],
        }
    )
    ctx.warehouse.replace_rows("distillation_set", {"task": "last_letter", "method": "rar_1step"}, frame)
    result = distill.train_checkpoint(ctx, "last_letter", "rar_1step", ctx.base_model(), {})
    return ctx, Path(result.metadata["path"]), result.metadata


def answer_loss(model_dir: Path, checkpoint: Path | None) -> float:
    """Mean teacher-forced loss of the distillation examples (prompt and answer in the chat template)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if checkpoint is not None:
        model = PeftModel.from_pretrained(model, checkpoint)
    total = 0.0
    for prompt, answer in EXAMPLES:
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            total += float(model(input_ids=ids, labels=ids).loss)
    return total / len(EXAMPLES)


def answers(model_dir: Path, checkpoint: Path) -> list[str]:
    engine = TransformersEngine.from_dir(model_dir, "f", dtype="float32", adapter_dir=checkpoint)
    greedy = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=12)
    return [c.text for c in engine.generate([GenerationRequest.user(p, greedy) for p, _ in EXAMPLES])]


@pytest.mark.usefixtures("ray_cluster")
def test_two_worker_ray_train_checkpoint_loads_and_evaluates_like_single_process(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import torch
    from safetensors.torch import load_file

    _, single, single_meta = train(tiny_model_dir, tmp_path / "single", workers=1)
    _, on_ray, ray_meta = train(tiny_model_dir, tmp_path / "ray", workers=2)

    assert ray_meta["workers"] == 2 and "workers" not in single_meta
    assert ray_meta["train_steps"] == single_meta["train_steps"]  # 2 x 2 per step = the global batch of 4
    assert ray_meta["train_loss"] == pytest.approx(single_meta["train_loss"], rel=1e-3)
    files = {p.name for p in on_ray.iterdir()}
    assert files == {p.name for p in single.iterdir()} and "adapter_model.safetensors" in files
    assert read_manifest(on_ray)["mode"] == "lora"
    trained, reference = (load_file(str(c / "adapter_model.safetensors")) for c in (on_ray, single))
    assert trained.keys() == reference.keys()
    for name, tensor in trained.items():
        torch.testing.assert_close(tensor, reference[name], rtol=1e-3, atol=1e-4, msg=name)
    assert any(float(t.abs().max()) > 0 for n, t in trained.items() if "lora_B" in n), "the adapter was trained"
    # Evaluated the same way, it scores like the single-process checkpoint, and both learned.
    base, distilled, distilled_on_ray = (answer_loss(tiny_model_dir, c) for c in (None, single, on_ray))
    assert distilled_on_ray == pytest.approx(distilled, rel=1e-3) and distilled < base
    assert answers(tiny_model_dir, on_ray) == answers(tiny_model_dir, single)
    assert not list((tmp_path / "ray" / "state" / "ray" / "train").glob("sft-*")), "the Ray Train run is removed"
