"""System 1: answer directly, no intermediate tokens.

The distilled model is trained and evaluated on exactly this prompt, so the only difference
between the System 1 baseline and the distilled System 1 is the weights. A judging task's
System 1 is a judge: it gets the judge instruction (MT-bench's pairwise judge, with the
position- and length-bias warnings) and answers with the verdict only, "A" or "B".
"""

from s2d_assets.core.answer_set import FREE, AnswerMode
from s2d_assets.methods.base import MethodDefinition, Step

DIRECT_TEMPLATE = "{question}\nAnswer with only the final answer, and nothing else."
JUDGE_TEMPLATE = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants "
    "to the user question displayed below. You should choose the assistant that follows the user's instructions "
    "and answers the user's question better. Avoid any position biases and ensure that the order in which the "
    "responses were presented does not influence your decision. Do not allow the length of the responses to "
    "influence your evaluation. Be as objective as possible.\n\n{question}\n\n"
    'Answer with only the verdict, and nothing else: "A" if assistant A is better, "B" if assistant B is better.'
)
SYSTEM1_JUDGE = MethodDefinition(
    kind="system1",
    description="Direct verdict of a pairwise judge (System 1)",
    steps=(Step(name="answer", template=JUDGE_TEMPLATE, max_new_tokens=8),),
    answer_step="answer",
)
SYSTEM1 = MethodDefinition(
    kind="system1",
    description="Direct answer (System 1)",
    steps=(Step(name="answer", template=DIRECT_TEMPLATE, max_new_tokens=16),),
    answer_step="answer",
    # The judging tasks' System 1 prompt is part of what System 1 is, so it shapes its fingerprint too.
    params={"judge": SYSTEM1_JUDGE.fingerprint},
)


def system1_for(judge: bool, answer: AnswerMode = FREE) -> MethodDefinition:
    """The System 1 prompt of a task (the judge instruction for a task that judges pairs, ``Task.judges_pairs``,
    else the direct answer), its answer free or constrained to the task's answer set (``evaluation.system1_answer``)."""
    return (SYSTEM1_JUDGE if judge else SYSTEM1).with_answer(answer)


def direct_prompt(question: str, judge: bool = False) -> str:
    """What System 1 (and the distilled model, in training and at evaluation) sees for ``question``."""
    template = JUDGE_TEMPLATE if judge else DIRECT_TEMPLATE
    return template.format(question=question)
