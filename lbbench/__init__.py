"""lbbench: measure how batch size changes what a neural network learns (the large-batch gap)."""

__version__ = "0.1.0"
