"""One run on disk: its folder (create, lock, stage, commit), the one result.json reader, the writer
(TensorBoard, metrics.jsonl, W&B), the table of metric names, strict JSON with atomic writes,
provenance, locks, safe names and signals."""
