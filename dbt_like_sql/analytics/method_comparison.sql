-- The paper's table, per experiment, task and System 2 method on the labelled eval split: accuracy (%) and
-- mean generated tokens of System 1 (the base model answering directly), System 2 (the method)
-- and the distilled System 1, with the distillation set's size and the pool's keep rate.
SELECT
    e.experiment,
    e.task,
    e.method,
    any_value(e.n) AS n,
    round(100 * any_value(e.accuracy) FILTER (WHERE e.system = 'system1'), 1) AS system1_accuracy,
    round(100 * any_value(e.accuracy) FILTER (WHERE e.system = 'system2'), 1) AS system2_accuracy,
    round(100 * any_value(e.accuracy) FILTER (WHERE e.system = 'distilled'), 1) AS distilled_accuracy,
    round(any_value(e.mean_tokens) FILTER (WHERE e.system = 'system1'), 1) AS system1_tokens,
    round(any_value(e.mean_tokens) FILTER (WHERE e.system = 'system2'), 1) AS system2_tokens,
    round(any_value(e.mean_tokens) FILTER (WHERE e.system = 'distilled'), 1) AS distilled_tokens,
    any_value(e.train_examples) FILTER (WHERE e.system = 'distilled') AS train_examples,
    any_value(p.keep_rate) AS pool_keep_rate
FROM evaluations AS e
LEFT JOIN pool_summary AS p ON e.experiment = p.experiment AND e.task = p.task AND e.method = p.method
WHERE e.split = 'eval'
GROUP BY e.experiment, e.task, e.method
ORDER BY e.experiment, e.task, e.method
