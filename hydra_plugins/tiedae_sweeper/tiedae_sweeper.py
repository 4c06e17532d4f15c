"""``hydra/sweeper=tiedae`` (the default of ``conf/config.yaml``): Hydra's basic sweeper (the
same grid, ``hydra.sweeper.params``, and batches), plus four things for tiedae's sweeps:

- every job's config is composed and checked (``tiedae.schedule.check_job``) before any job
  trains, so a bad value in the 90th job stops the sweep in a second with one line; a job
  whose settings repeat an earlier one's (``method=scratch`` in a sweep over the unlabeled
  pool, which it does not read) is launched once, and the progress line counts it once;
- the jobs run in ``hydra.sweeper.order``: ``pretraining_first`` (default) starts one job per
  pretraining first, so parallel workers never wait on each other's pretraining; ``grid`` keeps
  Hydra's order;
- jobs are composed by ``tiedae.loader.ReusingConfigLoader``, here and in the launcher's
  workers: each set of config-group choices once per process, not every job from scratch;
- under the joblib launcher, its workers start and import TensorFlow while the jobs are
  checked (``tiedae.schedule.warm_joblib_workers``), not after.

Hydra finds sweepers in the ``hydra_plugins`` namespace only; the work is done in ``tiedae``.
No ``from __future__ import annotations``: Hydra executes this module before it is in
``sys.modules``, where dataclasses cannot resolve string annotations.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Dict, Optional  # noqa: UP035 - OmegaConf reads these annotations

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class TiedaeSweeperConf:
    _target_: str = "hydra_plugins.tiedae_sweeper.tiedae_sweeper.TiedaeSweeper"
    max_batch_size: Optional[int] = None  # noqa: UP045
    params: Optional[Dict[str, str]] = None  # noqa: UP006, UP045
    order: str = "pretraining_first"  # or "grid": Hydra's order


ConfigStore.instance().store(
    group="hydra/sweeper", name="tiedae", node=TiedaeSweeperConf, provider="tiedae"
)


class TiedaeSweeper(BasicSweeper):
    def __init__(
        self,
        max_batch_size: int | None,
        params: dict[str, str] | None = None,
        order: str = "pretraining_first",
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.order = order

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from tiedae.loader import ReusingConfigLoader

        loader = ReusingConfigLoader.like(hydra_context.config_loader)
        context = HydraContext(config_loader=loader, callbacks=hydra_context.callbacks)
        super().setup(hydra_context=context, task_function=task_function, config=config)

    def get_job_batch(self) -> Sequence[Sequence[str]]:
        """The next batch, each job composed and checked, in ``self.order``."""
        from tiedae.cli import USER_ERRORS, exit_with_error
        from tiedae.schedule import (
            first_of_each,
            job_key,
            order_jobs,
            pretraining_key,
            warm_joblib_workers,
        )
        from tiedae.sweep import note_repeated_jobs

        batch = super().get_job_batch()
        warming = warm_joblib_workers(self.launcher)  # while the jobs are checked
        try:
            configs = [self._checked(job) for job in batch]
            kept = first_of_each([job_key(cfg) for cfg in configs])
            note_repeated_jobs(len(batch) - len(kept))
            keys = [pretraining_key(configs[i]) for i in kept]
            return order_jobs([batch[i] for i in kept], keys, self.order)
        except USER_ERRORS as error:
            exit_with_error(error)
        finally:
            if warming is not None:
                warming.join()

    def _checked(self, job: Sequence[str]) -> DictConfig:
        """The job's task config, composed as its worker will and checked."""
        from tiedae.compose import one_line
        from tiedae.config import ConfigError
        from tiedae.schedule import check_job

        try:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(job))
        except HydraException as error:
            raise ConfigError(one_line(error, job)) from None
        return check_job(cfg, job)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> Any:
        """Done by :meth:`get_job_batch`, which composes and checks every job of the batch."""
