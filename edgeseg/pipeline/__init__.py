"""Video sources, sinks and latency statistics for running models on streams."""
