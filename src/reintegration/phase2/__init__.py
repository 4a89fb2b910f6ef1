"""Phase 2: the effects of every sub-study Phase 1 let through, Phase 1's obligations,
sensitivity to a hidden factor, what works for whom, advice for case managers, and the
comparison of cities.
"""
