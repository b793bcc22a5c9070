"""The study layer: search spaces, steps-to-target, critical batch size, bootstrap CIs, answer tables.

Shallue et al. (2019, "Measuring the Effects of Data Parallelism on Neural Network Training") and
Nado et al. (2021) showed that comparing batch sizes at one fixed learning rate manufactures
"large batches fail"; each batch size must be tuned with the same budget first. These modules turn
finished runs (result.json dicts) into that comparison. No training happens here.

    search          quasi-random trials over a declared search space -> Config overrides
    targets         steps/examples to a target accuracy; best accuracy within an epoch or step budget
    critical_batch  S(B) = S_min (1 + B_crit / B) fit, the 20 %-overhead critical batch, regimes
    bootstrap       confidence intervals over seeds and over trials
    answer          the "does accuracy degrade with larger batches?" table; best-trial selection
    protocol        follow-ups: re-run each arm's winners with fresh seeds
    edge_of_stability  second-half curvature / threshold statistics and verdicts of GD, SGD and Adam runs
    figures         steps vs B (log-log, fit, B_crit ± CI, B_simple), accuracy vs B, arms
    io              strict-JSON and text outputs, written atomically
"""
