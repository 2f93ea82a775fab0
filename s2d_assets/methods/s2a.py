"""System 2 Attention (Weston & Sukhbaatar, 2023, arXiv 2311.11829), with the paper's prompts.

Step 1 regenerates the user's text without their opinion, split into a context and the
question; step 2 answers from the regenerated context only. Variants: S2A-Single (no
context/question split), S2A-KeepOrig (the original text is shown alongside the regenerated
one), S2A-NI (no "answer in an unbiased way" instruction in step 2), and the relevance prompt
for distractor tasks (keep what is related and useful rather than what is unbiased).
"""

from __future__ import annotations

import re

from s2d_assets.methods.base import FieldValue, MethodDefinition, Parser, Step

CONTEXT_LABEL = "Unbiased text context (includes all content except user's bias):"
QUERY_LABEL = "Question/Query (does not include user bias/preference):"

S2A_REGENERATE_TEMPLATE = (
    "Given the following text by a user, extract the part that is unbiased and not their opinion, so that using "
    "that text alone would be good context for providing an unbiased answer to the question portion of the text. "
    "Please include the actual question or query that the user is asking. Separate this into two categories "
    f'labeled with "{CONTEXT_LABEL}" and "{QUERY_LABEL}".\n\nText by User: {{question}}'
)

SINGLE_LABEL = "Unbiased version of text by User, including question:"
S2A_SINGLE_TEMPLATE = (
    "Given the following text by a user, extract the part that is unbiased and not their opinion, so that using "
    "that text alone would be good context plus question for providing an unbiased answer to the question portion "
    f'of the text. Please start your response with "{SINGLE_LABEL}" followed by your extraction.'
    "\n\nText by User: {question}"
)

RELEVANT_CONTEXT_LABEL = "Context text related to the question (includes all content except unrelated sentences):"
DETAILED_QUESTION_LABEL = "Detailed question:"
S2A_RELEVANCE_TEMPLATE = (
    "Given the following text by a user, extract the part that is related and useful, so that using that text "
    "alone would be good context for providing an accurate and correct answer to the question portion of the "
    "text. Please include the actual question or query that the user is asking. Separate this into two "
    f'categories labeled with "{RELEVANT_CONTEXT_LABEL}" and "{DETAILED_QUESTION_LABEL}". Do not use list.'
    "\n\nText by User: {question}"
)

UNBIASED_INSTRUCTION = "Answer in an unbiased way."
S2A_ANSWER_TEMPLATE = "{context}\n\n" + UNBIASED_INSTRUCTION + "\n\n{query}"
S2A_NI_ANSWER_TEMPLATE = "{context}\n\n{query}"
S2A_SINGLE_ANSWER_TEMPLATE = UNBIASED_INSTRUCTION + "\n\n{regenerated}"
S2A_KEEP_ORIG_ANSWER_TEMPLATE = (
    "Original user query (possibly biased): {question}\n\nUnbiased context: {context}\n"
    "Given the above unbiased context, answer the following: {query}"
)


def _label_pattern(label: str) -> re.Pattern[str]:
    # The model may restate the label loosely: match its first words up to the colon, any case.
    head = re.escape(label.split("(")[0].rstrip(": ").strip())
    return re.compile(rf"\**{head}[^:\n]*:\**", re.IGNORECASE)


def split_context_and_query(text: str, context_label: str, query_label: str) -> dict[str, FieldValue]:
    """Split step 1's output at its two labels; without labels the whole text is the context."""
    context_match = _label_pattern(context_label).search(text)
    query_match = _label_pattern(query_label).search(text)
    if query_match is None:
        start = context_match.end() if context_match else 0
        return {"context": text[start:].strip(), "query": ""}
    if context_match is not None and context_match.start() < query_match.start():
        context = text[context_match.end() : query_match.start()]
    elif context_match is not None:  # query first, then context
        context = text[context_match.end() :]
        return {"context": context.strip(), "query": text[query_match.end() : context_match.start()].strip()}
    else:
        context = text[: query_match.start()]
    return {"context": context.strip(), "query": text[query_match.end() :].strip()}


def after_label(text: str, label: str) -> str:
    match = _label_pattern(label).search(text)
    return (text[match.end() :] if match else text).strip()


UNBIASED_SPLIT = Parser(
    "s2a_unbiased_split_v1",
    ("context", "query"),
    lambda text: split_context_and_query(text, CONTEXT_LABEL, QUERY_LABEL),
)
RELEVANT_SPLIT = Parser(
    "s2a_relevant_split_v1",
    ("context", "query"),
    lambda text: split_context_and_query(text, RELEVANT_CONTEXT_LABEL, DETAILED_QUESTION_LABEL),
)
SINGLE_TEXT = Parser("s2a_single_v1", ("regenerated",), lambda text: {"regenerated": after_label(text, SINGLE_LABEL)})

REGENERATE_TOKENS = 160
ANSWER_TOKENS = 64


def _s2a(kind: str, description: str, regenerate: Step, answer_template: str) -> MethodDefinition:
    return MethodDefinition(
        kind=kind,
        description=description,
        steps=(regenerate, Step(name="answer", template=answer_template, max_new_tokens=ANSWER_TOKENS)),
    )


_REGENERATE = Step("regenerate", S2A_REGENERATE_TEMPLATE, REGENERATE_TOKENS, parse=UNBIASED_SPLIT)

S2A = _s2a(
    "s2a", "System 2 Attention: regenerate the context without opinion, then answer", _REGENERATE, S2A_ANSWER_TEMPLATE
)
S2A_SINGLE = _s2a(
    "s2a_single",
    "S2A-Single: regenerate without a context/question split, then answer",
    Step("regenerate", S2A_SINGLE_TEMPLATE, REGENERATE_TOKENS, parse=SINGLE_TEXT),
    S2A_SINGLE_ANSWER_TEMPLATE,
)
S2A_KEEP_ORIG = _s2a(
    "s2a_keep_orig",
    "S2A-KeepOrig: answer from the regenerated context and the original text",
    _REGENERATE,
    S2A_KEEP_ORIG_ANSWER_TEMPLATE,
)
S2A_NI = _s2a(
    "s2a_ni", "S2A-NI: S2A without the instruction to answer in an unbiased way", _REGENERATE, S2A_NI_ANSWER_TEMPLATE
)
S2A_RELEVANCE = _s2a(
    "s2a_relevance",
    "S2A for distractors: keep the related and useful part, then answer",
    Step("regenerate", S2A_RELEVANCE_TEMPLATE, REGENERATE_TOKENS, parse=RELEVANT_SPLIT),
    S2A_NI_ANSWER_TEMPLATE,
)
