"""The output head sees a contiguous input: a strided last-position slice can cost gigabytes on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from s2d_assets.engines.base import GenerationRequest, SamplingParams
from s2d_assets.engines.hf import TransformersEngine


@pytest.mark.timeout(60)
def test_head_input_is_contiguous_in_prefill_and_decode(tiny_model_dir: Path) -> None:
    engine = TransformersEngine.from_dir(tiny_model_dir, "tiny", dtype="float32")
    seen: list[tuple[tuple[int, ...], bool]] = []

    def record(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        seen.append((tuple(args[0].shape), args[0].is_contiguous()))

    handle = engine.model.get_output_embeddings().register_forward_pre_hook(record)  # runs after the engine's
    try:
        params = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=3)
        prompts = ["A coin is heads up. Ann flips the coin. Is the coin still heads up?", "Elon Musk"]
        engine.generate([GenerationRequest.user(p, params) for p in prompts])
    finally:
        handle.remove()
    assert seen and all(contiguous for _, contiguous in seen)
    assert seen[0][0][:2] == (2, 1)  # the prefill keeps the last position only
