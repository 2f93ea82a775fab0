"""ProsQA and ProntoQA generators: graph properties, answers, balance, reproducibility."""

from __future__ import annotations

import itertools
import random
from collections import deque

import pytest

from s2d_assets.tasks import prontoqa, prosqa


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
    for _ in range(200):
        graph = prosqa.build_graph(rng, 16)
        assert graph.labels[:2] == (1, 2)
        for child, parents in enumerate(graph.parents):
            assert all(p < child for p in parents)  # parents precede children: no cycle is possible
            assert len(set(parents)) == len(parents)
            if child >= 2:
                expected = 0
                for p in parents:
                    expected |= graph.labels[p]
                assert graph.labels[child] == expected
                assert expected != 3  # parents come from one allowed group
    assert graph.edges()


def test_answer_reachable_from_entity_and_distractor_not(items: list[dict]) -> None:
    for item in items:
        meta = item["meta"]
        from_entity = reachable(meta["parents"], 0)
        assert meta["correct"] in from_entity
        assert meta["distractor"] not in from_entity
        children = {p for ps in meta["parents"] for p in ps}
        assert meta["correct"] not in children and meta["distractor"] not in children  # both are leaves
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
    vocabulary = set(prosqa.concept_names())
    assert all(set(item["meta"]["names"][1:]) <= vocabulary for item in items)


def test_generation_is_reproducible_and_distinct() -> None:
    assert prosqa.generate(20, seed=1) == prosqa.generate(20, seed=1)
    assert prosqa.generate(20, seed=1) != prosqa.generate(20, seed=2)
    questions = [i["question"] for i in prosqa.generate(100, seed=1)]
    assert len(set(questions)) == 100


def test_min_hops_and_bad_sizes() -> None:
    assert all(len(i["steps"]) >= 3 for i in prosqa.generate(30, seed=0, n_nodes=16, min_hops=3))
    with pytest.raises(ValueError, match="n_nodes=3"):
        prosqa.generate(1, seed=0, n_nodes=3)


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
