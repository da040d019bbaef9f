"""The scheduler's use cases: deployments (``deployments.py``), application removals (``removals.py``) and
the rollouts that carry both out (``rollout/``). ``cmd.system.ping`` is answered by ``handlers.on_ping``.
"""
