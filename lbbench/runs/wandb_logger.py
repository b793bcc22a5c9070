"""Optional Weights & Biases logging (`--wandb_project`): never a hard dependency.

`wandb` is imported only when a project is asked for (it is not a dependency);
`config.wandb_available()` lets validation fail early (exit 2, with the install command) instead
of after compilation.
"""

from __future__ import annotations

import os

from lbbench.runs.reader import read_json


def group_of(config: dict) -> str | None:
    """The W&B group a run belongs to: its sweep (the sweep folder's name), else its `--seeds` group
    (the run name without its `_s<seed>`), else none."""
    workdir, name = config.get("workdir") or ".", config.get("run_name") or ""
    if read_json(os.path.join(workdir, "sweep.json"))[0]:
        return os.path.basename(os.path.abspath(workdir))
    suffix = f"_s{config.get('seed')}"
    return name[: -len(suffix)] if name.endswith(suffix) and len(name) > len(suffix) else None


def wandb_dir(config: dict) -> str:
    """Where W&B keeps its local files: $WANDB_DIR if set, else `<workdir>/wandb` — never the run's
    staging folder, which is renamed when the run ends (a printed `wandb sync` path must stay valid)."""
    return os.environ.get("WANDB_DIR") or os.path.join(config.get("workdir") or ".", "wandb")


class WandbLogger:
    """Mirrors RunWriter's scalars and final status into one W&B run, named and grouped like the run."""

    def __init__(self, project: str, config: dict):
        import wandb  # guarded: only when asked for

        self._wandb = wandb
        where = wandb_dir(config)
        os.makedirs(where, exist_ok=True)
        self.run = wandb.init(
            project=project, name=config.get("run_name"), group=group_of(config), config=config, dir=where, reinit=True
        )

    def log(self, values: dict, step: int, epoch: int | None) -> None:
        data = {k: v for k, v in values.items() if v is not None}
        if epoch is not None:
            data["epoch"] = epoch
        self.run.log(data, step=step)

    def finish(self, status: str) -> None:
        self.run.summary["status"] = status
        self.run.finish(exit_code=0 if status == "completed" else 1)
