-- How far the System 2 samples agree with themselves: per experiment, task and method, the number of
-- inputs whose majority answer got k of the N samples, for every k from 0 to N (empty levels
-- included), and how many of them the pool kept.
WITH levels AS (
    SELECT DISTINCT experiment, task, method, n_samples, unnest(range(0, n_samples + 1)) AS majority_votes
    FROM curated_pool
),

pool AS (
    SELECT experiment, task, method, n_samples, kept, CAST(round(agreement * n_samples) AS BIGINT) AS majority_votes
    FROM curated_pool
)

SELECT
    l.experiment,
    l.task,
    l.method,
    l.majority_votes,
    l.n_samples,
    round(l.majority_votes / nullif(l.n_samples, 0), 4) AS agreement,
    count(p.kept) AS inputs,
    count(*) FILTER (WHERE p.kept) AS kept
FROM levels AS l
LEFT JOIN pool AS p USING (experiment, task, method, n_samples, majority_votes)
GROUP BY l.experiment, l.task, l.method, l.majority_votes, l.n_samples
ORDER BY l.experiment, l.task, l.method, l.n_samples, l.majority_votes
