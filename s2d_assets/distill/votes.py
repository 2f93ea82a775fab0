"""The curation filters as set-based DuckDB queries: every input's decision in one query.

The queries read answer counts, not samples: ``answer_counts`` holds each (input, variant)'s
distinct answers and how many samples gave each, written with the generations
(``core/warehouse.py``), so a filter change recounts nothing. ``decide_in`` runs over the counts
a SELECT names, inside the connection that holds them (the stage's own warehouse connection), so
nothing is copied out; ``decide`` counts a polars frame of samples the same way first. See
``distill/curate.py`` for what each filter means.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import polars as pl

from s2d_assets.config.curation import CURATION_FILTERS
from s2d_assets.core.warehouse import COUNT_AGGREGATES, COUNT_KEYS
from s2d_assets.tasks.base import TRAIN
from s2d_assets.tasks.judging import POSITION_INCONSISTENT

KEPT = "kept"
NO_ANSWER = "no_parsed_answer"
TIE = "no_unique_majority"
LOW_AGREEMENT = "below_min_agreement"
PERTURBATION_DISAGREEMENT = "perturbation_disagreement"
USC_NO_SELECTION = "usc_no_selection"
UNPARSED_MODES = ("ignore", "count")

POOL_COLUMNS = ("input_id", "answer", "votes", "n_samples", "agreement", "kept", "reason")

# -- the set-based decision query ---------------------------------------------------------------
# ``counts(input_id, variant_id, answer, c, first_sample, answer_map)``: one row per distinct answer of
# an (input, variant), ``c`` samples gave it. ``mapped`` is the answer mapped back to the original
# input (NULL when unparsed or unmappable).
_MAPPED = """
mapped AS (
    SELECT input_id, variant_id, answer, c, first_sample,
           CASE WHEN answer IS NULL THEN NULL
                WHEN answer_map IS NULL OR answer_map = '{}' THEN answer
                ELSE json_extract_string(answer_map, '$."' || replace(replace(answer, '\\', '\\\\'), '"', '\\"') || '"')
           END AS mapped
    FROM counts
),
-- each (input, variant)'s vote counts, ranked
variant_votes AS (
    SELECT input_id, variant_id, mapped, sum(c) AS c,
           row_number() OVER (PARTITION BY input_id, variant_id ORDER BY sum(c) DESC, mapped) AS rk
    FROM mapped WHERE mapped IS NOT NULL GROUP BY input_id, variant_id, mapped
),
variant_n AS (SELECT input_id, variant_id, $n_of(mapped) AS n FROM mapped GROUP BY input_id, variant_id),
variant_top AS (
    SELECT n.input_id, n.variant_id, n.n,
           first.mapped AS winner_candidate, coalesce(first.c, 0) AS top,
           coalesce(second.c, 0) AS runner_up,
           CASE WHEN first.c IS NOT NULL AND coalesce(second.c, 0) < first.c THEN first.mapped END AS winner
    FROM variant_n n
    LEFT JOIN variant_votes first ON first.input_id = n.input_id AND first.variant_id = n.variant_id AND first.rk = 1
    LEFT JOIN variant_votes second
        ON second.input_id = n.input_id AND second.variant_id = n.variant_id AND second.rk = 2
)
"""

_VOTES = """
votes AS (
    SELECT input_id,
           '{{' || string_agg(to_json(v) || ': ' || c, ', ' ORDER BY v) || '}}' AS votes_json,
           list(struct_pack(v := v, c := c)) AS vote_list
    FROM (SELECT input_id, {answer} AS v, sum(c)::BIGINT AS c FROM mapped
          WHERE {answer} IS NOT NULL {where} GROUP BY input_id, v)
    GROUP BY input_id
),
totals AS (SELECT input_id, sum(c) AS n_all, $n_of({answer}) AS n FROM mapped WHERE TRUE {where} GROUP BY input_id)
"""
_DISCARD = f"'{POSITION_INCONSISTENT}'"


def _head(mapped: bool) -> str:
    """The shared CTEs; the votes are over the mapped answers of every variant, or variant 0's own answers."""
    votes = (
        _VOTES.format(answer="mapped", where="")
        if mapped
        else _VOTES.format(answer="answer", where="AND variant_id = 0")
    )
    return f"WITH {_MAPPED}, {votes}"


_SELECT_VOTES = "coalesce(vo.votes_json, '{}') AS votes, t.n_all::INTEGER AS n_samples"


def _self_consistency_sql() -> str:
    # The common case, kept lean: one pass over variant 0's counts to per-input decisions.
    # The top two counts (``max(c, 2)``) tell a tie exactly; ``arg_max`` and ``string_agg`` pass over
    # the unparsed (NULL) answer by themselves. The votes object lists its answers in no
    # particular order: ordering them took the stage past 1.5x a bare vote (docs/benchmarks.md).
    return f"""WITH per_input AS (
        SELECT input_id, sum(c) AS n_all, coalesce(sum(c) FILTER (WHERE answer IS NOT NULL), 0) AS n_parsed,
               max(c, 2) FILTER (WHERE answer IS NOT NULL) AS top_two,
               arg_max(answer, c) AS winner_candidate,
               '{{' || coalesce(string_agg(to_json(answer) || ': ' || c, ', '), '') || '}}' AS votes
        FROM counts WHERE variant_id = 0 GROUP BY input_id
    ),
    decided AS (
        SELECT *, coalesce(top_two[1], 0) AS top, coalesce(top_two[2] = top_two[1], false) AS tied FROM per_input
    )
    SELECT input_id,
           CASE WHEN top = 0 OR tied OR winner_candidate = {_DISCARD} THEN NULL ELSE winner_candidate END
               AS answer,
           votes, n_all::INTEGER AS n_samples,
           CASE WHEN top = 0 THEN 0.0 ELSE top / $n_col END AS agreement,
           (top > 0 AND NOT tied AND winner_candidate <> {_DISCARD} AND top / $n_col >= $min_agreement) AS kept,
           CASE WHEN top = 0 THEN '{NO_ANSWER}' WHEN tied THEN '{TIE}'
                WHEN winner_candidate = {_DISCARD} THEN '{POSITION_INCONSISTENT}'
                WHEN top / $n_col < $min_agreement THEN '{LOW_AGREEMENT}' ELSE '{KEPT}' END AS reason
    FROM decided"""


def _first_sample_sql() -> str:
    head, select_votes = _head(mapped=False), _SELECT_VOTES
    return f"""{head},
    first AS (SELECT input_id, arg_min_null(answer, first_sample) AS answer FROM mapped WHERE variant_id = 0
              GROUP BY input_id)
    SELECT t.input_id, CASE WHEN f.answer = {_DISCARD} THEN NULL ELSE f.answer END AS answer, {select_votes},
           CASE WHEN f.answer IS NULL THEN 0.0
                ELSE list_filter(vo.vote_list, lambda x: x.v = f.answer)[1].c / t.n END AS agreement,
           f.answer IS NOT NULL AND f.answer <> {_DISCARD} AS kept,
           CASE WHEN f.answer IS NULL THEN '{NO_ANSWER}' WHEN f.answer = {_DISCARD} THEN '{POSITION_INCONSISTENT}'
                ELSE '{KEPT}' END AS reason
    FROM totals t JOIN first f USING (input_id) LEFT JOIN votes vo ON vo.input_id = t.input_id"""


def _perturbation_sql(combined: bool) -> str:
    head, select_votes = _head(mapped=True), _SELECT_VOTES
    # ``base``: variant 0's own self-consistency (used by ``combined``).
    base_kept = (
        f"(b.top > 0 AND b.runner_up < b.top AND b.winner_candidate <> {_DISCARD} AND b.top / b.n >= $min_agreement)"
    )
    base_reason = (
        f"CASE WHEN b.top = 0 THEN '{NO_ANSWER}' WHEN b.runner_up = b.top THEN '{TIE}' "
        f"WHEN b.winner_candidate = {_DISCARD} THEN '{POSITION_INCONSISTENT}' "
        f"WHEN b.top / b.n < $min_agreement THEN '{LOW_AGREEMENT}' ELSE '{KEPT}' END"
    )
    base_answer = "CASE WHEN b.top = 0 OR b.runner_up = b.top THEN NULL ELSE b.winner_candidate END"
    target = base_answer if combined else "b.winner"
    agreement = (
        f"CASE WHEN {target} IS NULL THEN 0.0 "
        f"ELSE coalesce(list_filter(vo.vote_list, lambda x: x.v = {target})[1].c, 0) / t.n END"
    )
    disagree = f"({target} IS NULL OR a.disagreeing > 0)"
    pre = ""
    if combined:
        dropped = f"CASE WHEN b.winner_candidate = {_DISCARD} THEN NULL ELSE ({base_answer}) END"
        pre = (
            f"WHEN NOT {base_kept} THEN struct_pack(answer := {dropped}, "
            f"agreement := CASE WHEN b.top = 0 THEN 0.0 ELSE b.top / b.n END, kept := false, "
            f"reason := {base_reason})"
        )
    return f"""{head},
    agree AS (
        SELECT v.input_id, count(*) FILTER (WHERE v.winner IS DISTINCT FROM {target}) AS disagreeing
        FROM variant_top v JOIN variant_top b ON b.input_id = v.input_id AND b.variant_id = 0
        GROUP BY v.input_id
    ),
    decided AS (
        SELECT t.input_id, {select_votes},
               CASE WHEN vo.votes_json IS NULL THEN
                        struct_pack(answer := NULL::VARCHAR, agreement := 0.0, kept := false,
                                    reason := '{NO_ANSWER}')
                    {pre}
                    WHEN {target} = {_DISCARD} THEN
                        struct_pack(answer := NULL::VARCHAR, agreement := {agreement}, kept := false,
                                    reason := '{POSITION_INCONSISTENT}')
                    WHEN {disagree} THEN struct_pack(answer := NULL::VARCHAR, agreement := {agreement},
                                                     kept := false, reason := '{PERTURBATION_DISAGREEMENT}')
                    ELSE struct_pack(answer := {target}, agreement := {agreement}, kept := true, reason := '{KEPT}')
               END AS d
        FROM totals t JOIN variant_top b ON b.input_id = t.input_id AND b.variant_id = 0
        JOIN agree a ON a.input_id = t.input_id LEFT JOIN votes vo ON vo.input_id = t.input_id
    )
    SELECT input_id, d.answer AS answer, votes, n_samples, d.agreement::DOUBLE AS agreement,
           d.kept AS kept, d.reason AS reason FROM decided"""


class CurationFilter:
    """A curation filter: every input's decision (``POOL_COLUMNS``) for a (task, method)'s train samples.

    Registered in ``config/curation.py``'s ``CURATION_FILTERS`` with its traits. ``version``: what else
    than the curation settings shapes its decisions (e.g. a prompt it sends), part of the pool's code version.
    """

    version: Any = None

    def decide(self, ctx: Any, task_name: str, method_name: str, spec: Any) -> pl.DataFrame:
        raise NotImplementedError


@dataclass(frozen=True)
class VoteFilter(CurationFilter):
    """A filter decided by one set-based query over the answer counts (``sql``: over ``counts``)."""

    sql: str

    def decide(self, ctx: Any, task_name: str, method_name: str, spec: Any) -> pl.DataFrame:
        params = [ctx.experiment.name, task_name, method_name, TRAIN]
        source = COUNTS_SQL if CURATION_FILTERS.traits(spec.filter).needs_variants else ORIGINAL_COUNTS_SQL
        with ctx.warehouse.connect() as con:
            return decide_in(con, source, params, spec.filter, spec.min_agreement, spec.unparsed)


SELF_CONSISTENCY = VoteFilter(_self_consistency_sql())
FIRST_SAMPLE = VoteFilter(_first_sample_sql())
PERTURBATION = VoteFilter(_perturbation_sql(combined=False))
COMBINED = VoteFilter(_perturbation_sql(combined=True))


# The stage's answer counts, read where they lie (``?``: experiment, task, method, split).
COUNTS_SQL = (
    "SELECT a.input_id, a.variant_id, a.answer, a.c, a.first_sample, p.answer_map::VARCHAR AS answer_map "
    "FROM answer_counts a LEFT JOIN perturbed_inputs p "
    "ON p.experiment = a.experiment AND p.task = a.task AND p.input_id = a.input_id "
    "AND p.variant_id = a.variant_id WHERE a.experiment = ? AND a.task = ? AND a.method = ? "
    "AND a.system = 'system2' AND a.split = ?"
)
# Filters that read no answer map (self-consistency, none) skip the join.
ORIGINAL_COUNTS_SQL = (
    "SELECT input_id, variant_id, answer, c, first_sample, NULL::VARCHAR AS answer_map FROM answer_counts "
    "WHERE experiment = ? AND task = ? AND method = ? AND system = 'system2' AND split = ?"
)


def decide_in(
    con: duckdb.DuckDBPyConnection,
    source_sql: str,
    params: Sequence[object],
    filter_kind: str,
    min_agreement: float = 0.0,
    unparsed: str = "ignore",
) -> pl.DataFrame:
    """Every input's decision from the answer counts ``source_sql`` selects in ``con`` (one query, no copy).

    ``source_sql`` selects ``input_id, variant_id, answer, c, first_sample, answer_map`` with ``params``.
    Returns one row per input with ``POOL_COLUMNS``, ordered by ``input_id``. Inputs without a
    variant 0 are an error. ``unparsed``: ``ignore`` = a vote share is over the samples that vote;
    ``count`` = over every sample. ``n_samples`` is every sample either way.
    """
    if unparsed not in UNPARSED_MODES:
        raise ValueError(f"unparsed must be one of {UNPARSED_MODES}, got {unparsed!r}")
    threshold = float(min_agreement)
    if threshold != threshold or threshold in (float("inf"), float("-inf")):
        raise ValueError(f"min_agreement must be a finite number, got {min_agreement!r}")
    implementation = CURATION_FILTERS.implementation(filter_kind)
    if not isinstance(implementation, VoteFilter):
        raise ValueError(f"curation filter {filter_kind!r} is not decided by a vote over answer counts")
    sql = implementation.sql.replace("$min_agreement", f"CAST({threshold!r} AS DOUBLE)")
    # N: every sample (``count``) or only the samples that vote (``ignore``).
    every, voting = "sum(c)", r"coalesce(sum(c) FILTER (WHERE \1 IS NOT NULL), 0)"
    sql = re.sub(r"\$n_of\(([^()]*)\)", every if unparsed == "count" else voting, sql)
    sql = sql.replace("$n_col", "n_all" if unparsed == "count" else "n_parsed")
    sql = sql.replace("WITH ", f"WITH counts AS ({source_sql}),\n", 1)
    frame = con.sql(sql + " ORDER BY 1", params=list(params)).pl()
    if CURATION_FILTERS.traits(filter_kind).needs_variants:
        missing = con.sql(
            f"SELECT input_id FROM ({source_sql}) GROUP BY input_id "
            "HAVING count(*) FILTER (WHERE variant_id = 0) = 0 LIMIT 1",  # no count row: no sample
            params=list(params),
        ).fetchall()
        if missing:
            raise ValueError(f"input {missing[0][0]}: variant 0 (the input itself) is missing")
    return frame.select(
        pl.col("input_id"),
        pl.col("answer").cast(pl.String),
        pl.col("votes"),
        pl.col("n_samples").cast(pl.Int32),
        pl.col("agreement").cast(pl.Float64),
        pl.col("kept").cast(pl.Boolean),
        pl.col("reason"),
    )


def decide(
    samples: pl.DataFrame | Any, filter_kind: str, min_agreement: float = 0.0, unparsed: str = "ignore"
) -> pl.DataFrame:
    """``decide_in`` over a polars frame (or anything DuckDB can scan) of samples
    (``input_id, variant_id, sample_idx, answer, answer_map``), counted as the warehouse counts them."""
    con = duckdb.connect()
    try:
        con.register("frame_samples", samples)
        counted = (
            f"SELECT {COUNT_KEYS}, {COUNT_AGGREGATES}, any_value(answer_map) AS answer_map FROM frame_samples "
            f"GROUP BY {COUNT_KEYS}"
        )
        return decide_in(con, counted, [], filter_kind, min_agreement, unparsed)
    finally:
        con.close()


def sample_counts(con: duckdb.DuckDBPyConnection, params: Sequence[object]) -> dict[str, int]:
    row = con.sql(
        f"SELECT sum(c), coalesce(sum(c) FILTER (WHERE answer IS NULL), 0), "
        f"coalesce(sum(c) FILTER (WHERE answer = '{POSITION_INCONSISTENT}'), 0) FROM ({ORIGINAL_COUNTS_SQL})",
        params=list(params),
    ).fetchall()[0]
    return {
        "samples": int(row[0] or 0),
        "unparsed_samples": int(row[1]),
        "position_inconsistent_samples": int(row[2]),
    }
