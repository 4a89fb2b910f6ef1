"""The pipeline machinery: the task graph, make rules, the runner and its kernels,
provenance, publishing, the command line and the benchmarks.
"""
