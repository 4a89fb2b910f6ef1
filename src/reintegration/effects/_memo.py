"""Memos that let the estimators share work between calls, without changing a number.

Phase 2 fits many models on the same data: every outcome of one sub-study
and subgroup, and two estimands per outcome. Two kinds of memo avoid redoing
work whose inputs are the same:

:class:`FrameMemo`
    values derived from one DataFrame *object* (for example the covariates
    that are not collinear in a prepared frame, which do not depend on the
    outcome), kept while that object lives. The caller includes in the key
    everything else the value depends on; a frame must not be changed in
    place between calls (Phase 2 never does).
:class:`ContentMemo`
    a small least-recently-used store keyed on the *content* of numpy arrays
    (a SHA-256 digest of their bytes, shapes and dtypes): a model fitted on
    arrays equal bit for bit is fitted once (for example the propensity
    model, which is the same for both estimands of an outcome, or the
    censoring hazard, which is the same for every instrument).

A memo returns exactly what the computation returned the first time, so
results are identical with and without it; :func:`disabled` switches both
off (the tests compare the two).
"""

from __future__ import annotations

import hashlib
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

_STATE = {"enabled": True}


@contextmanager
def disabled() -> Iterator[None]:
    """Run without any memo (every value computed afresh)."""
    before = _STATE["enabled"]
    _STATE["enabled"] = False
    try:
        yield
    finally:
        _STATE["enabled"] = before


def enabled() -> bool:
    return _STATE["enabled"]


class FrameMemo:
    """Values per DataFrame object and key, dropped when the frame is
    garbage-collected."""

    def __init__(self) -> None:
        self._store: dict[int, tuple[weakref.ref, dict[Hashable, Any]]] = {}

    def get(self, frame: Any, key: Hashable, compute: Callable[[], T]) -> T:
        if not enabled():
            return compute()
        fid = id(frame)
        entry = self._store.get(fid)
        if entry is None or entry[0]() is not frame:

            def forget(ref: weakref.ref, fid: int = fid) -> None:
                if self._store.get(fid, (None,))[0] is ref:
                    del self._store[fid]

            entry = self._store[fid] = (weakref.ref(frame, forget), {})
        values = entry[1]
        if key not in values:
            values[key] = compute()
        return values[key]


def digest(arrays: Sequence[np.ndarray], extra: Hashable = None) -> tuple[bytes, Hashable]:
    """A key for the content of ``arrays``: dtype, shape and bytes of each
    (SHA-256, which processors compute in hardware: about twice as fast as
    BLAKE2b on the covariate matrices hashed here)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}|".encode())
        if a.size:
            h.update(memoryview(a).cast("B"))
    return h.digest(), extra


class ContentMemo:
    """Values keyed on array content (:func:`digest`), the ``size`` most
    recently used kept."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._store: OrderedDict[tuple[bytes, Hashable], Any] = OrderedDict()
        self.hits = 0

    def get(self, arrays: Sequence[np.ndarray], extra: Hashable, compute: Callable[[], T]) -> T:
        if not enabled():
            return compute()
        key = digest(arrays, extra)
        if key in self._store:
            self._store.move_to_end(key)
            self.hits += 1
            return self._store[key]
        value = compute()
        self._store[key] = value
        while len(self._store) > self.size:
            self._store.popitem(last=False)
        return value
