ATTACH '/tmp/other.duckdb' AS other
