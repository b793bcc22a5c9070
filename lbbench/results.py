"""Reading results back, for notebooks and scripts (the public API; the reader is lbbench.runs.reader).

from lbbench import results
df = results.load("sweeps/goyal")                     # one row per run below the folder
curves = results.history("sweeps/goyal")              # one row per run and epoch
cfg, model, variables = results.load_run("runs/mnist1d_mlp_adam_b4096_warmup_lr0.001_none_s0")
"""

from lbbench.runs.reader import RunLoadError, find, history, load, load_run, read_result

__all__ = ["RunLoadError", "find", "history", "load", "load_run", "read_result"]
