SELECT * FROM analytics.first
