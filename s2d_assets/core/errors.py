"""The one kind of error a user can fix: a bad file, field, row, query or state folder.

Every error of that kind derives from ``UserError`` (``ExperimentError``, ``TaskFileError``,
``InboxError``, ``SqlModelError``, ``QueryError``, ``StateError``). Its message is one line
that names the file and the field or row. The ``s2d`` command prints it on stderr and exits
with status 2, without a traceback (``s2d --debug`` shows it); anything else is an internal
error and exits with status 1. ``UserError`` is a ``ValueError`` so older ``except
ValueError`` handlers keep working.
"""

from __future__ import annotations


class UserError(ValueError):
    """An error in what the user gave; the message names the file and the field or row."""


class StateError(UserError):
    """A missing, corrupt or unsafe file in the state folder; the message says how to fix it."""


def user_error_names() -> frozenset[str]:
    """Class names of every ``UserError`` subclass loaded so far (to recognise them in Dagster's error records)."""
    names: set[str] = set()
    pending: list[type] = [UserError]
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return frozenset(names)


def one_line(message: str) -> str:
    """A message folded onto one line (continuation lines joined with '; ')."""
    parts = [part.strip() for part in str(message).strip().splitlines() if part.strip()]
    return "; ".join(parts)
