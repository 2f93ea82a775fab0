SELECT * FROM read_csv('/etc/hostname')
