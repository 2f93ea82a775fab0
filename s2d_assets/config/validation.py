"""Checks every experiment file passes when it loads, before anything runs.

- The file is UTF-8 YAML with unique keys (a repeated key is refused, not silently overwritten).
- Numbers are finite (the pydantic models refuse NaN and infinities).
- Sizes have upper bounds (``DEFAULT_LIMITS``); an experiment that really wants more says so in
  a top-level ``limits:`` mapping, e.g. ``limits: {n_samples: 256}``.
- Names (experiment, tasks, methods) are slugs: ``NAME_PATTERN``.
- Cron strings are checked here, without Dagster (``cron_problem``), the way Dagster's schedules
  check them: five fields, or one of the ``@daily``-style aliases.

No Dagster import: the config layer loads on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

# Names become folder names, DuckDB values and Dagster asset-key parts and group names (which allow
# only letters, digits and underscores), so a slug here is lower-case letters, digits and '_'.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
NAME_RULE = "lower-case letters, digits and '_', starting with a letter, at most 64 characters"

# The largest value each kind of size may take unless the experiment's `limits:` raises it.
DEFAULT_LIMITS: dict[str, int] = {
    "n_samples": 64,
    "train_size": 100_000,
    "eval_size": 100_000,
    "max_new_tokens": 8_192,
    "epochs": 100,
    "batch_size": 65_536,
    "max_length": 32_768,
}
# field name (anywhere in the experiment) -> the limit that bounds it
LIMITED_FIELDS: dict[str, str] = {
    "n_samples": "n_samples",
    "train_size": "train_size",
    "symbolic_train_size": "train_size",
    "eval_size": "eval_size",
    "max_new_tokens": "max_new_tokens",
    "epochs": "epochs",
    "epochs_per_stage": "epochs",
    "baseline_epochs": "epochs",
    "batch_size": "batch_size",
    "eval_batch_size": "batch_size",
    "max_length": "max_length",
    "max_model_len": "max_length",
}


def is_name(value: str) -> bool:
    return bool(NAME_PATTERN.match(value))


# -- reading the file ---------------------------------------------------------------------------------
class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice in one mapping."""


def _construct_mapping(loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, yaml.Mark] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` merges; its keys may be overridden
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key; the base constructor reports it
            continue
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {first.line + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark
    return loader.construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_utf8(path: Path) -> str:
    """The file's text; raises ``UnicodeDecodeError`` with the offending byte's offset."""
    text = path.read_bytes().decode("utf-8")
    return text.removeprefix("\ufeff")


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=UniqueKeyLoader)


def yaml_error_line(error: yaml.YAMLError) -> str:
    """A YAML error as one line: what is wrong and where (line, column)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{problem}{where}"


# -- size limits --------------------------------------------------------------------------------------
def _leaves(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _leaves(item, (*path, str(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, str(index)))
    else:
        yield path, value


def limit_problems(data: Mapping[str, Any], overrides: Mapping[str, int | None]) -> list[str]:
    """Every size in ``data`` (the experiment as JSON) above its limit, with the field's path."""
    limits = {**DEFAULT_LIMITS, **{k: v for k, v in overrides.items() if v is not None}}
    problems = []
    for path, value in _leaves({k: v for k, v in data.items() if k != "limits"}):
        # The field itself, or a per-step budget (`methods.<m>.max_new_tokens.<step>`).
        field = path[-1] if path and path[-1] in LIMITED_FIELDS else (path[-2] if len(path) > 1 else "")
        limit_name = LIMITED_FIELDS.get(field) if field == path[-1] or field == "max_new_tokens" else None
        if limit_name is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if value > limits[limit_name]:
            problems.append(
                f"{'.'.join(path)}: {value:g} is above the limit of {limits[limit_name]:g} for {limit_name}; "
                f"if you mean it, raise the limit explicitly with `limits: {{{limit_name}: {value:g}}}`"
            )
    return problems


# -- cron -------------------------------------------------------------------------------------------
CRON_ALIASES = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_MONTHS = {
    m: i
    for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# (name, lowest, highest, names)
_CRON_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


def _cron_value(text: str, low: int, high: int, names: Mapping[str, int]) -> int | None:
    if text.lower() in names:
        return names[text.lower()]
    if text.isdigit() and low <= int(text) <= high:
        return int(text)
    return None


def _cron_field_problem(text: str, name: str, low: int, high: int, names: Mapping[str, int]) -> str | None:
    for part in text.split(","):
        base, slash, step = part.partition("/")
        if slash and not (step.isdigit() and int(step) >= 1):
            return f"{name} {part!r}: the step after '/' must be a positive number"
        if base == "*" or (base == "L" and name == "day of month"):
            continue
        if name == "day of week" and "#" in base:  # the n-th weekday of the month, e.g. 1#2
            day, _, nth = base.partition("#")
            if _cron_value(day, low, high, names) is None or nth not in {"1", "2", "3", "4", "5"}:
                return f"{name} {part!r}: use <weekday>#<1-5>"
            continue
        first, dash, last = base.partition("-")
        start = _cron_value(first, low, high, names)
        end = _cron_value(last, low, high, names) if dash else start
        if start is None or end is None:
            return f"{name} {part!r}: values must be {low}-{high}" + (" or names" if names else "")
    return None


def cron_problem(cron: str) -> str | None:
    """Why ``cron`` is not a cron string Dagster schedules accept, or None when it is one."""
    text = cron.strip()
    if text.lower() in CRON_ALIASES:
        return None
    fields = text.split()
    if len(fields) != 5:
        return f"a cron string has five fields (minute hour day-of-month month day-of-week), got {len(fields)}"
    for value, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        problem = _cron_field_problem(value, name, low, high, names)
        if problem:
            return problem
    return None
