"""What the commands do, over the methods and backends: streaming classify, evaluate, the tuning
searches, compare (ranking saved runs), and the metrics and plots they report."""
