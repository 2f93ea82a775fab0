"""ProsQA and ProntoQA generators: graph properties, answers, balance, reproducibility, and the
statistics of the Coconut paper's ProsQA (arXiv 2412.06769, Appendix A.2 and Table 4)."""

from __future__ import annotations

import itertools
import random
import statistics
from collections import deque

import pytest

from s2d_assets.coconut import prontoqa, prosqa
from s2d_assets.tasks.names_data import first_names


def reachable(parents: list[list[int]], source: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for child, ps in enumerate(parents):
        for p in ps:
            children.setdefault(p, []).append(child)
    seen, queue = {source}, deque([source])
    while queue:
        for child in children.get(queue.popleft(), []):
            if child not in seen:
                seen.add(child)
                queue.append(child)
    return seen


@pytest.fixture(scope="module")
def items() -> list[dict]:
    return prosqa.generate(300, seed=7, n_nodes=14, min_hops=2)


def test_graph_is_acyclic_and_labels_are_the_or_of_the_parents() -> None:
    rng = random.Random(3)
    labels: list[int] = []
    for _ in range(200):
        graph = prosqa.build_graph(rng, 16)
        assert graph.labels[:2] == (1, 2)
        children = graph.children
        for child, parents in enumerate(graph.parents):
            assert all(p < child for p in parents)  # parents precede children: no cycle is possible
            assert len(set(parents)) == len(parents)
            if child >= 2:
                expected = 0
                for p in parents:
                    expected |= graph.labels[p]
                assert graph.labels[child] == expected
                assert parents or children[child]  # isolated roots are dropped: every node is in a fact
        labels += graph.labels[2:]
    assert graph.edges()
    # Appendix A.2: 30 % of the nodes may take parents from anywhere, so some reach both roots
    assert 0.03 < labels.count(3) / len(labels) < 0.25


def test_answer_reachable_from_entity_and_distractor_not(items: list[dict]) -> None:
    for item in items:
        meta = item["meta"]
        from_entity, from_other = reachable(meta["parents"], 0), reachable(meta["parents"], 1)
        assert meta["correct"] in from_entity and meta["correct"] not in from_other
        assert meta["distractor"] not in from_entity and meta["distractor"] in from_other
        assert meta["labels"][meta["correct"]] == 1 and meta["labels"][meta["distractor"]] == 2
        children = {p for ps in meta["parents"] for p in ps}
        # both are leaves, as in every item of the paper's released validation and test sets
        assert meta["correct"] not in children and meta["distractor"] not in children
        names = meta["names"]
        assert sorted(meta["options"]) == sorted([names[meta["correct"]], names[meta["distractor"]]])
        assert item["answer"] == f"{meta['entity']} is a {names[meta['correct']]}."


def test_steps_are_a_shortest_path_of_stated_facts(items: list[dict]) -> None:
    for item in items:
        meta, steps = item["meta"], item["steps"]
        assert len(steps) >= 2
        assert steps[0].startswith(f"{meta['entity']} is a ")
        assert steps[-1].endswith(f" is a {meta['names'][meta['correct']]}.")
        for step in steps:
            assert step in item["question"]
        for before, after in itertools.pairwise(steps):
            assert after.startswith(f"Every {before.split()[-1][:-1]} is a ")


def test_option_order_is_balanced_and_names_are_fictional(items: list[dict]) -> None:
    first = sum(item["meta"]["options"][0] == item["meta"]["names"][item["meta"]["correct"]] for item in items)
    assert 0.4 < first / len(items) < 0.6
    vocabulary, people = set(prosqa.concept_names()), set(first_names(prosqa.PERSON_POOL))
    for item in items:
        meta = item["meta"]
        roots = [n for n, ps in enumerate(meta["parents"]) if not ps]
        assert roots[:2] == [0, 1] and meta["labels"][:2] == [1, 2]
        assert meta["entity"] == meta["names"][0]
        # Appendix A.2: every root is a person, every other node a concept
        assert {meta["names"][n] for n in roots} <= people
        assert {name for n, name in enumerate(meta["names"]) if n not in roots} <= vocabulary
        assert len(set(meta["names"])) == len(meta["names"])
        for root in roots:
            for child, ps in enumerate(meta["parents"]):
                if root in ps:
                    assert f"{meta['names'][root]} is a {meta['names'][child]}." in item["question"]


def test_generation_is_reproducible_and_distinct() -> None:
    assert prosqa.generate(20, seed=1) == prosqa.generate(20, seed=1)
    assert prosqa.generate(20, seed=1) != prosqa.generate(20, seed=2)
    questions = [i["question"] for i in prosqa.generate(100, seed=1)]
    assert len(set(questions)) == 100


def test_min_hops_and_bad_sizes() -> None:
    assert all(len(i["steps"]) >= 3 for i in prosqa.generate(30, seed=0, n_nodes=16, min_hops=3))
    with pytest.raises(ValueError, match="n_nodes=3"):
        prosqa.generate(1, seed=0, n_nodes=3)


@pytest.fixture(scope="module")
def paper_items() -> list[dict]:
    return prosqa.generate(500, seed=11)  # the defaults are the paper's: 28 nodes grown, 3+ hops


@pytest.mark.timeout(120)
def test_statistics_match_table_4(paper_items: list[dict]) -> None:
    """Table 4: 22.8 nodes, 36.5 edges, shortest path 3.8, 1.6 shortest paths (means)."""
    stats = prosqa.table_4_statistics(paper_items)
    assert set(stats) == set(prosqa.TABLE_4)
    assert abs(stats["nodes"] - 22.8) < 0.8
    assert abs(stats["edges"] - 36.5) < 2.0
    assert abs(stats["shortest_path"] - 3.8) < 0.2
    assert abs(stats["shortest_paths"] - 1.6) < 0.2
    # the released data (800 items): 14 to 28 nodes, 2.6 roots, paths of 3 to 6 steps
    nodes = [len(i["meta"]["parents"]) for i in paper_items]
    assert min(nodes) >= 14 and max(nodes) <= prosqa.PAPER_NODES
    assert statistics.pstdev(nodes) > 1.0
    roots = statistics.fmean(sum(not ps for ps in i["meta"]["parents"]) for i in paper_items)
    assert 2.3 < roots < 3.0
    hops = [len(i["steps"]) for i in paper_items]
    assert min(hops) == prosqa.PAPER_MIN_HOPS and 0.3 < sum(h == 3 for h in hops) / len(hops) < 0.55


def test_answer_is_the_deepest_leaf_of_the_deeper_root(paper_items: list[dict]) -> None:
    for item in paper_items:
        meta = item["meta"]
        graph = prosqa.Graph(tuple(map(tuple, meta["parents"])), tuple(meta["labels"]))
        children = graph.children
        leaves = [n for n in range(2, len(children)) if not children[n]]
        depth = {root: graph.distances(root) for root in (0, 1)}
        deepest = {r: max(depth[r][n] for n in leaves if meta["labels"][n] == r + 1) for r in (0, 1)}
        assert depth[0][meta["correct"]] == deepest[0] >= deepest[1]
        assert len(item["steps"]) == deepest[0]
        assert graph.count_shortest_paths(0, meta["correct"]) >= 1


def test_shortest_paths_are_counted() -> None:
    diamond = prosqa.Graph(((), (), (0,), (0,), (2, 3), (4,)), (1, 2, 1, 1, 1, 1))
    assert diamond.count_shortest_paths(0, 5) == 2
    assert diamond.count_shortest_paths(0, 4) == 2
    assert diamond.count_shortest_paths(1, 5) == 0
    assert diamond.distances(0) == {0: 0, 2: 1, 3: 1, 4: 2, 5: 3}
    swapped = diamond.with_entity_first(1)
    assert swapped.labels[:2] == (1, 2) and swapped.parents[2] == (1,)


def test_prontoqa_five_hops() -> None:
    items = prontoqa.generate(200, seed=0, hops=5)
    assert prontoqa.generate(200, seed=0, hops=5) == items
    for item in items:
        meta = item["meta"]
        assert len(item["steps"]) == 6  # five hops, then the property
        assert item["answer"] == ("True" if meta["holds"] else "False")
        assert item["question"].endswith(f"True or false: {meta['entity']} is {meta['property']}.")
        for a, b in zip(meta["chain"], meta["chain"][1:], strict=False):
            assert f"Every {a} is a {b}." in item["question"]
    share = sum(item["answer"] == "True" for item in items) / len(items)
    assert 0.4 < share < 0.6
