"""Intake of the municipal exports (municipality role): reading, screening and the delivery
check.
"""
