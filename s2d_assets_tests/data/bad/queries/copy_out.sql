COPY inputs TO '/tmp/leak.csv'
