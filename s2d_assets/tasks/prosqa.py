"""ProsQA: proof search over a random DAG of fictional concepts (Coconut paper, Appendix A.2).

A graph is grown node by node. Node 0 is the entity and carries label 1, node 1 carries label 2.
Each new node draws Poisson(1.5) parents; with none it is a fresh root (label 0), otherwise its
parents come from one allowed group — labels {0, 1} or labels {0, 2}, so no node is reachable from
both roots — each drawn with weight 1.5·depth + 1, and its label is the OR of theirs. A leaf
labelled 1 is then reachable from the entity (the correct answer) and a leaf labelled 2 is not
(the distractor). Each edge is one sentence of the question; the chain of thought is the
shortest path from the entity to the answer.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import deque
from dataclasses import dataclass
from functools import cache
from typing import Any

from s2d_assets.tasks.names_data import first_names

PARENT_RATE = 1.5
DEPTH_WEIGHT = 1.5
_ONSETS = ("b", "br", "ch", "d", "dr", "f", "g", "gr", "j", "k", "l", "m", "n", "p", "r", "s", "sh", "st", "t", "v")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "oo")
_ENDINGS = ("mpus", "rpus", "lpus", "pus", "bus", "nus")


@cache
def concept_names() -> tuple[str, ...]:
    """The fictional concept vocabulary: 'brimpus', 'shoolpus', ... (840 names, fixed order)."""
    return tuple(o + v + e for o in _ONSETS for v in _VOWELS for e in _ENDINGS)


@dataclass(frozen=True)
class Graph:
    parents: tuple[tuple[int, ...], ...]
    labels: tuple[int, ...]

    @property
    def children(self) -> list[list[int]]:
        children: list[list[int]] = [[] for _ in self.parents]
        for child, parents in enumerate(self.parents):
            for parent in parents:
                children[parent].append(child)
        return children

    def edges(self) -> list[tuple[int, int]]:
        return [(parent, child) for child, parents in enumerate(self.parents) for parent in parents]

    def shortest_path(self, source: int, target: int) -> list[int] | None:
        children, previous = self.children, {source: source}
        queue = deque([source])
        while queue:
            node = queue.popleft()
            if node == target:
                path = [node]
                while path[-1] != source:
                    path.append(previous[path[-1]])
                return path[::-1]
            for child in children[node]:
                if child not in previous:
                    previous[child] = node
                    queue.append(child)
        return None


def _poisson(rng: random.Random, rate: float) -> int:
    threshold, count, product = math.exp(-rate), 0, rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


def build_graph(rng: random.Random, n_nodes: int) -> Graph:
    """Grow a DAG by the Appendix A.2 procedure: parents always precede children, so it is acyclic."""
    parents: list[tuple[int, ...]] = [(), ()]
    labels, depths = [1, 2], [0, 0]
    for _ in range(2, n_nodes):
        wanted = _poisson(rng, PARENT_RATE)
        group = rng.choice((1, 2))
        candidates = [n for n, label in enumerate(labels) if label in (0, group)]
        chosen: list[int] = []
        while len(chosen) < min(wanted, len(candidates)):
            pool = [n for n in candidates if n not in chosen]
            chosen.append(rng.choices(pool, weights=[DEPTH_WEIGHT * depths[n] + 1 for n in pool])[0])
        label = 0
        for parent in chosen:
            label |= labels[parent]
        parents.append(tuple(sorted(chosen)))
        labels.append(label)
        depths.append(1 + max((depths[p] for p in chosen), default=-1))
    return Graph(tuple(parents), tuple(labels))


def make_example(rng: random.Random, n_nodes: int, min_hops: int, max_tries: int = 1000) -> dict[str, Any]:
    """One ProsQA item: ``{question, steps, answer, meta}``; resamples until the graph has both answers."""
    for _ in range(max_tries):
        graph = build_graph(rng, n_nodes)
        children = graph.children
        leaves = [n for n in range(2, n_nodes) if not children[n]]
        paths = {n: graph.shortest_path(0, n) for n in leaves if graph.labels[n] == 1}
        correct = [n for n, path in paths.items() if path is not None and len(path) - 1 >= min_hops]
        distractors = [n for n in leaves if graph.labels[n] == 2]
        if correct and distractors:
            return _render(rng, graph, rng.choice(correct), rng.choice(distractors))
    raise ValueError(f"prosqa: no graph with {n_nodes} nodes had an answer {min_hops}+ hops away in {max_tries} tries")


def _render(rng: random.Random, graph: Graph, correct: int, distractor: int) -> dict[str, Any]:
    entity = rng.choice(first_names(100))
    names = [entity, *rng.sample(concept_names(), len(graph.parents) - 1)]

    def sentence(parent: int, child: int) -> str:
        return f"{entity} is a {names[child]}." if parent == 0 else f"Every {names[parent]} is a {names[child]}."

    edges = graph.edges()
    rng.shuffle(edges)
    options = [names[correct], names[distractor]]
    rng.shuffle(options)
    path = graph.shortest_path(0, correct) or []
    question = " ".join(sentence(p, c) for p, c in edges) + f" Is {entity} a {options[0]} or {options[1]}?"
    return {
        "question": question,
        "steps": [sentence(p, c) for p, c in itertools.pairwise(path)],
        "answer": f"{entity} is a {names[correct]}.",
        "meta": {
            "entity": entity,
            "options": options,
            "correct": correct,
            "distractor": distractor,
            "names": names,
            "parents": [list(p) for p in graph.parents],
            "labels": list(graph.labels),
        },
    }


def generate(n: int, seed: int, n_nodes: int = 12, min_hops: int = 2) -> list[dict[str, Any]]:
    """``n`` distinct ProsQA items, the same for the same arguments."""
    if n_nodes < 4:
        raise ValueError(f"prosqa: n_nodes={n_nodes} is too small for an entity, two roots and two answers")
    rng = random.Random(seed)
    seen: set[str] = set()
    items: list[dict[str, Any]] = []
    while len(items) < n:
        item = make_example(rng, n_nodes, min_hops)
        if item["question"] not in seen:
            seen.add(item["question"])
            items.append(item)
    return items
