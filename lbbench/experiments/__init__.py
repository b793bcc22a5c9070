"""The studies, one module each (NAME, base_config, grid, and optionally analyze, followup), shipped
with the package so `lbbench-sweep critical_batch` works from any directory after `pip install`.
Committed full results live in the repository's experiments/results/. See lbbench.sweep for the
file format; a user's own experiment file anywhere on disk works the same way."""
