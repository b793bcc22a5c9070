"""Retired: Shallue et al. 2019's steps-to-target vs batch size is now experiments/critical_batch.py.

This file used to tune each batch size over five fixed learning rates (one seed, one momentum,
epoch-resolution crossings) and label the regimes of the steps-vs-B curve. critical_batch.py asks
the same question on the study layer (issue 10): K = 8 quasi-random trials per batch size over
learning rate, momentum, warmup and weight decay with the same budget at every B, seeds of each
winner, steps to target resolved to 1/8 epoch, the S(B) = S_min(1 + B_crit/B) fit with bootstrap
CIs over seeds and over trials, Zhang et al.'s 20 %-overhead batch and B_simple beside it.

`python -m lbbench.sweep experiments/shallue.py` exits 2 with the one line below.
"""

RETIRED = (
    "its question (steps to a target accuracy vs batch size, each batch size tuned) is answered by "
    "experiments/critical_batch.py: python -m lbbench.sweep experiments/critical_batch.py [--quick]"
)
