"""ProntoQA-style deduction: a chain of 'Every A is a B.' rules, a property at its end, true or false?

The entity belongs to the first concept of a chain of ``hops`` subsumption rules; the last concept
has a property (or its negation), and the question asks whether the entity has it. Distractor
rules hang a sibling chain off the same start concept with the opposite property, so reading the
property without following the chain is a coin flip. Steps walk the chain one hop at a time.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from s2d_assets.coconut.prosqa import concept_names
from s2d_assets.tasks.names_data import first_names

PROPERTIES = ("bitter", "bright", "cold", "dull", "fast", "happy", "kind", "loud", "shy", "small", "sour", "wooden")


def make_example(rng: random.Random, hops: int, distractor_hops: int) -> dict[str, Any]:
    entity = rng.choice(first_names(100))
    concepts = rng.sample(concept_names(), hops + 1 + distractor_hops)
    chain, side = concepts[: hops + 1], [concepts[0], *concepts[hops + 1 :]]
    prop = rng.choice(PROPERTIES)
    holds = rng.random() < 0.5
    rules = [f"Every {a} is a {b}." for a, b in itertools.pairwise(chain)]
    rules += [f"Every {a} is a {b}." for a, b in itertools.pairwise(side)]
    rules.append(f"Every {chain[-1]} is {'' if holds else 'not '}{prop}.")
    if distractor_hops:
        rules.append(f"Every {side[-1]} is {'not ' if holds else ''}{prop}.")
    rng.shuffle(rules)
    steps = [f"{entity} is a {c}." for c in chain[1:]]
    steps.append(f"{entity} is {'' if holds else 'not '}{prop}.")
    question = " ".join([*rules, f"{entity} is a {chain[0]}.", f"True or false: {entity} is {prop}."])
    return {
        "question": question,
        "steps": steps,
        "answer": "True" if holds else "False",
        "meta": {"entity": entity, "chain": chain, "distractor_chain": side, "property": prop, "holds": holds},
    }


def generate(n: int, seed: int, hops: int = 5, distractor_hops: int = 2) -> list[dict[str, Any]]:
    """``n`` distinct items with ``hops``-step proofs, the same for the same arguments."""
    if hops < 1 or distractor_hops < 0:
        raise ValueError(f"prontoqa: hops={hops} must be >= 1 and distractor_hops={distractor_hops} >= 0")
    rng = random.Random(seed)
    seen: set[str] = set()
    items: list[dict[str, Any]] = []
    while len(items) < n:
        item = make_example(rng, hops, distractor_hops)
        if item["question"] not in seen:
            seen.add(item["question"])
            items.append(item)
    return items
