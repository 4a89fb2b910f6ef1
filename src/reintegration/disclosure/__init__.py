"""Statistical disclosure control: one output register per step run.

Every table, figure and model result a notebook shows goes through a register::

    from reintegration import disclosure
    from reintegration.core import step

    ctx = step.start("04_describe", city=city, size=size)
    reg = disclosure.register(ctx)
    reg.crosstab("uptake_by_sex", persons, index="sex", columns="instrument")
    reg.table("earnings_by_instrument", persons, index="instrument",
              values="earnings_12m", aggfunc="mean")
    reg.model("exit_ols", results, groups=persons[["instrument"]])
    reg.figure("uptake_over_time", fig, counts=monthly_counts)
    reg.effect("att_employed_12", result)   # an EffectResult of reintegration.effects

Each call checks the output against the rules in ``config/disclosure.yml``,
writes what may be released to ``build/<size>/<city>/outputs/<step>/`` (CSV for
tables, PNG for figures, JSON for models), records it in the step's register
(``outputs/<step>/register.json``) and displays it in the notebook with output
metadata ``{"reintegration": {"output_id": "<step>/<name>", ...}}``, so a
release audit can tell that every table or figure on a page is registered
(:mod:`reintegration.disclosure.release_check`).
:func:`reintegration.disclosure.release_bundle.finalise` collects the registers of a city
into the bundle a human output checker reviews.

Tables and statsmodels results are checked by ACRO, the SACRO project's
output checker; the compendium reads ACRO's per-cell verdicts and applies the
suppression itself, so that declared structural zeros, proportions and
standard deviations are handled correctly and margins never reveal a
suppressed cell. linearmodels results, figures and pre-aggregated tables are
checked by the compendium's own rules (the same thresholds).

ACRO 1.0.2 has process-wide side effects and quirks that the register contains:
its import and calls run in :func:`~reintegration.disclosure.acro.quiet_acro`
and its session gets our thresholds (:mod:`reintegration.disclosure.acro`);
a standard-deviation table is not blanked entirely, because the compendium
applies the per-cell degrees-of-freedom rule itself
(:mod:`reintegration.disclosure.suppression`); its records' wall-clock timestamps and
calling source lines are replaced so the bundle is deterministic and says what
was asked.

The register is assembled from parts, one concern each; the pure checks are
apart from the register that writes files:

* :mod:`reintegration.disclosure.rules`: the thresholds and reason codes;
* :mod:`reintegration.disclosure.suppression`: which cells of a table are suppressed;
* :mod:`reintegration.disclosure.checks`: model, effect and count checks;
* :mod:`reintegration.disclosure.linked_tables`: tables protected with their population;
* :mod:`reintegration.disclosure.output`: one checked output and its display;
* :mod:`reintegration.disclosure.register_core`, :mod:`reintegration.disclosure.register_tables`,
  :mod:`reintegration.disclosure.register_models`, :mod:`reintegration.disclosure.register_figures`:
  the register's bookkeeping and its table, model and figure outputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .checks import check_effect
from .output import Output
from .register_figures import FigureOutputs
from .register_models import ModelOutputs
from .register_tables import TableOutputs
from .rules import META_KEY, DisclosureError, Rules, load_rules

if TYPE_CHECKING:  # pragma: no cover
    from ..core.step import StepContext

#: what notebooks and the book use; the other names live in the modules above
__all__ = [
    "META_KEY",
    "DisclosureError",
    "Output",
    "Register",
    "Rules",
    "check_effect",
    "load_rules",
    "register",
]


def register(ctx: StepContext, *, rules: Rules | None = None) -> Register:
    """Open the output register of the step run behind ``ctx``.

    A rerun of the step starts from an empty register: the step's previous
    outputs in ``build/<size>/<city>/outputs/<step>/`` are removed.
    """
    return Register(ctx, rules=rules)


class Register(TableOutputs, ModelOutputs, FigureOutputs):
    """The outputs one step shows for one city, each checked and recorded.

    Tables: :meth:`crosstab`, :meth:`table` and :meth:`public_table`; models:
    :meth:`model` and :meth:`effect`; figures: :meth:`figure`.
    """
