-- résumé
SELECT 1 AS x
