"""The scheduler's use cases: deployments, their rollouts and application removals."""
