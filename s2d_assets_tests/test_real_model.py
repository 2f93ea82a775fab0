"""The real embedded model: provisioning from its package and a few real generations (slow)."""

from __future__ import annotations

import pytest

from s2d_assets.config.tasks import CoinFlipSpec
from s2d_assets.core.base_models import fingerprint_dir, provision_embedded
from s2d_assets.engines.base import GenerationRequest, SamplingParams
from s2d_assets.engines.hf import TransformersEngine
from s2d_assets.methods import SYSTEM1
from s2d_assets.tasks import build_task

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return provision_embedded(tmp_path_factory.mktemp("models"))


def test_provisioning_gives_a_plain_hf_directory(smollm2) -> None:  # type: ignore[no-untyped-def]
    assert (smollm2.path / "model.safetensors").stat().st_size > 200_000_000
    assert (smollm2.path / "tokenizer.json").exists()
    assert fingerprint_dir(smollm2.path) == smollm2.fingerprint
    # Provisioning again reuses the directory.
    assert provision_embedded(smollm2.path.parent).fingerprint == smollm2.fingerprint


def test_smollm2_answers_coin_flips_in_a_parseable_way(smollm2) -> None:  # type: ignore[no-untyped-def]
    engine = TransformersEngine.from_dir(smollm2.path, smollm2.fingerprint)
    task = build_task(CoinFlipSpec(kind="coin_flip", n_people=1, train_size=1, eval_size=8, seed=1))
    items = [i for i in task.build_inputs() if i.split == "eval"]
    params = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=16)
    outputs = engine.generate([GenerationRequest.user(SYSTEM1.steps[0].render(i.prompt, {}), params) for i in items])
    parsed = [task.parse_answer(o.text, i.meta) for o, i in zip(outputs, items, strict=True)]
    assert sum(p is not None for p in parsed) >= 6, [o.text for o in outputs]
    assert all(0 < o.completion_tokens <= 16 for o in outputs)
    assert all(o.prompt_tokens > 20 for o in outputs)  # the chat template's system prompt is counted


def test_constrained_system1_leaves_no_coin_flip_unparsed(smollm2) -> None:  # type: ignore[no-untyped-def]
    # System 1 with answer: constrained, through the runner as the pipeline calls it: every answer is yes or no.
    from s2d_assets.core.answer_set import CONSTRAINED
    from s2d_assets.methods import system1_for
    from s2d_assets.methods.runner import Chain, run_method
    from s2d_assets.tasks.base import answer_set

    engine = TransformersEngine.from_dir(smollm2.path, smollm2.fingerprint)
    task = build_task(CoinFlipSpec(kind="coin_flip", n_people=3, train_size=1, eval_size=64, seed=2))
    items = [i for i in task.build_inputs() if i.split == "eval"]
    chains = [Chain(i.input_id, i.prompt, answer_set=answer_set(task, i.meta)) for i in items]
    results = run_method(system1_for(task.judges_pairs, CONSTRAINED), chains, engine, 0.0, 1.0, seed=0)
    parsed = [task.parse_answer(r.output, i.meta) for r, i in zip(results, items, strict=True)]
    assert len(items) == 64
    assert parsed.count(None) == 0, [r.output for r in results]
    assert {r.output for r in results} <= {"yes", "no"}
