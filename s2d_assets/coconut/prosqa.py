"""ProsQA: proof search over a random DAG of fictional concepts (Coconut paper, arXiv 2412.06769, Appendix A.2).

Construction (Appendix A.2, Algorithm 1):

* **Growth.** Nodes 0 and 1 are roots labelled 1 and 2. Each of the next ``n_nodes - 2`` nodes
  draws Poisson(1.5) parents. With probability 0.35 they come from node 0's family (nodes reachable
  from node 0 only, label 1), with 0.35 from node 1's family (label 2), and otherwise from every
  node so far. Within the group, parents are drawn without replacement, each with weight
  ``1.5·depth + 1``, where depth is the longest path up to a root; this favours deep nodes and so
  long reasoning paths. A node's label is the bitwise OR of its parents' labels: 1 or 2 is one
  family, 3 is reachable from both roots, 0 from neither. A node that draws no parents is a further
  root (label 0). Parents precede children, so the graph is acyclic.
* **Naming.** Every root, nodes 0 and 1 included, gets a person's name ("Tom is a wumpus.");
  every other node gets a fictional concept name ("Every wumpus is a yumpus.").
* **Options.** One of nodes 0 and 1 is the entity. The correct answer is a leaf reachable from the
  entity and not from the other root; the distractor is a leaf reachable from the other root and
  not from the entity. The two options are shown in random order; the facts are shuffled. The
  chain of thought is a shortest path from the entity to the answer.
* **Size.** The paper's graphs average 22.8 nodes, 36.5 edges, a shortest path of 3.8 and 1.6
  shortest paths (Table 4). ``n_nodes=28`` with ``min_hops=3`` gives these figures.

The appendix does not say everything, so some details are read off the released data
(``data/prosqa_valid.json`` and ``prosqa_test.json`` of facebookresearch/coconut, 800 items; that
repository has no generator). The generator reproduces those figures (measured on 1,000 items):

* Nodes that reach neither root (label 0) are candidate parents only in the "every node" case. If
  they were candidates in the family cases too, graphs would have 4.6 roots and 21 % label-0 nodes
  where the data has 2.6 and 4 %.
* Roots that got no children (isolated nodes, stated in no fact) are dropped. This is why 28 grown
  nodes give 22.9 ± 2.0, against the data's 22.8 ± 1.95, between 14 and 28 nodes.
* Both options are always leaves (800 of 800 released items). The correct answer is always the
  entity's deepest such leaf, and the entity is the root whose deepest leaf is deeper. Ties are
  broken at random; the released data tends to pick node 1. With a random leaf instead of the
  deepest one, the shortest path would average 3.4 rather than 3.8.

Remaining deviations: nodes reachable from both roots are 11 % of the non-root nodes against the
data's 6 %, and the vocabularies are larger than the data's 17 person and 38 concept names.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections import deque
from dataclasses import dataclass
from functools import cache
from typing import Any

from s2d_assets.tasks.names_data import first_names

PARENT_RATE = 1.5
DEPTH_WEIGHT = 1.5
FAMILY_PROBABILITY = 0.35  # each of the two families; every node is a candidate with 1 - 2·0.35 = 0.30
PAPER_NODES = 28  # grown per graph; about 23 remain once the isolated roots are dropped
PAPER_MIN_HOPS = 3  # the released data's shortest paths are 3 to 6 steps long
TABLE_4 = {"nodes": 22.8, "edges": 36.5, "shortest_path": 3.8, "shortest_paths": 1.6}
PERSON_POOL = 100
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

    @property
    def roots(self) -> list[int]:
        return [node for node, parents in enumerate(self.parents) if not parents]

    def edges(self) -> list[tuple[int, int]]:
        return [(parent, child) for child, parents in enumerate(self.parents) for parent in parents]

    def distances(self, source: int) -> dict[int, int]:
        """Shortest distance from ``source`` to every node reachable from it."""
        return {node: distance for node, (distance, _) in _bfs(self.children, source).items()}

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

    def count_shortest_paths(self, source: int, target: int) -> int:
        """How many distinct shortest paths lead from ``source`` to ``target`` (0 if none does)."""
        return _bfs(self.children, source).get(target, (0, 0))[1]

    def with_entity_first(self, entity: int) -> Graph:
        """The same graph with ``entity`` (node 0 or 1) as node 0, so labels 1 and 2 swap if it was node 1."""
        if entity == 0:
            return self
        if entity != 1:
            raise ValueError(f"prosqa: the entity is node 0 or 1, not {entity}")
        swap = {0: 1, 1: 0}
        parents = [self.parents[1], self.parents[0], *self.parents[2:]]
        labels = [self.labels[1], self.labels[0], *self.labels[2:]]
        return Graph(
            tuple(tuple(sorted(swap.get(p, p) for p in ps)) for ps in parents),
            tuple({1: 2, 2: 1}.get(label, label) for label in labels),
        )


def _bfs(children: list[list[int]], source: int) -> dict[int, tuple[int, int]]:
    """Node → (shortest distance from ``source``, number of shortest paths)."""
    found = {source: (0, 1)}
    queue = deque([source])
    while queue:
        node = queue.popleft()
        distance, count = found[node]
        for child in children[node]:
            if child not in found:
                found[child] = (distance + 1, count)
                queue.append(child)
            elif found[child][0] == distance + 1:
                found[child] = (distance + 1, found[child][1] + count)
    return found


def _poisson(rng: random.Random, rate: float) -> int:
    threshold, count, product = math.exp(-rate), 0, rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


def build_graph(rng: random.Random, n_nodes: int) -> Graph:
    """Grow ``n_nodes`` by the Appendix A.2 procedure, then drop the roots that got no children.

    Node order is kept, so parents precede children; nodes 0 and 1 are never dropped.
    """
    parents: list[tuple[int, ...]] = [(), ()]
    labels, depths = [1, 2], [0, 0]
    for _ in range(2, n_nodes):
        wanted = _poisson(rng, PARENT_RATE)
        draw = rng.random()
        if draw < FAMILY_PROBABILITY:
            candidates = [n for n, label in enumerate(labels) if label == 1]
        elif draw < 2 * FAMILY_PROBABILITY:
            candidates = [n for n, label in enumerate(labels) if label == 2]
        else:
            candidates = list(range(len(labels)))
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
    has_child = {p for ps in parents for p in ps}
    keep = [n for n in range(n_nodes) if n < 2 or parents[n] or n in has_child]
    index = {old: new for new, old in enumerate(keep)}
    return Graph(tuple(tuple(index[p] for p in parents[n]) for n in keep), tuple(labels[n] for n in keep))


def make_example(rng: random.Random, n_nodes: int, min_hops: int, max_tries: int = 1000) -> dict[str, Any]:
    """One ProsQA item: ``{question, steps, answer, meta}``; resamples until the graph has both answers."""
    for _ in range(max_tries):
        graph = build_graph(rng, n_nodes)
        children = graph.children
        leaves = [n for n in range(2, len(graph.parents)) if not children[n]]  # the roots are people
        family = {root: [n for n in leaves if graph.labels[n] == root + 1] for root in (0, 1)}
        if not family[0] or not family[1]:
            continue
        distance = {root: graph.distances(root) for root in (0, 1)}
        deepest = {root: max(distance[root][n] for n in family[root]) for root in (0, 1)}
        entity = rng.choice((0, 1)) if deepest[0] == deepest[1] else max((0, 1), key=deepest.__getitem__)
        if deepest[entity] < min_hops:
            continue
        correct = rng.choice([n for n in family[entity] if distance[entity][n] == deepest[entity]])
        distractor = rng.choice(family[1 - entity])
        # renumbered so that the entity is node 0, as in the appendix; the answers (nodes 2+) keep their numbers
        return _render(rng, graph.with_entity_first(entity), correct, distractor)
    raise ValueError(f"prosqa: no graph with {n_nodes} nodes had an answer {min_hops}+ hops away in {max_tries} tries")


def _render(rng: random.Random, graph: Graph, correct: int, distractor: int) -> dict[str, Any]:
    roots = graph.roots
    people = dict(zip(roots, rng.sample(first_names(PERSON_POOL), len(roots)), strict=True))
    concepts = iter(rng.sample(concept_names(), len(graph.parents) - len(roots)))
    names = [people[n] if n in people else next(concepts) for n in range(len(graph.parents))]
    entity = names[0]

    def sentence(parent: int, child: int) -> str:
        subject = names[parent] if parent in people else f"Every {names[parent]}"
        return f"{subject} is a {names[child]}."

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


def generate(n: int, seed: int, n_nodes: int = PAPER_NODES, min_hops: int = PAPER_MIN_HOPS) -> list[dict[str, Any]]:
    """``n`` distinct ProsQA items, the same for the same arguments.

    ``n_nodes`` is the number of nodes grown; the isolated roots among them are dropped, so at the
    paper's 28 a graph keeps about 23.
    """
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


def table_4_statistics(items: list[dict[str, Any]]) -> dict[str, float]:
    """The means of Table 4 over ``items``: nodes, edges, shortest path length, number of shortest paths."""
    graphs = [Graph(tuple(map(tuple, i["meta"]["parents"])), tuple(i["meta"]["labels"])) for i in items]
    return {
        "nodes": statistics.fmean(len(g.parents) for g in graphs),
        "edges": statistics.fmean(len(g.edges()) for g in graphs),
        "shortest_path": statistics.fmean(len(i["steps"]) for i in items),
        "shortest_paths": statistics.fmean(
            g.count_shortest_paths(0, i["meta"]["correct"]) for g, i in zip(graphs, items, strict=True)
        ),
    }
