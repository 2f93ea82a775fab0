SELECT * FROM analytics.second
