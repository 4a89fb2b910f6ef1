"""Synthetic municipal exports and CBS-like microdata with planted true effects.

Public API::

    generate_city(city, size, *, root=None, data_dir=None) -> Path   # the city's manifest
    merge_manifests(size, *, root=None, data_dir=None) -> Path       # manifest.json
    data_dictionary_markdown() -> str
    planted_parameters_markdown(cities, root=None) -> str

``python -m reintegration.synth --size full`` generates every configured city
and prints the time each took.
"""

from .generate import generate_city, merge_manifests
from .parameters_page import planted_parameters_markdown
from .schema import data_dictionary_markdown

__all__ = [
    "data_dictionary_markdown",
    "generate_city",
    "merge_manifests",
    "planted_parameters_markdown",
]
