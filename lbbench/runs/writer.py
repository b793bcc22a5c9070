"""Run outputs: TensorBoard event files (tensorboardX, no TensorFlow) plus metrics.jsonl.

Only process 0 writes; the others get a writer whose methods do nothing, so callers need no
`if process_index == 0` of their own. HParams are written into the run's own event file so the
HParams tab lines each run's configuration up against its final metrics.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import tempfile

import jax
import numpy as np
from tensorboard.compat.proto import summary_pb2 as tbs
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import plugin_data_pb2 as pd
from tensorboardX import FileWriter, SummaryWriter
from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata

from lbbench.config import Config
from lbbench.config.sections import help_texts
from lbbench.runs import hparams as hparams_lib
from lbbench.runs import locks
from lbbench.runs import tags as tags_lib
from lbbench.runs.atomic import finite_or_none
from lbbench.runs.wandb_logger import WandbLogger

_STATUS = {
    "completed": "STATUS_SUCCESS",
    "diverged": "STATUS_FAILURE",
    "failed": "STATUS_FAILURE",
    "running": "STATUS_RUNNING",
}


def _hparam_info(key: str, values: list, differs: bool, description: str):
    """One HParams column: its type from the values, their discrete domain (or interval), `differs`."""
    info = api_pb2.HParamInfo(name=key, description=description, differs=differs)
    if values and all(isinstance(v, bool) for v in values):
        info.type = api_pb2.DATA_TYPE_BOOL
    elif values and all(isinstance(v, float) for v in values):
        info.type = api_pb2.DATA_TYPE_FLOAT64
        info.domain_interval.min_value, info.domain_interval.max_value = min(values), max(values)
    else:
        info.type = api_pb2.DATA_TYPE_STRING
        info.domain_discrete.extend(str(v) for v in values)
    return info


def experiment_summary(sessions: list[dict], metrics, descriptions: dict):
    """The HParams `experiment` summary of a logdir: a column per key of its runs' sessions."""
    infos = [
        _hparam_info(k, values, differs, descriptions.get(k, ""))
        for k, (values, differs) in hparams_lib.columns(sessions).items()
    ]
    exp = api_pb2.Experiment(
        hparam_infos=infos,
        metric_infos=[
            api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m), description=tags_lib.describe(m)) for m in metrics
        ],
    )
    return _plugin_summary("_hparams_/experiment", pd.HParamsPluginData(version=0, experiment=exp))


def _session_start(hparams: dict):
    """A run's HParams session: its values (bool, number or string, as `hparams.encode` made them)."""
    ssi = pd.SessionStartInfo()
    for k, v in hparams.items():
        if isinstance(v, bool):
            ssi.hparams[k].bool_value = v
        elif isinstance(v, float):
            ssi.hparams[k].number_value = v
        else:
            ssi.hparams[k].string_value = str(v)
    return _plugin_summary("_hparams_/session_start_info", pd.HParamsPluginData(version=0, session_start_info=ssi))


def write_logdir_experiment(logdir: str, metrics) -> None:
    """(Re)write the logdir's one experiment summary from its runs, atomically (EXPERIMENT_FILE)."""
    sessions = hparams_lib.logdir_sessions(logdir)
    if not sessions:
        return
    _remove_stale_temporaries(logdir)
    tmp = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{socket.gethostname()}-{os.getpid()}-", dir=logdir)
    try:
        writer = FileWriter(tmp)
        writer.add_summary(experiment_summary(sessions, metrics, {**help_texts(), **HPARAM_HELP}))
        writer.close()
        (written,) = os.listdir(tmp)
        os.replace(os.path.join(tmp, written), os.path.join(logdir, hparams_lib.EXPERIMENT_FILE))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


TMP_PREFIX = ".hparams-"  # + host-pid-random: where the experiment file is written before its rename


def _remove_stale_temporaries(logdir: str) -> None:
    """Remove the temporary folders of writers on this host whose process is gone (killed mid-write)."""
    host = socket.gethostname()
    for name in os.listdir(logdir):
        if not name.startswith(f"{TMP_PREFIX}{host}-"):
            continue
        pid = name[len(TMP_PREFIX) + len(host) + 1 :].split("-", 1)[0]
        if pid.isdigit() and not locks.pid_alive(int(pid)):
            shutil.rmtree(os.path.join(logdir, name), ignore_errors=True)


HPARAM_HELP = {
    hparams_lib.SCALED_LR: "The learning rate after --lr_scaling to this batch size (before the schedule).",
    hparams_lib.STATUS: (
        "How the run ended: completed, diverged (loss NaN/inf), failed, or paused (a successive-halving rung)."
    ),
}


def _session_end(status: str):
    sei = pd.SessionEndInfo(status=api_pb2.Status.Value(_STATUS.get(status, "STATUS_UNKNOWN")))
    return _plugin_summary("_hparams_/session_end_info", pd.HParamsPluginData(version=0, session_end_info=sei))


def _plugin_summary(tag: str, data):
    meta = SummaryMetadata(
        plugin_data=SummaryMetadata.PluginData(plugin_name="hparams", content=data.SerializeToString())
    )
    return Summary(value=[Summary.Value(tag=tag, metadata=meta)])


def _first_scalar(tag: str, value: float, description: str):
    """A tag's first scalar, with metadata that names the scalars plugin and data class and carries
    the description. TensorBoard's fast (Rust) loader keeps a simple_value's metadata only when its
    data class is set, a field tensorboardX's protos lack: so the summary is built with TensorBoard's
    proto and re-read as tensorboardX's (protobuf keeps the unknown field when re-serialising)."""
    meta = tbs.SummaryMetadata(
        plugin_data=tbs.SummaryMetadata.PluginData(plugin_name="scalars"),
        summary_description=description,
        data_class=tbs.DATA_CLASS_SCALAR,
    )
    summary = tbs.Summary(value=[tbs.Summary.Value(tag=tag, simple_value=value, metadata=meta)])
    return Summary.FromString(summary.SerializeToString())


class RunWriter:
    """Scalars, figures and hparams to TensorBoard (and W&B if asked); one JSON line per record to
    metrics.jsonl.

    `hparams` is the full config dict; `close(status)` writes its HParams session (runs/hparams.py:
    the key hyperparameters, the non-default ones, `hparam_keys` or else the keys the sweep `grid`
    varies, and the status); the Text tab gets the command and the config at the start. Scalars
    logged with an `epoch` are also written under `per_epoch/<tag>` with the epoch as step, so runs
    with different batch sizes (and so different steps per epoch) line up. `close(status)` records
    the run's status as the HParams session status: a diverged or failed run shows as a failure.
    """

    def __init__(
        self,
        run_dir: str,
        hparams: dict,
        hparam_keys=None,
        grid: dict | None = None,
        wandb_project: str = "",
        command: str | None = None,
    ):
        self.enabled = jax.process_index() == 0
        if not self.enabled:
            return
        self.tb = SummaryWriter(logdir=run_dir, flush_secs=10)
        self.jsonl = open(os.path.join(run_dir, "metrics.jsonl"), "a")
        self._last_step: dict[str, int] = {}
        self._epoch: int | None = None
        self._closed = False
        self._hparams = hparams
        self._varying = list(hparam_keys or sorted({k for p in (grid or {}).get("grid", []) for k in p}))
        self.tb.add_text("config", config_markdown(hparams, command), 0)
        self.wandb = None
        if wandb_project:
            self.wandb = WandbLogger(wandb_project, hparams)

    def _add(self, tag: str, value: float, step: int) -> None:
        """One scalar; each tag's description goes with its first value; a repeat at a step is dropped."""
        last = self._last_step.get(tag)
        if last == step:
            return
        if last is None:
            self.tb.file_writer.add_summary(_first_scalar(tag, value, tags_lib.describe(tag)), step)
        else:
            self.tb.add_scalar(tag, value, step)
        self._last_step[tag] = step

    def scalars(self, step: int, values: dict, record: str | None = None, epoch: int | None = None) -> None:
        """Log each finite value under its tag at `step`, and under `per_epoch/<tag>` at `epoch` if given;
        write the record (with its epoch: this one, else the last one seen) to metrics.jsonl if `record`."""
        if not self.enabled:
            return
        if epoch is not None:
            self._epoch = epoch
        for tag, v in values.items():
            if v is not None and math.isfinite(float(v)):
                self._add(tag, float(v), step)
                if epoch is not None:
                    self._add(tags_lib.BY_EPOCH + tag, float(v), epoch)
        if self.wandb is not None:
            self.wandb.log({k: finite_or_none(v) for k, v in values.items() if v is not None}, step, epoch)
        if record:
            line = {
                "record": record,
                "step": step,
                "epoch": self._epoch,
                **{k: finite_or_none(v) for k, v in values.items()},
            }
            self.jsonl.write(json.dumps(line) + "\n")
            self.jsonl.flush()

    def step_series(self, tag: str, first_step: int, values) -> None:
        """Per-step values of one epoch (fetched once per epoch, not per step)."""
        if not self.enabled:
            return
        for i, v in enumerate(values):
            if math.isfinite(float(v)):
                self._add(tag, float(v), first_step + i)

    def charts(self, layout: dict) -> None:
        """TensorBoard custom-scalars layout: {category: {title: [tags]}}, several tags on one chart
        (e.g. lambda_max with its stability threshold)."""
        if self.enabled:
            self.tb.add_custom_scalars(
                {c: {t: ["Multiline", tags] for t, tags in charts.items()} for c, charts in layout.items()}
            )

    def histogram(self, tag: str, grid, density, step: int) -> None:
        """A density on a grid (e.g. the Hessian's spectral density) as a TensorBoard histogram."""
        if not self.enabled:
            return
        edges, weights = np.asarray(grid, np.float64), np.asarray(density, np.float64)
        counts = weights * np.gradient(edges)  # density × bin width: the mass of each bin
        total = float(counts.sum())
        self.tb.add_histogram_raw(
            tag,
            min=float(edges[0]),
            max=float(edges[-1]),
            num=total,
            sum=float((counts * edges).sum()),
            sum_squares=float((counts * edges**2).sum()),
            bucket_limits=edges.tolist(),
            bucket_counts=counts.tolist(),
            global_step=step,
        )

    def close(self, status: str = "completed") -> None:
        """Record the HParams session status (completed = success; diverged/failed = failure) and close."""
        if not self.enabled or self._closed:
            return
        self._closed = True
        self.tb.file_writer.add_summary(_session_start(hparams_lib.run_hparams(self._hparams, status, self._varying)))
        self.tb.file_writer.add_summary(_session_end(status))
        self.tb.close()
        self.jsonl.close()
        if self.wandb is not None:
            self.wandb.finish(status)


def config_markdown(config: dict, command: str | None = None) -> str:
    """The Text tab's record of a run: its command line, the flags that differ from the defaults, then every flag."""
    defaults = Config().to_dict()
    changed = [k for k, v in config.items() if k not in ("run_name", "workdir") and defaults.get(k, v) != v]
    lines = [f"**command:** `{command}`", ""] if command else []
    lines += ["| flag | value |", "|---|---|", *(f"| {k} | {config[k]} |" for k in changed)] if changed else []
    lines += ["", "all flags:", "", "```", json.dumps(config, indent=1, sort_keys=True), "```"]
    return "\n".join(lines)
