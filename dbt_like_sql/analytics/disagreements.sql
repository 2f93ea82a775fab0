-- Train inputs whose System 2 samples split between answers: the competing parsed answers with
-- their votes (most votes first), how many samples gave no answer, and what the pool decided.
-- For reading the hard cases by eye.
WITH votes AS (
    SELECT experiment, task, method, input_id, answer, count(*) AS votes
    FROM generations
    WHERE system = 'system2' AND split = 'train' AND variant_id = 0 AND answer IS NOT NULL
    GROUP BY experiment, task, method, input_id, answer
),

samples AS (
    SELECT experiment, task, method, input_id, count(*) AS samples, count(*) FILTER (WHERE answer IS NULL) AS unparsed
    FROM generations
    WHERE system = 'system2' AND split = 'train' AND variant_id = 0
    GROUP BY experiment, task, method, input_id
),

split_inputs AS (
    SELECT
        experiment,
        task,
        method,
        input_id,
        count(*) AS distinct_answers,
        string_agg(answer || ' (' || votes || ')', ', ' ORDER BY votes DESC, answer) AS competing_answers
    FROM votes
    GROUP BY experiment, task, method, input_id
    HAVING count(*) > 1
)

SELECT
    s.experiment,
    s.task,
    s.method,
    s.input_id,
    i.prompt,
    s.competing_answers,
    s.distinct_answers,
    n.samples,
    n.unparsed,
    c.answer AS pool_answer,
    c.kept,
    c.reason
FROM split_inputs AS s
JOIN samples AS n USING (experiment, task, method, input_id)
JOIN inputs AS i USING (experiment, task, input_id)
LEFT JOIN curated_pool AS c USING (experiment, task, method, input_id)
ORDER BY s.experiment, s.task, s.method, s.distinct_answers DESC, s.input_id
