"""What the Airflow DAGs need from the pipeline, kept out of the DAG files.

``settings``: deployment settings read from the environment at parse time (schedule, queue,
pools, timeouts) and the base that relative paths in DAG params resolve against (``CLM_HOME``).
``params``: DAG params -> a validated run config, with messages that name the param to fix.
``assets``: corpus and model Asset URIs, the aliases the DAGs publish through, and reading the
corpus back from a triggering asset event. ``retry``: which failures are worth a retry.
``failures``: the summary a failed task leaves behind. ``corpus_tasks`` / ``model_tasks``: the
task bodies, one call each into the pipeline.

Every module here except the two ``*_tasks`` is cheap to import (the DAG files import them
while being parsed); the task modules import the heavy stages inside their functions.
"""
