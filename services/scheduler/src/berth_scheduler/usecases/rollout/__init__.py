"""Rollouts: tasks owned by the scheduler that drive each deployment (``cmd.deployment.start``) and each
removal (``cmd.application.remove``) from its persisted state, one task per application."""
