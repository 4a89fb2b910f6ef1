"""Re-integration compendium: which re-integration instruments work for whom.

The package holds all logic of the compendium; the notebooks in ``notebooks/``
only call it. Modules follow the data flow: configuration and paths, custody
domains, synthetic data, the per-city steps, provenance and the book.
"""

__version__ = "0.1.0"
