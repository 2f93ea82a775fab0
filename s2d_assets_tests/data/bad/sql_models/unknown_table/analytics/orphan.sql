-- reads a table nobody writes
SELECT * FROM pools_that_do_not_exist
