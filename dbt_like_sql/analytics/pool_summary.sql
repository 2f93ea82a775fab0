-- Per experiment, task and System 2 method: how many train inputs the pool judged, how many
-- self-consistency kept, the keep rate, the mean agreement of the majority answer, and why
-- the others were dropped.
-- materialized: table
SELECT
    experiment,
    task,
    method,
    count(*) AS inputs,
    count(*) FILTER (WHERE kept) AS kept,
    round(count(*) FILTER (WHERE kept) / count(*), 4) AS keep_rate,
    round(avg(agreement), 4) AS mean_agreement,
    round(avg(agreement) FILTER (WHERE kept), 4) AS mean_agreement_kept,
    count(*) FILTER (WHERE reason = 'no_unique_majority') AS dropped_tie,
    count(*) FILTER (WHERE reason = 'below_min_agreement') AS dropped_low_agreement,
    count(*) FILTER (WHERE reason = 'no_parsed_answer') AS dropped_no_answer
FROM curated_pool
GROUP BY experiment, task, method
ORDER BY experiment, task, method
