"""The names tiedae writes into the store: its tags and keys, MLflow's own that it sets, the
limits of one ``log_batch`` call, and the experiment's description."""

from tiedae.config.schemas import EPOCH_FLUSH_SECONDS  # noqa: F401  (RunLog.log_epoch's default)

ROLE = "tiedae.role"  # job | pretrain | sweep
SWEEP = "tiedae.sweep"
RUN_KEY = "tiedae.run_key"
PRETRAIN_KEY = "tiedae.pretrain_key"
HOST, PID = "tiedae.host", "tiedae.pid"
ERROR = "tiedae.error"  # on a run that stopped: why
SWEEP_STARTED = "tiedae.sweep_started_ms"  # on a sweep's parent: when it was last started
SWEEP_COMMANDS = "tiedae.commands"  # on a sweep's parent: the command lines that ran it
PARENT = "mlflow.parentRunId"
SKIPPED = "tiedae.skipped."  # + run key [+ . + launch digest], on a sweep's parent: a job
# skipped as FINISHED (by that launch)
LAUNCH = "tiedae.launch"  # on a job: which sweep process launched it (several may share a name)
LAUNCH_ENV = "TIEDAE_SWEEP_LAUNCH"  # set by the sweep's process, inherited by its workers
BATCH_LIMIT = 100  # MLflow's most params (and most tags) in one log_batch call
BATCH_ENTITIES = 1000  # MLflow's most params, tags and metrics in all in one log_batch call
NOTE = "mlflow.note.content"  # the description MLflow's UI shows on the experiment page
EXPERIMENT_KIND = "mlflow.experimentKind"  # custom_model_development: the UI opens on runs
EXPERIMENT_DESCRIPTION = """\
Semi-supervised pretraining on few labels (tiedae). Each **job** run (tag `tiedae.role=job`)
trains one classifier: a method (row of the table: tag `method`, e.g. `tied-autoencoder-frozen`),
a labeled count (param `labels.n`, tag `labels`) and a seed; its **pretrain** child runs hold the
autoencoders (or transfer sources) it reused, shared through a cache. A sweep's jobs are children
of a **sweep** run named `sweep <name>`.

Compare runs: filter `tags.tiedae.role = 'job'` (and `tags.tiedae.sweep = '<name>'`), add the
columns `test/accuracy`, tag `method` and param `labels.n`, then sort by `test/accuracy` or group
by `method`. Models: each job logs its classifier (`classifier`), each pretraining run its model
(`pretrained`), as MLflow Keras models; the Dataset column shows the images each run used
(contexts training, labeled, validation, test). `python -m tiedae.report` makes the table.
"""
EXPERIMENT_TAGS = {NOTE: EXPERIMENT_DESCRIPTION, EXPERIMENT_KIND: "custom_model_development"}

__all__ = [name for name in dict(globals()) if name.isupper()]  # all of the above
