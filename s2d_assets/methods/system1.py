"""System 1: answer directly, no intermediate tokens.

The distilled model is trained and evaluated on exactly this prompt, so the only difference
between the System 1 baseline and the distilled System 1 is the weights.
"""

from s2d_assets.methods.base import MethodDefinition, Step

DIRECT_TEMPLATE = "{question}\nAnswer with only the final answer, and nothing else."

SYSTEM1 = MethodDefinition(
    kind="system1",
    description="Direct answer (System 1)",
    steps=(Step(name="answer", template=DIRECT_TEMPLATE, max_new_tokens=16),),
)


def direct_prompt(question: str) -> str:
    return DIRECT_TEMPLATE.format(question=question)
