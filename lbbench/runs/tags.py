"""The one table of metric names: each record key's TensorBoard tag, report label and description.

`tag(key)` is the TensorBoard tag of an epoch-record key (e.g. test_accuracy -> test/accuracy);
`label(key)` its column label in reports; `describe(tag)` the description TensorBoard shows beside
a chart, looked up by exact tag, then without a `per_epoch/` prefix, then by its first component, so
instrument tags such as `sharpness/eps_full_0.001` and `per_epoch/accuracy/test` are described too.
"""

from __future__ import annotations

import dataclasses

# Tag groups, named so TensorBoard (which sorts groups alphabetically) opens on accuracy and loss:
# accuracy/, loss/, then mid_epoch/, noise_scale/, optim/, per_epoch/, perf/, result/, sharpness/, train_steps/.
BY_EPOCH = "per_epoch/"  # every epoch scalar again with the epoch as its step
MID_EPOCH = "mid_epoch/"  # validation and test evaluated every --eval_every_steps steps
RESULT = "result/"  # the end-of-run values result.json keeps under `final` (HParams metrics)
STEP_LOSS = "train_steps/loss"  # the loss of every optimizer step


@dataclasses.dataclass(frozen=True)
class Metric:
    key: str  # epoch record / result.json key
    tag: str  # TensorBoard tag
    label: str  # column label in reports
    description: str


METRICS = (
    Metric(
        "train_loss",
        "loss/train",
        "train loss",
        "Training loss (--loss; cross-entropy by default) on the fixed 10k-example training subset, "
        "evaluated after the epoch.",
    ),
    Metric(
        "train_accuracy",
        "accuracy/train",
        "train acc",
        "Accuracy on the fixed training subset (same examples for every run), after the epoch.",
    ),
    Metric(
        "val_loss",
        "loss/validation",
        "val loss",
        "Training loss (--loss) on the held-out validation set after the epoch (what studies select on).",
    ),
    Metric(
        "val_accuracy",
        "accuracy/validation",
        "val acc",
        "Accuracy on the held-out validation set after the epoch (what studies select and stop on).",
    ),
    Metric("test_loss", "loss/test", "test loss", "Training loss (--loss) on the full test set after the epoch."),
    Metric("test_accuracy", "accuracy/test", "test acc", "Accuracy on the full test set after the epoch."),
    Metric(
        "generalization_gap",
        "accuracy/gap",
        "gap (train − test acc)",
        "Generalization gap: train accuracy minus test accuracy (positive = overfitting).",
    ),
    Metric("loss_gap", "loss/gap", "loss gap (test − train)", "Test loss minus train loss."),
    Metric(
        "step_loss",
        "train_steps/loss_mean",
        "mean step loss",
        "Mean mini-batch loss over the epoch's steps (training mode, BatchNorm batch stats).",
    ),
    Metric(
        "step_accuracy",
        "train_steps/accuracy_mean",
        "mean step acc",
        "Mean mini-batch accuracy over the epoch's steps.",
    ),
    Metric("grad_norm", "optim/grad_norm", "gradient norm", "Mean global gradient norm over the epoch's steps."),
    Metric(
        "learning_rate",
        "optim/learning_rate",
        "learning rate",
        "Learning rate at the epoch's last step (after scaling and schedule).",
    ),
    Metric(
        "batch_size",
        "optim/batch_size",
        "batch size",
        "Batch size the epoch trained at (runs with --batch_schedule only).",
    ),
    Metric(
        "distance_from_init",
        "optim/distance_from_init",
        "‖θ − θ₀‖",
        "L2 distance of the parameters from their initial values.",
    ),
    Metric(
        "examples_per_s", "perf/examples_per_s", "examples/s", "Training throughput of the epoch (excludes evaluation)."
    ),
    Metric("epoch_seconds", "perf/epoch_seconds", "epoch seconds", "Wall time of the epoch including its evaluation."),
    Metric(
        "noise_b_simple",
        "noise_scale/b_simple",
        "B_simple (noise scale)",
        "Gradient noise scale B_simple = tr(Sigma)/|G|^2 (McCandlish et al. 2018): the batch size beyond "
        "which returns diminish. A per-step EMA of the estimates, so it lags a changing value.",
    ),
    Metric(
        "noise_grad_norm_sq",
        "noise_scale/grad_norm_sq",
        "|G|²",
        "EMA estimate of the squared true-gradient norm |G|^2.",
    ),
    Metric(
        "noise_trace_sigma",
        "noise_scale/trace_sigma",
        "tr Σ",
        "EMA estimate of the per-example gradient covariance trace tr(Sigma).",
    ),
    Metric(
        "lambda_max",
        "sharpness/lambda_max",
        "λ_max",
        "Largest Hessian eigenvalue (Lanczos) on the fixed sharpness subset, BatchNorm in inference mode.",
    ),
    Metric(
        "hessian_trace",
        "sharpness/hessian_trace",
        "Hessian trace",
        "Hutchinson estimate of the Hessian trace on the fixed sharpness subset.",
    ),
    Metric(
        "b_simple",
        "noise_scale/b_simple",
        "B_simple (noise scale)",
        "Gradient noise scale at the end of the run (a trajectory average, see noise_b_simple).",
    ),
    Metric("total_s", "perf/total_s", "wall time (s)", "Wall time of the whole run."),
)
BY_KEY = {m.key: m for m in METRICS}
# The end-of-run values result.json keeps under `final` (from the last epoch record).
FINAL = (
    "train_accuracy",
    "val_accuracy",
    "test_accuracy",
    "train_loss",
    "val_loss",
    "test_loss",
    "generalization_gap",
    "loss_gap",
)
# Descriptions of tags that are not epoch-record keys: instrument families and final values.
FAMILIES = {
    "sharpness": "Keskar et al. 2017 epsilon-sharpness (Metric 2.1): relative loss increase, in %, at the worst "
    "point of an epsilon-box (full space or random subspace); lambda_max / trace of the Hessian.",
    "curvature": "Curvature tracked during training (warm-started Lanczos): lambda_max, the optimizer's stability "
    "threshold, Adam's preconditioned sharpness, batch sharpness.",
    "gradient_tests": "Cockpit's gradient tests, step-size quality alpha and gradient/top-eigenvector overlap.",
    RESULT + "test_accuracy": "Test accuracy at the end of the run (HParams metric).",
    RESULT + "val_accuracy": "Validation accuracy at the end of the run (HParams metric; studies select on it).",
    RESULT + "train_accuracy": "Train-subset accuracy at the end of the run (HParams metric).",
    RESULT + "generalization_gap": "Train minus test accuracy at the end of the run (HParams metric).",
    RESULT[:-1]: "Value at the end of the run, as result.json's `final` records it (HParams metric).",
    MID_EPOCH[:-1]: "Evaluated every --eval_every_steps steps, between epochs.",
    STEP_LOSS: "Training loss of each optimizer step on its own mini-batch (x axis: steps).",
}
DESCRIPTIONS = {**{m.tag: m.description for m in METRICS}, **FAMILIES}


def tag(key: str) -> str:
    """The TensorBoard tag of an epoch-record key (the key itself if the table does not know it)."""
    return BY_KEY[key].tag if key in BY_KEY else key


def label(key: str) -> str:
    """A report column label for `key` (the key itself if the table does not know it)."""
    return BY_KEY[key].label if key in BY_KEY else key


def describe(tag_: str) -> str:
    """The description of `tag_`, or "" if none is known."""
    base = tag_[len(BY_EPOCH) :] if tag_.startswith(BY_EPOCH) else tag_
    text = DESCRIPTIONS.get(base) or DESCRIPTIONS.get(base.split("/")[0], "")
    if text and tag_.startswith(BY_EPOCH):
        text += " (x axis: epoch, so runs with different batch sizes line up.)"
    return text
