"""The *Distilling System 2 into System 1* paper, one file per stage, as plain Python (no Dagster).

inputs -> perturb -> generate -> curate -> dataset -> train -> evaluate, each a function of a
``StageContext`` that reads its upstream tables, calls the science and replaces its own rows.
"""

from s2d_assets.distill.context import EngineFactory, StageContext
from s2d_assets.distill.curate import curate
from s2d_assets.distill.dataset import build_distillation_set
from s2d_assets.distill.evaluate import evaluate
from s2d_assets.distill.generate import SYSTEM1_BASELINE, generate_system1_baseline, generate_system2
from s2d_assets.distill.inputs import write_inputs
from s2d_assets.distill.perturb import write_perturbed_inputs
from s2d_assets.distill.train import train_checkpoint

__all__ = [
    "SYSTEM1_BASELINE",
    "EngineFactory",
    "StageContext",
    "build_distillation_set",
    "curate",
    "evaluate",
    "generate_system1_baseline",
    "generate_system2",
    "train_checkpoint",
    "write_inputs",
    "write_perturbed_inputs",
]
