"""Rollouts: tasks owned by the scheduler that drive each deployment from its persisted state."""
