"""The Monte Carlo harness: every estimator over many synthetic worlds, against the truth
of its own estimand.
"""
