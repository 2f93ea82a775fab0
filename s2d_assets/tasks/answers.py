"""Answer parsing shared by tasks: option letters, numbers and short free text."""

from __future__ import annotations

import math
import re
import string

from s2d_assets.core.answer_set import AnswerSet

OPTION_LINE = re.compile(r"^[ \t]*\(([A-Z])\)[ \t]*(.*?)[ \t]*$", re.MULTILINE)
_LEADING_LETTER = re.compile(r"^\W*\(?([A-Z])\)(?:\W|$)|^\W*([A-Z])(?:[.:)]|\s*$)")
_ANSWER_IS_LETTER = re.compile(
    r"answer\s*(?:is|:)?\s*:?\s*\(?([A-Z])(?:\)|\b(?![ \t]*[\w(]))", re.IGNORECASE
)  # "the answer is (B)", "The answer is A."
_LISTED_OPTION = re.compile(r"^[ \t]*\(?([A-Z])[).:][ \t]")  # a line of an option list: "(A) Agree", "B: Disagree"
_ANSWER_PREFIX = re.compile(r"^\s*A:\s+(?=\S)")  # "A: Disagree" is an answer written after "A:", not option (A)
_BOTH = re.compile(r"\b(?:both\s+([\w ]+?)\s+and|neither\s+([\w ]+?)\s+nor)\s+([\w ]+)", re.IGNORECASE)
_PAREN_LETTER = re.compile(r"\(([A-Z])\)")
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
_HASH_ANSWER = re.compile(r"####\s*(-?\$?\d[\d,]*(?:\.\d+)?)")
# "the answer (to the question) is N", "the final answer is indeed N", "the answer is 3 * 4 = 12" (the result)
_ANSWER_IS_NUMBER = re.compile(
    r"answer(?:\s+to\s+(?:the|this)\s+(?:original\s+)?question)?\s*(?:is|:|=|seems\s+to\s+be|would\s+be)\s*:?\s*(?:indeed\s+|actually\s+)?\**\s*(?:[-\d$.,\s*/+x×()]+=\s*)?(-?\$?\d[\d,]*(?:\.\d+)?)(?![\d%])(?!\s*[*/+×=])",
    re.IGNORECASE,
)
_LEADING_NUMBER = re.compile(r"^[^\w-]*(-?\$?\d[\d,]*(?:\.\d+)?)\W*$")  # a bare number as the first line
_NEW_EXEMPLAR = re.compile(r"\n\s*Q:")  # a few-shot reply that goes on to invent the next question
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")
# What makes a sentence a result rather than a restated premise: arithmetic, or a concluding word.
_COMPUTES = re.compile(r"=|\d\s*[*/+×x-]\s*\$?\d")
_CONCLUDES = re.compile(r"\b(?:so|therefore|thus|now|total|in all|altogether|left|remain\w*|result\w*)\b", re.I)
_FINISHED = re.compile(r"(?:[.!?)\"']|\*\*)\s*$|^\W*-?\$?\d[\d,]*(?:\.\d+)?\W*$")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# A constrained numeric answer: an optional sign, digits, optional decimals (what parse_number reads back).
NUMBER_ANSWER = AnswerSet(regex=r"-?[0-9]{1,12}(\.[0-9]{1,6})?")

# True/false verdicts. A restated question ("true or false?") and the user's opinion sentence
# ("I (don't) think the answer is true") are the prompt's words, not a verdict; "both true and
# false" and "neither true nor false" state none.
_ECHOES = re.compile(
    r"\btrue\s+or\s+(?:false|not)\b|\b(?:both\s+)?true\s+and\s+false\b|\bneither\s+true\s+nor\s+false\b|\bI\s+(?:do\s+not\s+|don't\s+)?think\s+the\s+answer\s+is\s+(?:true|false)\b",
    re.IGNORECASE,
)
_TRUE_FALSE = re.compile(
    r"(?P<neg>\bnot\s+(?P<hedge>(?:entirely|necessarily|completely|always|quite)\s+)?)?\b(?P<word>true|false)\b",
    re.IGNORECASE,
)
# The word is a verdict when it stands alone (punctuation or the end follows) or is predicated
# ("is false", "indeed true"), and not when it qualifies a noun ("a false dichotomy") or a clause
# ("it is true that ...").
_STANDS_ALONE = re.compile(r"\s*(?:[^\w\s]|$)")
_PREDICATED = re.compile(r"(?:^|\b(?:is|are|was|were|be|been|indeed|actually|also|answer)|[:\"'*])\W*$", re.IGNORECASE)
_CLAUSE = re.compile(r"\s+that\b", re.IGNORECASE)


def options(prompt: str) -> dict[str, str]:
    """The '(A) text' option lines of a multiple-choice prompt, letter -> text."""
    return {letter: text for letter, text in OPTION_LINE.findall(prompt)}


def _without_option_lists(text: str) -> str:
    """The text without restated option lists: runs of option lines naming two or more letters."""
    lines, kept, run = text.splitlines(), [], []
    for line in [*lines, ""]:
        found = _LISTED_OPTION.match(line)
        if found:
            run.append((found.group(1), line))
            continue
        if len({letter for letter, _ in run}) < 2:
            kept.extend(item for _, item in run)
        run = []
        kept.append(line)
    return "\n".join(kept[:-1])


def _option_at(text: str, choices: dict[str, str]) -> str | None:
    """The option whose text ``text`` starts with (the longest, so "Disagree" is not "Agree")."""
    lowered = text.strip().strip("\"'*").lower()
    named = [(len(o), k) for k, o in choices.items() if o and re.match(rf"{re.escape(o.lower())}(?![\w-])", lowered)]
    return max(named)[1] if named else None


def parse_choice(text: str, choices: dict[str, str]) -> str | None:
    """The chosen option letter, as the text states it; ``None`` when it states none or several.

    A restated option list is no choice. Then, in order: the stated answers ("the answer is
    (B)"), which must agree; a leading letter ("(B) Disagree"), unless the option text after it
    is another option's; a single "(X)"; an option text at the start or after "the answer is"
    ("A lot", "I agree.", "The answer is not a problem").
    """
    letters = set(choices) or set(string.ascii_uppercase[:2])
    listless = _without_option_lists(text)
    prefixed = {
        _option_at(line[m.end() :], choices) for line in listless.splitlines() if (m := _ANSWER_PREFIX.match(line))
    }
    if len(prefixed - {None}) > 1:  # "A: A great deal ... A: Not at all"
        return None
    stripped = _ANSWER_PREFIX.sub("", listless.strip()).strip()
    both = _BOTH.search(stripped)
    if both and {_option_at(part or "", choices) for part in both.groups() if part} >= {*choices} > set():
        return None  # "both Agree and Disagree", "neither agree nor disagree"
    stated = {m.upper() for m in _ANSWER_IS_LETTER.findall(stripped)} & letters
    if stated:
        return stated.pop() if len(stated) == 1 else None
    mentioned = {m for m in _PAREN_LETTER.findall(stripped) if m in letters}
    leading = _LEADING_LETTER.match(stripped)
    first = (leading.group(1) or leading.group(2)) if leading else None
    if first in letters and mentioned <= {first}:  # "(A) Agree", not "(A) or (B)"
        after = _option_at(stripped[leading.end() :], choices) if leading else None  # type: ignore[union-attr]
        return first if after in (None, first) else None  # "(A) Disagree" names two options
    if len(mentioned) == 1:
        letter = mentioned.pop()
        after = _option_at(stripped.split(f"({letter})", 1)[1], choices)
        return letter if after in (None, letter) else None
    first_sentence = re.split(r"(?<=[.!?])\s|\n", stripped, maxsplit=1)[0]
    by_text = {
        letter
        for letter, option in choices.items()
        if option and re.search(rf"(?<![\w-]){re.escape(option.lower())}(?![\w-])", first_sentence.lower())
    }
    if len(by_text) == 1:
        return by_text.pop()
    after_answer = [_option_at(m, choices) for m in re.findall(r"answer\s+is:?\s*(.+)", stripped, re.IGNORECASE)]
    named = {letter for letter in after_answer if letter}
    return named.pop() if len(named) == 1 else None


def canonical_number(value: str) -> str | None:
    cleaned = value.replace(",", "").replace("$", "").strip().rstrip(".")
    try:
        number = float(cleaned)
    except ValueError:
        return None
    if not math.isfinite(number):  # NaN and infinities can never be scored
        return None
    return str(int(number)) if number.is_integer() else f"{number:g}"


def given_numbers(question: str) -> list[str]:
    """The numbers a question states (canonical form): a reply that ends by restating one answers nothing."""
    return sorted({n for n in (canonical_number(m) for m in _NUMBER.findall(question)) if n is not None})


def parse_number(text: str, given: frozenset[str] = frozenset()) -> str | None:
    """The number the text states as its answer.

    '#### N', then the last 'the answer is N', then a bare number on the first line; a text
    that ends in a finished sentence otherwise answers with its last number, unless that number is
    one the question gave (``given``) in a reply that computes nothing and a sentence that concludes
    nothing (a restated premise, not a result), and one cut off
    mid-sentence (at its token budget) states nothing. What follows a new 'Q:' in a few-shot
    reply answers another question.
    """
    text = _NEW_EXEMPLAR.split(text, maxsplit=1)[0].strip()
    finished = bool(_FINISHED.search(text))
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    stated = text if finished or not ends else text[: ends[-1]]  # without a sentence cut off mid-way
    for pattern, where in ((_HASH_ANSWER, text), (_ANSWER_IS_NUMBER, stated)):
        found = pattern.findall(where)
        if found:
            return canonical_number(found[-1])
    leading = _LEADING_NUMBER.match(text.splitlines()[0] if text else "")
    if leading:
        return canonical_number(leading.group(1))
    numbers = list(_NUMBER.finditer(text)) if finished else []
    if not numbers:
        return None
    last = canonical_number(numbers[-1].group())
    if last in given and not _COMPUTES.search(text):  # a premise restated, unless its sentence concludes
        start = max([m.end() for m in _SENTENCE_END.finditer(text, 0, numbers[-1].start())], default=0)
        end = next((m.start() for m in _SENTENCE_END.finditer(text, numbers[-1].end())), len(text))
        if not _CONCLUDES.search(text[start:end]):
            return None
    return last


def parse_true_false(text: str) -> str | None:
    """The first true/false verdict the text states: models answer first, then explain.

    "not true" is false and "not false" true; "not entirely true" is false. A hedge that comes
    first ("not entirely false, but not entirely true") states no verdict.
    """
    text = _ECHOES.sub(" ", text)
    for match in _TRUE_FALSE.finditer(text):
        after, before = text[match.end() :], text[: match.start()]
        if _CLAUSE.match(after) or not (_STANDS_ALONE.match(after) or _PREDICATED.search(before)):
            continue
        word = match.group("word").lower()
        if match.group("hedge"):
            return "false" if word == "true" else None
        if match.group("neg"):
            return "false" if word == "true" else "true"
        return word
    return None


def normalize_text(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD-style)."""
    lowered = text.lower()
    lowered = "".join(ch for ch in lowered if ch not in string.punctuation)
    return " ".join(_ARTICLES.sub(" ", lowered).split())


def short_answer(text: str) -> str | None:
    """The first line of a free-text answer, without 'The answer is' and trailing punctuation."""
    for line in text.strip().splitlines():
        line = re.sub(r"^\W*(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)\s*", "", line.strip(), flags=re.IGNORECASE)
        line = line.strip().strip("*").strip().rstrip(".!").strip()
        if line:
            return line
    return None
