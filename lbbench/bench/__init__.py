"""Benchmarks (scripts, not tests): throughput, sharpness and curvature-instrument cost."""
