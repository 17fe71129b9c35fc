"""Weight-only quantised matmul: the packed layout (format.py) and the checkpoint repackers."""
