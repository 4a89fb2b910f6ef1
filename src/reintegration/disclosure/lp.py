"""The linear programs of the attacker's intervals, solved by HiGHS directly.

:func:`reintegration.disclosure.protection` bounds every suppressed cell by two
linear programs over the same equations (the smallest and the largest value
consistent with everything published), and the complementary suppression
solves them again after every added suppression: hundreds of small programs
per step. ``scipy.optimize.linprog(method="highs")`` spends most of its time on
such a program in checking its inputs and options, and in copying out a
solution that is not read here.

:class:`EqualitySystem` hands HiGHS the same model with the same options as
``linprog(c, A_eq=A, b_eq=b, bounds=(0, None), method="highs")`` (presolve on,
dual simplex, no output; the equations as rows with equal lower and upper
bounds, the matrix column-wise, upper bounds at HiGHS's infinity), once per
objective on a new solver (no warm start), so the solver takes the same path
and returns the same optimum; it reads only the model status and the
objective value, and reports the status as ``linprog`` numbers it (0 optimal,
2 infeasible, 3 unbounded, 4 other). ``tests/test_protection_lp.py`` holds it
against ``linprog`` on random systems, including unbounded and infeasible ones.
The HiGHS binding is the one SciPy ships (``scipy.optimize._highspy``, private;
the lock file pins SciPy); when it is missing the programs go through
``linprog``.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

try:  # the HiGHS binding SciPy ships with its linprog
    from scipy.optimize._highspy import _core as _highs
except ImportError:  # pragma: no cover - a SciPy without it: linprog below
    _highs = None


def _status(model_status: object) -> int:
    """``linprog``'s status number of a HiGHS model status."""
    if model_status == _highs.HighsModelStatus.kOptimal:
        return 0
    if model_status in (_highs.HighsModelStatus.kTimeLimit,
                        _highs.HighsModelStatus.kIterationLimit):
        return 1
    if model_status in (_highs.HighsModelStatus.kInfeasible,
                        _highs.HighsModelStatus.kModelError):
        return 2
    if model_status == _highs.HighsModelStatus.kUnbounded:
        return 3
    return 4


class EqualitySystem:
    """``A x = b, x >= 0``, minimised for one objective at a time."""

    def __init__(self, a: sparse.spmatrix | None, b: np.ndarray | None, n: int) -> None:
        self.n = n
        self.a = None if a is None else sparse.csc_matrix(a, dtype=float)
        self.b = None if b is None else np.asarray(b, dtype=float)
        self.direct = _highs is not None and self.a is not None and self.a.shape[0] > 0
        if self.direct:
            self.options = _highs.HighsOptions()
            self.options.presolve = "on"
            self.options.log_to_console = False
            self.options.output_flag = False
            self.options.simplex_strategy = int(
                _highs.simplex_constants.SimplexStrategy.kSimplexStrategyDual)
            self.options.highs_debug_level = int(_highs.HighsDebugLevel.kHighsDebugLevelNone)

    def minimise(self, c: np.ndarray) -> tuple[int, float | None, str]:
        """(status as ``linprog`` numbers it, the minimum or None, a message)."""
        c = np.asarray(c, dtype=float)
        if not self.direct:
            res = linprog(c, A_eq=self.a, b_eq=self.b, bounds=(0, None), method="highs")
            return int(res.status), (float(res.fun) if res.status == 0 else None), res.message
        a, rows = self.a, self.a.shape[0]
        lp = _highs.HighsLp()
        lp.num_col_, lp.num_row_ = self.n, rows
        lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = self.n, rows
        lp.a_matrix_.format_ = _highs.MatrixFormat.kColwise
        lp.col_cost_ = c
        lp.col_lower_ = np.zeros(self.n)
        lp.col_upper_ = np.full(self.n, _highs.kHighsInf)
        lp.row_lower_ = self.b
        lp.row_upper_ = self.b
        lp.a_matrix_.start_ = a.indptr
        lp.a_matrix_.index_ = a.indices
        lp.a_matrix_.value_ = a.data
        solver = _highs._Highs()
        solver.passOptions(self.options)
        solver.passModel(lp)
        solver.run()
        model_status = solver.getModelStatus()
        status = _status(model_status)
        fun = float(solver.getInfo().objective_function_value) if status == 0 else None
        return status, fun, solver.modelStatusToString(model_status)
