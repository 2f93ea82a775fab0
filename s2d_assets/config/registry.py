"""Extension points as registries: each ``kind`` maps to its spec class and its implementation.

A ``Registry`` holds one entry per kind: the experiment file's spec class for it (a pydantic model
whose ``kind`` is a one-value ``Literal``) and its implementation, given as an object or as a
``"module:attribute"`` path imported on first use (so the config layer names the implementation
without importing the layers above it). ``union()`` is the experiment file's field for the kinds:
a discriminated union of the spec classes registered so far, which also accepts every kind
registered later (an extension registered from outside the package validates with its own class).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar, Union, get_args

from pydantic import Discriminator, Field, SerializeAsAny, Tag, ValidatorFunctionWrapHandler, WrapValidator

T = TypeVar("T")


def spec_kind(spec: type) -> str:
    """The one kind a spec class's ``kind: Literal[...]`` field allows."""
    kinds = get_args(spec.model_fields["kind"].annotation)  # type: ignore[attr-defined]
    if len(kinds) != 1:
        raise TypeError(f"{spec.__name__}.kind must be a Literal of one kind, got {kinds}")
    return str(kinds[0])


@dataclass
class Entry(Generic[T]):
    kind: str
    spec: type | None
    implementation: T | str
    traits: Any = None

    def resolve(self) -> T:
        if isinstance(self.implementation, str):
            module, _, attribute = self.implementation.partition(":")
            self.implementation = getattr(importlib.import_module(module), attribute)
        return self.implementation  # type: ignore[return-value]


class Registry(Generic[T]):
    """``kind`` -> spec class, implementation and traits, for one extension point (named ``what``)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, Entry[T]] = {}
        self._in_union: set[str] = set()

    def register(
        self, implementation: T | str, *, spec: type | None = None, kind: str | None = None, traits: Any = None
    ) -> T | str:
        """Add a kind (named by ``kind`` or by ``spec``'s ``kind`` literal); a kind is registered once."""
        name = kind if kind is not None else spec_kind(spec) if spec is not None else None
        if name is None:
            raise TypeError(f"a {self.what} is registered with its spec class or its kind")
        if name in self._entries:
            raise ValueError(f"{self.what} kind {name!r} is already registered")
        self._entries[name] = Entry(name, spec, implementation, traits)
        return implementation

    def unregister(self, kind: str) -> None:
        """Remove a kind (an extension registered for a while, e.g. in a test)."""
        self.entry(kind)
        del self._entries[kind]

    def entry(self, kind: str) -> Entry[T]:
        try:
            return self._entries[kind]
        except KeyError:
            raise KeyError(f"unknown {self.what} kind {kind!r}; known: {sorted(self._entries)}") from None

    def implementation(self, kind: str) -> T:
        return self.entry(kind).resolve()

    def traits(self, kind: str) -> Any:
        return self.entry(kind).traits

    def __contains__(self, kind: object) -> bool:
        return kind in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def union(self, discriminator: Any = None) -> Any:
        """The spec classes registered so far as a union discriminated by ``kind`` (or by ``discriminator``, a
        function of the raw value naming its kind: e.g. a default kind). A kind registered later validates
        with its own spec class."""
        specs = {kind: entry.spec for kind, entry in self._entries.items() if entry.spec is not None}
        self._in_union = set(specs)
        if discriminator is None:
            closed: Any = Annotated[Union[tuple(specs.values())], Field(discriminator="kind")]  # noqa: UP007
        else:
            members = tuple(Annotated[spec, Tag(kind)] for kind, spec in specs.items())
            closed = Annotated[Union[members], Discriminator(discriminator)]  # noqa: UP007

        def open_kinds(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
            if isinstance(value, dict):
                kind = discriminator(value) if discriminator is not None else value.get("kind")
                entry = self._entries.get(kind) if isinstance(kind, str) and kind not in self._in_union else None
                if entry is not None and entry.spec is not None:
                    return entry.spec.model_validate(value)  # type: ignore[attr-defined]
            return handler(value)

        return Annotated[SerializeAsAny[closed], WrapValidator(open_kinds)]
