"""Run outputs: TensorBoard event files (tensorboardX, no TensorFlow) plus metrics.jsonl.

Only process 0 writes; the others get a writer whose methods do nothing, so callers need no
`if process_index == 0` of their own. HParams are written into the run's own event file so the
HParams tab lines each run's configuration up against its final metrics.
"""

from __future__ import annotations

import json
import math
import os

import jax
import numpy as np
from tensorboard.compat.proto import summary_pb2 as tbs
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import plugin_data_pb2 as pd
from tensorboardX import SummaryWriter
from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata

from lbbench.config import help_texts
from lbbench.runs import hparams as hparams_lib
from lbbench.runs import tags as tags_lib
from lbbench.runs.atomic import finite_or_none
from lbbench.runs.wandb_logger import WandbLogger

_STATUS = {
    "completed": "STATUS_SUCCESS",
    "diverged": "STATUS_FAILURE",
    "failed": "STATUS_FAILURE",
    "running": "STATUS_RUNNING",
}


def _hparams_summaries(hparams: dict, metrics, descriptions: dict, domains: dict):
    """HParams `experiment` and `session_start_info` summaries, built with TensorBoard's own protos
    (they have `differs`, which decides which columns the tab shows) and written by tensorboardX.
    Keys whose sweep domain has several values are marked `differs`."""
    ssi, infos = pd.SessionStartInfo(), []
    for k, v in hparams.items():
        info = api_pb2.HParamInfo(name=k, description=descriptions.get(k, ""))
        domain = [hparams_lib.encode(x) for x in domains.get(k, ())]
        if isinstance(v, bool):
            ssi.hparams[k].bool_value, info.type = v, api_pb2.DATA_TYPE_BOOL
        elif isinstance(v, float):
            ssi.hparams[k].number_value, info.type = v, api_pb2.DATA_TYPE_FLOAT64
            if domain:
                info.domain_interval.min_value, info.domain_interval.max_value = min(domain), max(domain)
        else:
            ssi.hparams[k].string_value, info.type = str(v), api_pb2.DATA_TYPE_STRING
            if domain and str(v) in map(str, domain):
                info.domain_discrete.extend(str(x) for x in domain)
        info.differs = len(domain) > 1
        infos.append(info)
    exp = api_pb2.Experiment(
        hparam_infos=infos,
        metric_infos=[
            api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m), description=tags_lib.describe(m)) for m in metrics
        ],
    )
    return (
        _plugin_summary("_hparams_/experiment", pd.HParamsPluginData(version=0, experiment=exp)),
        _plugin_summary("_hparams_/session_start_info", pd.HParamsPluginData(version=0, session_start_info=ssi)),
    )


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

    `hparams` is the full config dict. HParams shows `hparam_keys` if given, else the core keys plus
    the keys the sweep `grid` varies (`grid` = `hparams.sweep_grid(sweep_dir)`: {"grid": [override
    dicts], "base": base config dict}, or None for a single run); see lbbench/hparams.py. Scalars
    logged with an `epoch` are also written under `by_epoch/<tag>` with the epoch as step, so runs
    with different batch sizes (and so different steps per epoch) line up. `close(status)` records
    the run's status as the HParams session status: a diverged or failed run shows as a failure.
    """

    def __init__(
        self, run_dir: str, hparams: dict, hparam_keys=None, grid: dict | None = None, wandb_project: str = ""
    ):
        self.enabled = jax.process_index() == 0
        if not self.enabled:
            return
        self.tb = SummaryWriter(logdir=run_dir, flush_secs=10)
        self.jsonl = open(os.path.join(run_dir, "metrics.jsonl"), "a")
        self._last_step: dict[str, int] = {}
        self._epoch: int | None = None
        self._closed = False
        if hparam_keys is None:
            hparam_keys = hparams_lib.experiment_keys(sorted({k for p in (grid or {}).get("grid", []) for k in p}))
        exp, ssi = _hparams_summaries(
            hparams_lib.select(hparams, hparam_keys),
            hparams_lib.metric_tags(hparams),
            help_texts(),
            hparams_lib.grid_domains(grid, hparam_keys),
        )
        self.tb.file_writer.add_summary(exp)
        self.tb.file_writer.add_summary(ssi)
        self.wandb = None
        if wandb_project:
            self.wandb = WandbLogger(wandb_project, os.path.basename(os.path.normpath(run_dir)), hparams, run_dir)

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
        """Log each finite value under its tag at `step`, and under `by_epoch/<tag>` at `epoch` if given;
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
        self.tb.file_writer.add_summary(_session_end(status))
        self.tb.close()
        self.jsonl.close()
        if self.wandb is not None:
            self.wandb.finish(status)
