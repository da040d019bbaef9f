"""What the metrics service does: on its own, driven by a timer or the Docker events stream (collect, watch
container lifecycles, evaluate alert rules, watch servers' reachability), and the queries it answers."""
