"""Reading an OpenAI-compatible server's answers: a chat completion's choices, or why it is unusable.

Pure functions over the response body and headers, so every malformed case (empty ``choices``,
a non-JSON body, ``null`` content, an ``error`` object with status 200) is named in one line and
never reaches the generation cache; and the wait a server asks for in ``Retry-After``.
"""

from __future__ import annotations

import email.utils
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime


class MalformedResponse(ValueError):
    """A 2xx response that is not a usable chat completion."""


@dataclass(frozen=True)
class ParsedChoice:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None


def cause(error: BaseException) -> str:
    cause = error.__cause__ or error
    text = snippet(str(cause), 160)
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


def snippet(text: str, limit: int = 300) -> str:
    """One line of at most ``limit`` characters, for error messages."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks to wait (``retry-after-ms``, or ``Retry-After`` as seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        seconds = _seconds(millis)
        if seconds is not None:
            return max(0.0, seconds / 1000)
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _seconds(value)
    if seconds is None:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds)


def _seconds(value: str) -> float | None:
    """A number of seconds (huge values overflow to infinity); None for NaN and anything not a number."""
    try:
        number = float(value)
    except ValueError:
        return None
    return None if math.isnan(number) else number


def parse_choices(content: bytes, content_type: str | None) -> list[ParsedChoice]:
    """The choices of a chat completion, or MalformedResponse saying what is wrong with it."""
    try:
        payload = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        raise MalformedResponse(
            f"body is not JSON (content-type {content_type or 'missing'}): "
            f"{snippet(content.decode(errors='replace'), 120)!r}"
        ) from None
    if not isinstance(payload, dict):
        raise MalformedResponse(f"expected a JSON object, got {type(payload).__name__}")
    if payload.get("error"):
        raise MalformedResponse(f"error in body: {snippet(json.dumps(payload['error']), 200)}")
    raw_choices = payload.get("choices")
    if not isinstance(raw_choices, list) or not raw_choices:
        raise MalformedResponse("no choices" if raw_choices in (None, []) else "choices is not a list")
    parsed: dict[int, tuple[str, str | None]] = {}
    for position, choice in enumerate(raw_choices):
        if not isinstance(choice, dict):
            raise MalformedResponse(f"choice {position} is not an object")
        index = choice.get("index", position)
        if not isinstance(index, int) or isinstance(index, bool) or index in parsed:
            raise MalformedResponse(f"choice {position} has a bad or repeated index {index!r}")
        finish_reason = choice.get("finish_reason")
        finish_reason = finish_reason if isinstance(finish_reason, str) else None
        message = choice.get("message")
        text = _text(message.get("content")) if isinstance(message, dict) else None
        if text is None:
            what = "no message" if not isinstance(message, dict) else "null content"
            if isinstance(message, dict) and message.get("content") is not None:
                what = f"content of type {type(message['content']).__name__}"
            raise MalformedResponse(f"choice {index} has {what} (finish_reason {finish_reason!r})")
        parsed[index] = (text.strip(), finish_reason)
    texts = [parsed[i][0] for i in sorted(parsed)]
    reasons = [parsed[i][1] for i in sorted(parsed)]
    usage = payload.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    prompt_tokens = _count(usage.get("prompt_tokens"))
    completion_tokens = _split(_count(usage.get("completion_tokens")), texts)
    return [
        ParsedChoice(text, prompt_tokens, tokens, reason)
        for text, tokens, reason in zip(texts, completion_tokens, reasons, strict=True)
    ]


def _text(content: object) -> str | None:
    """A message's text: a string, or a list of text parts; None when there is none."""
    if isinstance(content, str):
        return content
    if (
        isinstance(content, list)
        and content
        and all(isinstance(part, dict) and isinstance(part.get("text"), str) for part in content)
    ):
        return "".join(part["text"] for part in content)
    return None


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _split(total: int, texts: list[str]) -> list[int]:
    """Split a response's completion tokens over its choices, in proportion to their lengths."""
    if len(texts) == 1:
        return [total]
    weights = [max(len(t), 1) for t in texts]
    shares = [total * w // sum(weights) for w in weights]
    for i in range(total - sum(shares)):
        shares[i % len(shares)] += 1
    return shares
