"""Optional Weights & Biases logging (`--wandb_project`): never a hard dependency.

`wandb` is imported only when a project is asked for (it is not a dependency);
`config.wandb_available()` lets validation fail early (exit 2, with the install command) instead
of after compilation.
"""

from __future__ import annotations


class WandbLogger:
    """Mirrors RunWriter's scalars and final status into one W&B run."""

    def __init__(self, project: str, run_name: str, config: dict, run_dir: str):
        import wandb  # guarded: only when asked for

        self._wandb = wandb
        self.run = wandb.init(project=project, name=run_name, config=config, dir=run_dir, reinit=True)

    def log(self, values: dict, step: int, epoch: int | None) -> None:
        data = {k: v for k, v in values.items() if v is not None}
        if epoch is not None:
            data["epoch"] = epoch
        self.run.log(data, step=step)

    def finish(self, status: str) -> None:
        self.run.summary["status"] = status
        self.run.finish(exit_code=0 if status == "completed" else 1)
