SELECT * FROM glob('/root/*')
