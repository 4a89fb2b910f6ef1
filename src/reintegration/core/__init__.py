"""The ground every step stands on: typed configuration, paths, custody domains, the step
context, atomic writes, months.
"""
