"""What a run sets for its whole process before any model is built: TensorFlow's thread pools
and op determinism, Keras's dtype policy, and the import-time heap frozen out of the garbage
collector's way. Every entry point that trains calls ``configure_runtime``."""

from __future__ import annotations

import functools
import gc

import keras
import tensorflow as tf
from omegaconf import DictConfig

from tiedae.config import precision_name


def configure_tensorflow(threads: int, deterministic: bool, inter_op_threads: int = 0) -> None:
    """Thread pools and op determinism; call once per process, before any op runs.

    ``threads`` splits one op across cores (intra-op), ``inter_op_threads`` runs independent
    ops side by side; 0 leaves TensorFlow's default (all cores). Neither changes the numbers.
    """
    try:
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
        if inter_op_threads:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
    except RuntimeError:
        pass  # already initialised in this process (e.g. a reused sweep worker)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def _configure_precision(precision: str) -> None:
    """Keras's dtype policy for every layer built from now on in this process: ``float32``,
    or ``mixed_bfloat16`` (variables float32, each layer computes in bfloat16). Models keep
    their outputs float32 (``tiedae.models.OUTPUT_DTYPE``); call it before building any."""
    keras.config.set_dtype_policy(precision)


def configure_runtime(cfg: DictConfig, deterministic: bool | None = None) -> None:
    """What ``cfg.runtime`` sets for the whole process, before any model is built: thread
    pools, op determinism (``deterministic``, when given, instead of the config's) and the
    dtype policy (``runtime.precision``). Every entry point that trains calls it."""
    runtime = cfg.runtime
    if deterministic is None:
        deterministic = runtime.deterministic
    configure_tensorflow(runtime.threads, deterministic, runtime.inter_op_threads)
    _configure_precision(precision_name(cfg))
    freeze_imported_objects()


@functools.cache
def freeze_imported_objects() -> None:
    """Once a process: put what the imports made (TensorFlow, Keras, MLflow: ~500,000 Python
    objects, alive until exit anyway) out of the garbage collector's reach (``gc.freeze``).

    A full collection walks every tracked object: ~0.2-0.3 s here, paid at each automatic one
    and, in a sweep's joblib worker, after every job (loky calls ``gc.collect()`` between tasks
    when psutil is absent): a third of the time between two jobs. Objects made later are
    collected as before."""
    gc.collect()
    gc.freeze()
