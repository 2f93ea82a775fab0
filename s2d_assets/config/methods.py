"""The method registry: each method kind an experiment's ``methods.<name>.kind`` may name.

Each kind's implementation is a ``MethodDefinition`` in ``s2d_assets/methods/``, named by its import
path, so config imports nothing above it. The experiment's validators read a kind's steps, slots and
answer stage through ``METHODS.implementation(kind)``, which imports that module on first use.
"""

from __future__ import annotations

from typing import Any

from s2d_assets.config.registry import Registry

METHODS: Registry[Any] = Registry("method")
METHODS.register("s2d_assets.methods.system1:SYSTEM1", kind="system1")
METHODS.register("s2d_assets.methods.rar:RAR_1STEP", kind="rar_1step")
METHODS.register("s2d_assets.methods.rar:RAR_2STEP", kind="rar_2step")
METHODS.register("s2d_assets.methods.cot:COT_ZERO_SHOT", kind="cot_zero_shot")
METHODS.register("s2d_assets.methods.cot:COT_FEW_SHOT", kind="cot_few_shot")
METHODS.register("s2d_assets.methods.s2a:S2A", kind="s2a")
METHODS.register("s2d_assets.methods.s2a:S2A_SINGLE", kind="s2a_single")
METHODS.register("s2d_assets.methods.s2a:S2A_KEEP_ORIG", kind="s2a_keep_orig")
METHODS.register("s2d_assets.methods.s2a:S2A_NI", kind="s2a_ni")
METHODS.register("s2d_assets.methods.s2a:S2A_RELEVANCE", kind="s2a_relevance")
METHODS.register("s2d_assets.methods.bsm:BSM", kind="bsm")
