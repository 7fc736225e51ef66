"""STAND-IN for the cluster-manager's Celery app (package `app`): see app/tasks.py. A simulation, not inference."""
