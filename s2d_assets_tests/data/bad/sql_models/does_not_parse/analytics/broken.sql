-- a broken model
SELECT task, count( FROM curated_pool
