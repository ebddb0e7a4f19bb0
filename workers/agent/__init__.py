"""The host agent: Celery tasks that run on a compute host and drive it.

It imports no Django model, no app's models or services: everything it needs arrives in the
task's arguments, and it answers with a result (enforced by the import contract in pyproject).
"""
