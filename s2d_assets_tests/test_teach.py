"""A taught System 2: the base model is fine-tuned on programmatic traces of disjoint inputs, then used as the base."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2d_assets.config.experiment import parse_experiment
from s2d_assets.core.paths import StatePaths
from s2d_assets.distill.context import StageContext
from s2d_assets.distill.teach import TeachingError, teaching_examples
from s2d_assets.methods.runner import CONTINUATION_SEPARATOR
from s2d_assets.tasks.coin_flip import CoinFlipTask
from s2d_assets_tests.conftest import tiny_experiment_data

TEACH = {
    "tasks": {"coin_flip_3": {"kind": "coin_flip", "n_people": 3, "train_size": 8, "eval_size": 1, "name_pool": 50}},
    "training": {"mode": "lora", "epochs": 1, "batch_size": 4, "max_length": 256, "lora_r": 4, "lora_alpha": 8},
}


def _experiment(model_dir: Path, teach: dict) -> object:
    data = tiny_experiment_data(model_dir)
    data["model"] = {**data["model"], "teach": teach}
    return parse_experiment(data)


def test_coin_flip_trace_states_each_flip_and_the_parity() -> None:
    task = CoinFlipTask.__new__(CoinFlipTask)
    trace = task.teaching_trace({"names": ["Ann", "Bob", "Cy"], "flips": [True, False, True]})
    assert trace == (
        "The coin starts heads up. Ann flips the coin, so it is now tails up. "
        "Bob does not flip the coin, so it is still tails up. Cy flips the coin, so it is now heads up. "
        "The coin ends heads up."
    )
    assert task.teaching_trace({"names": ["Ann"], "flips": [True]}).endswith("The coin ends tails up.")


def test_teaching_examples_teach_each_stage_in_the_chat_the_runner_sends(tiny_model_dir: Path) -> None:
    experiment = _experiment(tiny_model_dir, TEACH)
    examples = teaching_examples(experiment.model.teach, [])
    assert len(examples) == 16  # two lessons for each train input of the teaching task, none of its eval split
    for (reason_chat, trace), (answer_chat, answer) in zip(examples[::2], examples[1::2], strict=True):
        # First stage: the trace alone ends the assistant's turn (the extraction cue is the runner's to add).
        ((role, prompt),) = reason_chat
        assert role == "user" and prompt.startswith("A coin is heads up.") and "Let's think step by step." in prompt
        assert trace.startswith("The coin starts heads up.") and "Therefore" not in trace
        # Answer stage: the runner continues the assistant's own turn after the cue; the lesson completes it.
        assert answer_chat == (
            ("user", prompt),
            ("assistant", trace + CONTINUATION_SEPARATOR + "Therefore, the answer (yes or no) is"),
        )
        assert answer in (" yes.", " no.")
        assert (answer == " yes.") == trace.endswith("The coin ends heads up.")


def test_continuation_lessons_train_on_the_text_the_engine_generates_from(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    from s2d_assets.distill.sft import to_dataset
    from s2d_assets.engines.base import GenerationRequest, SamplingParams
    from s2d_assets.engines.hf import TransformersEngine

    experiment = _experiment(tiny_model_dir, TEACH)
    examples = teaching_examples(experiment.model.teach, [])[:2]
    engine = TransformersEngine.from_dir(tiny_model_dir, "tiny")
    records = to_dataset(examples, AutoTokenizer.from_pretrained(tiny_model_dir))
    for record, (chat, completion) in zip(records, examples, strict=True):
        request = GenerationRequest(messages=chat, params=SamplingParams(0.0, 1.0, 4))
        assert record["prompt"] == engine.render(request) and record["completion"] == completion
    assert engine.render(GenerationRequest(messages=examples[1][0], params=SamplingParams(0.0, 1.0, 4))).endswith(" is")


def test_teaching_inputs_that_overlap_the_experiments_are_refused(tiny_model_dir: Path) -> None:
    experiment = _experiment(tiny_model_dir, TEACH)
    overlap = experiment.model.teach.tasks["coin_flip_3"]
    own = CoinFlipTask(overlap).build_inputs()[0].prompt
    with pytest.raises(TeachingError, match=r"model\.teach\.tasks\.coin_flip_3: input .* is also one of"):
        teaching_examples(experiment.model.teach, [own])


def test_taught_model_becomes_the_base_and_is_built_once(tiny_model_dir: Path, tmp_path: Path) -> None:
    experiment = _experiment(tiny_model_dir, TEACH)
    ctx = StageContext(experiment, StatePaths(tmp_path / "state"))
    taught = ctx.base_model()
    assert taught.path.is_relative_to(tmp_path / "state" / "models" / "taught")
    assert (taught.path / "config.json").is_file() and not (taught.path / "adapter_config.json").exists()
    card = json.loads((taught.path / "s2d_checkpoint.json").read_text())
    assert card["kind"] == "taught" and card["lessons"] == 16
    # The taught weights differ from the base's, and the fingerprint says so.
    plain = StageContext(parse_experiment(tiny_experiment_data(tiny_model_dir)), StatePaths(tmp_path / "plain"))
    assert taught.fingerprint != plain.base_model().fingerprint
    # A second context reuses the folder (no second training: same path, same fingerprint).
    again = StageContext(experiment, StatePaths(tmp_path / "state")).base_model()
    assert (again.path, again.fingerprint) == (taught.path, taught.fingerprint)
    # Other teaching data is another taught model.
    other = {**TEACH, "tasks": {"c": {**TEACH["tasks"]["coin_flip_3"], "seed": 5}}}
    changed = StageContext(_experiment(tiny_model_dir, other), StatePaths(tmp_path / "state")).base_model()
    assert changed.fingerprint != taught.fingerprint
