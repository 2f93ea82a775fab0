"""The vLLM engine's keywords and the project's vLLM validators, checked against the pinned wheel.

The wheel's sources are read from the zip and parsed with ``ast``: vLLM is neither installed nor
imported (it needs a GPU, CUDA torch and many packages). ``make vllm-wheel`` downloads the wheel
once into ``.venv/wheels/``; ``S2D_VLLM_WHEEL`` points elsewhere (the wheel or its folder). Without
it the test fails, saying how to fetch it, unless ``S2D_SKIP_VLLM_WHEEL=1``.

It also keeps the stand-in ``vllm`` (``fake_vllm/``) honest: everything the stand-in accepts, vLLM
accepts, so an adapter that runs against the stand-in sends nothing vLLM would refuse.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import tomllib
import zipfile
from functools import cache
from pathlib import Path

import pytest

from s2d_assets.config.engine import VLLM_LORA_RANKS, VLLM_MAX_TEMPERATURE
from s2d_assets.engines.vllm_engine import (
    FAILED_FINISH_REASONS,
    TESTED_VLLM_VERSION,
    EngineArgs,
    LoRAArgs,
    SamplingArgs,
    StructuredOutputsArgs,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[1]
STAND_IN = Path(__file__).parent / "fake_vllm" / "vllm"
WHEEL_DIR = ROOT / ".venv" / "wheels"
FETCH = f"make vllm-wheel (or: pip download vllm=={TESTED_VLLM_VERSION} --no-deps -d {WHEEL_DIR})"
# The keywords VLLMEngine.generate passes to LLM.chat.
CHAT_KEYWORDS = {"sampling_params", "lora_request", "add_generation_prompt", "continue_final_message", "use_tqdm"}


def wheel_path() -> Path | None:
    override = os.environ.get("S2D_VLLM_WHEEL")
    where = Path(override) if override else WHEEL_DIR
    if where.is_file():
        return where
    found = sorted(where.glob(f"vllm-{TESTED_VLLM_VERSION}-*.whl")) if where.is_dir() else []
    return found[0] if found else None


@cache
def _wheel() -> zipfile.ZipFile:
    path = wheel_path()
    if path is None:
        if os.environ.get("S2D_SKIP_VLLM_WHEEL") == "1":
            pytest.skip("S2D_SKIP_VLLM_WHEEL=1: the vLLM signature test is skipped")
        pytest.fail(
            f"the vLLM {TESTED_VLLM_VERSION} wheel is not in {os.environ.get('S2D_VLLM_WHEEL') or WHEEL_DIR}; "
            f"fetch it with: {FETCH} (or set S2D_SKIP_VLLM_WHEEL=1 to skip this test)",
            pytrace=False,
        )
    return zipfile.ZipFile(path)


@cache
def source(path: str) -> ast.Module:
    """The module at ``path`` inside the wheel, parsed."""
    return ast.parse(_wheel().read(path).decode(), filename=path)


def stand_in(path: str) -> ast.Module:
    return ast.parse((STAND_IN / path).read_text(), filename=path)


def find_class(module: ast.Module, name: str) -> ast.ClassDef:
    for node in ast.walk(module):
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise AssertionError(f"class {name} not found")


def find_method(cls: ast.ClassDef, name: str) -> ast.FunctionDef:
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise AssertionError(f"{cls.name}.{name} not found")


def parameters(function: ast.FunctionDef) -> tuple[set[str], bool]:
    """Keyword-passable parameter names, and whether it takes ``**kwargs``."""
    args = function.args
    names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]} - {"self"}
    return names, args.kwarg is not None


def class_fields(cls: ast.ClassDef) -> set[str]:
    """Annotated class attributes: the fields of a dataclass or a msgspec Struct."""
    return {
        node.target.id
        for node in cls.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and not node.target.id.startswith("_")
    }


def assigned(module: ast.Module, name: str) -> ast.expr:
    for node in ast.walk(module):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return node.value
        if isinstance(node, ast.AnnAssign) and ast.unparse(node.target) == name and node.value is not None:
            return node.value
    raise AssertionError(f"{name} is not assigned")


def self_attribute_comparisons(function: ast.FunctionDef, attribute: str) -> list[tuple[type, object]]:
    """(operator, constant) of every ``self.<attribute> <op> <constant>`` in ``function``."""
    found = []
    for node in ast.walk(function):
        if (
            isinstance(node, ast.Compare)
            and isinstance(node.left, ast.Attribute)
            and node.left.attr == attribute
            and len(node.ops) == 1
            and isinstance(node.comparators[0], ast.Constant)
        ):
            found.append((type(node.ops[0]), node.comparators[0].value))
    return found


def emitted(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


# -- what the adapter emits is what vLLM accepts ----------------------------------------------------


def test_the_wheel_is_the_pinned_vllm() -> None:
    assert Path(_wheel().filename or "").name.startswith(f"vllm-{TESTED_VLLM_VERSION}-")
    metadata = _wheel().read(f"vllm-{TESTED_VLLM_VERSION}.dist-info/METADATA").decode()
    assert f"\nVersion: {TESTED_VLLM_VERSION}\n" in metadata
    gpu = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]
    assert f"vllm=={TESTED_VLLM_VERSION}" in gpu, "the gpu extra pins the vLLM these tests check"
    assert re.search(rf"^VLLM_VERSION\s*:=\s*{re.escape(TESTED_VLLM_VERSION)}$", (ROOT / "Makefile").read_text(), re.M)


def test_llm_and_engine_args_accept_every_engine_argument() -> None:
    init_params, takes_kwargs = parameters(
        find_method(find_class(source("vllm/entrypoints/llm.py"), "LLM"), "__init__")
    )
    assert takes_kwargs, "LLM.__init__ forwards the rest to EngineArgs"
    engine_fields = class_fields(find_class(source("vllm/engine/arg_utils.py"), "EngineArgs"))
    accepted = init_params | engine_fields
    assert emitted(EngineArgs) <= accepted, emitted(EngineArgs) - accepted
    for name in ("enable_lora", "max_lora_rank", "enable_prefix_caching", "max_model_len", "max_num_seqs"):
        assert name in engine_fields
    # The stand-in accepts nothing vLLM does not.
    stand_in_args = ast.literal_eval(assigned(stand_in("entrypoints/llm.py"), "ENGINE_ARGS").args[0])  # type: ignore[attr-defined]
    stand_in_params, _ = parameters(find_method(find_class(stand_in("entrypoints/llm.py"), "LLM"), "__init__"))
    assert stand_in_args | stand_in_params <= accepted


def test_llm_chat_accepts_the_adapters_keywords() -> None:
    llm = find_class(source("vllm/entrypoints/llm.py"), "LLM")
    chat, takes_kwargs = parameters(find_method(llm, "chat"))
    assert chat >= CHAT_KEYWORDS and not takes_kwargs
    assert parameters(find_method(find_class(stand_in("entrypoints/llm.py"), "LLM"), "chat"))[0] <= chat
    # The registry shuts an LLM down through llm.llm_engine.engine_core.shutdown().
    init = find_method(llm, "__init__")
    assert any(
        isinstance(n, ast.Attribute) and n.attr == "llm_engine" and isinstance(n.ctx, ast.Store) for n in ast.walk(init)
    )
    llm_engine = find_class(source("vllm/v1/engine/llm_engine.py"), "LLMEngine")
    assert any(
        isinstance(n, ast.Attribute) and n.attr == "engine_core" and isinstance(n.ctx, ast.Store)
        for n in ast.walk(llm_engine)
    )
    find_method(find_class(source("vllm/v1/engine/core_client.py"), "EngineCoreClient"), "shutdown")


def test_sampling_params_accept_every_sampling_argument() -> None:
    fields = class_fields(find_class(source("vllm/sampling_params.py"), "SamplingParams"))
    assert emitted(SamplingArgs) <= fields, emitted(SamplingArgs) - fields
    defaults = ast.literal_eval(assigned(stand_in("sampling_params.py"), "_DEFAULTS"))
    assert set(defaults) <= fields


def test_structured_outputs_accept_every_constraint_argument() -> None:
    fields = class_fields(find_class(source("vllm/sampling_params.py"), "StructuredOutputsParams"))
    assert emitted(StructuredOutputsArgs) <= fields, emitted(StructuredOutputsArgs) - fields
    assert "structured_outputs" in class_fields(find_class(source("vllm/sampling_params.py"), "SamplingParams"))


def test_lora_request_fields() -> None:
    fields = class_fields(find_class(source("vllm/lora/request.py"), "LoRARequest"))
    assert emitted(LoRAArgs) <= fields
    assert class_fields(find_class(stand_in("lora/request.py"), "LoRARequest")) == fields


def test_outputs_have_what_the_adapter_reads() -> None:
    outputs = source("vllm/outputs.py")
    completion = class_fields(find_class(outputs, "CompletionOutput"))
    assert {"text", "token_ids", "finish_reason"} <= completion
    request, _ = parameters(find_method(find_class(outputs, "RequestOutput"), "__init__"))
    assert {"prompt_token_ids", "outputs"} <= request
    reasons = set(ast.literal_eval(assigned(source("vllm/v1/engine/__init__.py"), "FINISH_REASON_STRINGS")))
    assert {"stop", "length"} <= reasons and reasons >= FAILED_FINISH_REASONS


def test_vllm_exports_llm_and_sampling_params() -> None:
    module = source("vllm/__init__.py")
    exported = {
        node.value
        for node in ast.walk(module)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and ":" in node.value
    }
    assert {".entrypoints.llm:LLM", ".sampling_params:SamplingParams"} <= exported


# -- the project's validators mirror vLLM's ---------------------------------------------------------


def test_lora_ranks_mirror_vllm() -> None:
    ranks = assigned(source("vllm/config/lora.py"), "MaxLoRARanks")
    assert isinstance(ranks, ast.Subscript) and ast.unparse(ranks.value) == "Literal"
    vllm_ranks = ast.literal_eval(ranks.slice)
    assert tuple(vllm_ranks) == VLLM_LORA_RANKS
    arg_utils = find_class(source("vllm/engine/arg_utils.py"), "EngineArgs")
    annotation = next(
        n.annotation
        for n in arg_utils.body
        if isinstance(n, ast.AnnAssign) and ast.unparse(n.target) == "max_lora_rank"
    )
    assert ast.unparse(annotation) == "MaxLoRARanks"
    # vLLM refuses an adapter whose rank is above max_lora_rank when it loads it (PEFTHelper.validate_legal).
    validate = find_method(find_class(source("vllm/lora/peft_helper.py"), "PEFTHelper"), "validate_legal")
    assert "self.r > lora_config.max_lora_rank" in ast.unparse(validate)
    assert "self.bias != 'none'" in ast.unparse(validate)


def test_temperature_bound_mirrors_vllm() -> None:
    sampling = find_class(source("vllm/sampling_params.py"), "SamplingParams")
    bounds = self_attribute_comparisons(find_method(sampling, "_verify_args"), "temperature")
    assert (ast.Gt, VLLM_MAX_TEMPERATURE) in bounds
    assert (ast.Lt, 0.0) in bounds


def test_greedy_needs_n_1_and_children_get_seed_plus_index() -> None:
    # Why plan_chat sends greedy samples once and never groups samples into one n > 1 request.
    sampling = find_class(source("vllm/sampling_params.py"), "SamplingParams")
    assert "n must be 1 when using greedy sampling" in ast.unparse(find_method(sampling, "_verify_greedy_sampling"))
    parent = find_class(source("vllm/v1/engine/parallel_sampling.py"), "ParentRequest")
    assert "child_sampling_params.seed = seed + index" in ast.unparse(find_method(parent, "_get_child_sampling_params"))
