"""What each TensorBoard tag means: the descriptions TensorBoard shows beside a chart.

Looked up by exact tag, then by the tag with a `by_epoch/` prefix removed, then by the tag's first
path component, so `sharpness/eps_full_0.001` and `by_epoch/test/accuracy` are described too.
"""

from __future__ import annotations

BY_EPOCH = "by_epoch/"

DESCRIPTIONS = {
    "train/loss": "Cross-entropy on the fixed 10k-example training subset, evaluated after the epoch.",
    "train/accuracy": "Accuracy on the fixed training subset (same examples for every run), after the epoch.",
    "test/loss": "Cross-entropy on the full test set after the epoch.",
    "test/accuracy": "Accuracy on the full test set after the epoch.",
    "gap/accuracy": "Generalization gap: train accuracy minus test accuracy (positive = overfitting).",
    "gap/loss": "Test loss minus train loss.",
    "train/step_loss": "Training loss of each optimizer step on its own mini-batch (x axis: steps).",
    "train/step_loss_mean": "Mean mini-batch loss over the epoch's steps (training mode, BatchNorm batch stats).",
    "train/step_accuracy_mean": "Mean mini-batch accuracy over the epoch's steps.",
    "optim/grad_norm": "Mean global gradient norm over the epoch's steps.",
    "optim/learning_rate": "Learning rate at the epoch's last step (after scaling and schedule).",
    "optim/distance_from_init": "L2 distance of the parameters from their initial values.",
    "perf/examples_per_s": "Training throughput of the epoch (excludes evaluation).",
    "perf/epoch_seconds": "Wall time of the epoch including its evaluation.",
    "noise_scale/b_simple": "Gradient noise scale B_simple = tr(Sigma)/|G|^2 (McCandlish et al. 2018): "
                            "the batch size beyond which returns diminish.",
    "noise_scale/grad_norm_sq": "EMA estimate of the squared true-gradient norm |G|^2.",
    "noise_scale/trace_sigma": "EMA estimate of the per-example gradient covariance trace tr(Sigma).",
    "sharpness/lambda_max": "Largest Hessian eigenvalue (Lanczos) on the fixed sharpness subset, "
                            "BatchNorm in inference mode.",
    "sharpness/hessian_trace": "Hutchinson estimate of the Hessian trace on the fixed sharpness subset.",
    "sharpness": "Keskar et al. 2017 epsilon-sharpness (Metric 2.1): relative loss increase, in %, at the "
                 "worst point of an epsilon-box (full space or random subspace).",
    "sharpness_layer": "lambda_max / trace of one layer's Hessian block.",
    "final/test_accuracy": "Test accuracy at the end of the run (HParams metric).",
    "final/train_accuracy": "Train-subset accuracy at the end of the run (HParams metric).",
    "final/generalization_gap": "Train minus test accuracy at the end of the run (HParams metric).",
    "final": "Value at the end of the run (HParams metric).",
}


def describe(tag: str) -> str:
    """The description of `tag`, or "" if none is known."""
    base = tag[len(BY_EPOCH):] if tag.startswith(BY_EPOCH) else tag
    text = DESCRIPTIONS.get(base) or DESCRIPTIONS.get(base.split("/")[0], "")
    if text and tag.startswith(BY_EPOCH):
        text += " (x axis: epoch, so runs with different batch sizes line up.)"
    return text
