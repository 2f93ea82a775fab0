"""Rephrase and Respond (Deng et al., 2023, arXiv 2311.04205), with the paper's prompts.

Both forms end with an answer stage in the assistant's own turn: the model continues its response
after the cue "Therefore, the answer {answer_format} is" (``ANSWER_CUE``), as zero-shot CoT does; its
tokens count as System 2 tokens like every step's.
"""

from s2d_assets.methods.base import ANSWER_CUE, MethodDefinition, Step

RAR_1STEP_TEMPLATE = '"{question}"\nRephrase and expand the question, and respond.'

RAR_REPHRASE_TEMPLATE = (
    '"{question}"\nGiven the above question, rephrase and expand it to help you do better '
    "answering. Maintain all information in the original question."
)
RAR_RESPOND_TEMPLATE = (
    "(original) {question}\n(rephrased) {rephrase}\n"
    "Use your answer for the rephrased question to answer the original question."
)

RAR_1STEP = MethodDefinition(
    kind="rar_1step",
    description="Rephrase and Respond, one step",
    steps=(
        Step(name="respond", template=RAR_1STEP_TEMPLATE, max_new_tokens=96),
        Step(name="extract", template=ANSWER_CUE, max_new_tokens=24, continues="respond"),
    ),
    answer_step="extract",
)

RAR_2STEP = MethodDefinition(
    kind="rar_2step",
    description="Rephrase and Respond, two steps (rephrase, then respond)",
    steps=(
        Step(name="rephrase", template=RAR_REPHRASE_TEMPLATE, max_new_tokens=64),
        Step(name="respond", template=RAR_RESPOND_TEMPLATE, max_new_tokens=96),
        Step(name="extract", template=ANSWER_CUE, max_new_tokens=24, continues="respond"),
    ),
    answer_step="extract",
)
