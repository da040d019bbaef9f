"""The notifier's use cases: one module per thing it does, each naming in its docstring the subjects it
carries out (``notify``: the events; ``channels``, ``subscriptions``, ``delivery_log``: the queries;
``delivery``: sending what is queued)."""
