-- What a correct answer costs, per experiment, task, method and system on the eval split: every generated
-- token (intermediate and final) divided by the number of correct answers. System 1 rows are the
-- base model's direct answers, the same for every method of a task.
SELECT
    experiment,
    task,
    method,
    system,
    n,
    CAST(round(accuracy * n) AS BIGINT) AS correct,
    CAST(round(mean_tokens * n) AS BIGINT) AS generated_tokens,
    round(mean_tokens * n / nullif(round(accuracy * n), 0), 1) AS tokens_per_correct
FROM evaluations
WHERE split = 'eval'
ORDER BY experiment, task, method, CASE system WHEN 'system1' THEN 0 WHEN 'system2' THEN 1 ELSE 2 END
