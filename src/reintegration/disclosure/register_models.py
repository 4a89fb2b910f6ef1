"""Model results and effect estimates in the output register.

A statsmodels result is checked by ACRO and by the compendium, a
linearmodels result and an effect estimate of :mod:`reintegration.effects`
by the compendium's rules (:mod:`reintegration.disclosure.checks`); what
passes is released as a JSON record of its coefficients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..core import atomic
from .acro import quiet_acro
from .checks import check_effects, check_model, df_resid, effect_record, model_family, model_record
from .output import Output, coef_frame
from .register_core import RegisterCore
from .rules import DisclosureError


class ModelOutputs(RegisterCore):
    """The model and effect outputs of a register."""

    def model(
        self,
        name: str,
        results: Any,
        *,
        groups: pd.DataFrame | pd.Series | None = None,
        unit: str | None = None,
        params: Sequence[str] | None = None,
        title: str | None = None,
    ) -> Output:
        """A fitted model: statsmodels results are checked by ACRO, linearmodels
        results by the compendium; both must have at least ``residual_dof``
        residual degrees of freedom.

        ``groups`` holds the treatment and group variables of the estimation
        sample (one row per observation); every combination must hold at least
        ``cell_threshold`` persons, counted as distinct values of ``unit`` (a
        column or index level of ``groups``) when given, else as rows. Without
        ``groups`` the output is released for review, with a note that cell
        counts were not checked. ``params`` limits the released coefficients
        (never release fixed effects of small units).
        """
        self._check_name(name)
        family = model_family(results)
        dof = df_resid(results)
        # statsmodels: ACRO checks the residual degrees of freedom (the same
        # rule as check_model's, from the same configuration)
        checked = self._acro_model_check(results) if family == "statsmodels" else None
        acro_failed = checked is not None and checked.overall_status == "fail"
        status, reasons, checks = check_model(
            dof, groups, unit, self.rules, acro_failed=acro_failed
        )
        record = model_record(results, family, params) if status != "fail" else None
        out = self._model_output(name, status, reasons, title, record)
        checks["nobs"] = record["nobs"] if record else None
        entry = self._entry(out, checks)
        if checked is not None:
            # ACRO's summary text quotes the degrees of freedom of a refused
            # model; the register keeps only its verdict per check
            entry["acro"] = {
                "status": checked.overall_status,
                "checks": dict(sorted(checked.fair_dict["check_status"].items())),
            }
        self._acro_record_model(name, out, results, checked)
        return self._commit(name, out, entry)

    def effect(
        self,
        name: str,
        results: Any,
        *,
        title: str | None = None,
    ) -> Output:
        """Effect estimates of :mod:`reintegration.effects`, checked by the
        compendium's rules and shown as a coefficient table.

        ``results`` is one :class:`~reintegration.effects.EffectResult` or a
        mapping of row labels to results. Each must have at least
        ``residual_dof`` residual degrees of freedom and at least
        ``cell_threshold`` persons in each group behind it (see
        :func:`reintegration.disclosure.checks.check_effect`); if one fails,
        nothing is released. The released file holds each result's
        ``to_record()``.
        """
        self._check_name(name)
        items = dict(results) if isinstance(results, dict) else {name: results}
        if not items:
            raise DisclosureError(f"{self.step}/{name}: no effect results given")
        status, reasons, checks = check_effects(items, self.rules)
        record = effect_record(items, checks) if status != "fail" else None
        out = self._model_output(name, status, reasons, title, record)
        entry = self._entry(out, checks)
        self._acro_record_custom(name, out, "effect")
        return self._commit(name, out, entry)

    def _model_output(
        self,
        name: str,
        status: str,
        reasons: list[str],
        title: str | None,
        record: dict[str, Any] | None,
    ) -> Output:
        """The output of a model or effect; its record, when released, is
        written to ``<name>.json``."""
        out = self._output(name, "model", status, reasons, title, model=record)
        if record is not None:
            record["id"] = out.output_id
            payload = atomic.dumps_json(record).encode("utf-8")
            out.path, out.sha256 = self._write_file(f"{name}.json", payload)
        return out

    # ---- ACRO's record -----------------------------------------------------------
    def _acro_model_check(self, results: Any) -> Any:
        s = self.session()
        analysis = {"Logit": "Logit", "Probit": "Probit"}.get(
            type(results.model).__name__, "GeneralLinearModel"
        )
        with quiet_acro():
            evidence = s.sdc_checks.get_evidence_forall_analyses([analysis], results.model)
            checked = s.sdc_checks.run_checks_for_analysis(analysis, evidence, results.model)
        return checked

    def _acro_record_model(self, name: str, out: Output, results: Any, checked: Any) -> None:
        if not out.released:
            return
        if checked is None:  # linearmodels: ACRO cannot check it; offered as a file
            self._acro_record_custom(name, out, "model")
            return
        s = self.session()
        s.results.add(
            status=checked.overall_status,
            output_type="regression",
            properties={"method": type(results.model).__name__, "dof": df_resid(results)},
            sdc={},
            fair=checked.fair_dict,
            command=f"register.model({out.output_id!r})",
            summary=checked.summaries,
            outcome=pd.DataFrame(),
            output=[coef_frame(out.model or {})],
        )
        uid = f"output_{s.results.output_id - 1}"
        s.rename_output(uid, name)
        s.results.get(name).timestamp = ""
        for reason in out.reasons:
            s.add_comments(name, reason)
        self._flush_acro()
