"""Disclosure control: the output register, its checks, the release bundle and
the audit helper that finds unregistered tables and figures in notebooks.

Every test builds its own small DataFrame with known cell counts and runs the
register of the ``00_city_profile`` step in a temporary copy of ``config/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import matplotlib
import nbformat
import numpy as np
import pandas as pd
import pytest

from reintegration import disclosure
from reintegration.core import step
from reintegration.core.config import ConfigError
from reintegration.disclosure import acro as disclosure_acro
from reintegration.disclosure import protection, release_check
from reintegration.disclosure.release_bundle import finalise

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
STEP = "00_city_profile"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    monkeypatch.delenv("REINTEGRATION_BUILD_DIR", raising=False)
    monkeypatch.delenv("REINTEGRATION_ROOT", raising=False)
    return tmp_path


@pytest.fixture
def ctx(root: Path) -> step.StepContext:
    return step.start(STEP, city="rotterdam", size="small", root=root)


@pytest.fixture
def reg(ctx: step.StepContext) -> disclosure.Register:
    return disclosure.register(ctx)


def cells(spec: dict[tuple[str, str], int], rows: str = "sex", cols: str = "instrument"):
    """Person-level rows with exactly the given count per (row, column) cell."""
    out = [(r, c) for (r, c), k in spec.items() for _ in range(k)]
    return pd.DataFrame(out, columns=[rows, cols])


UPTAKE = {
    ("f", "coaching"): 40,
    ("f", "training"): 25,
    ("f", "subsidy"): 3,
    ("m", "coaching"): 31,
    ("m", "training"): 22,
    ("m", "subsidy"): 18,
}


def entry(reg: disclosure.Register, name: str) -> dict:
    data = json.loads((reg.dir / "register.json").read_text(encoding="utf-8"))
    return {e["name"]: e for e in data["outputs"]}[name]


# ---- rules -----------------------------------------------------------------


def test_rules_from_config_are_the_documented_ones(root: Path) -> None:
    rules = disclosure.load_rules(root)
    assert rules == disclosure.Rules(
        cell_threshold=10, nk_n=2, nk_k=0.9, p_ratio=0.1, residual_dof=10, zeros_disclosive=True
    )
    text = (root / "config" / "disclosure.yml").read_text(encoding="utf-8")
    assert "not official CBS figures" in text


def test_minima_maxima_cannot_be_switched_on(root: Path) -> None:
    path = root / "config" / "disclosure.yml"
    path.write_text(
        path.read_text().replace("release_minima_maxima: false", "release_minima_maxima: true")
    )
    with pytest.raises(ConfigError, match="release_minima_maxima must be false"):
        disclosure.load_rules(root)


def test_missing_key_is_named(root: Path) -> None:
    path = root / "config" / "disclosure.yml"
    path.write_text(path.read_text().replace("residual_dof: 10", ""))
    with pytest.raises(ConfigError, match="residual_dof"):
        disclosure.load_rules(root)


# ---- tables ------------------------------------------------------------------


def test_small_cell_is_suppressed_and_the_reason_recorded(reg: disclosure.Register) -> None:
    df = cells(UPTAKE)
    out = reg.crosstab("uptake_by_sex", df, index="sex", columns="instrument")

    assert out.status == "review"
    assert pd.isna(out.table.loc["f", "subsidy"])
    assert out.flags.loc["f", "subsidy"] == "threshold"
    assert out.table.loc["m", "subsidy"] == 18 and out.table.loc["f", "coaching"] == 40
    assert out.display_frame().loc["f", "subsidy"] == "x (n)"
    assert "fewer than 10 persons" in out.to_html()

    e = entry(reg, "uptake_by_sex")
    assert e["id"] == f"{STEP}/uptake_by_sex" and e["kind"] == "table" and e["status"] == "review"
    assert e["reasons"][0].startswith("threshold: 1 cell suppressed")
    assert e["checks"]["suppressed_cells"] == [
        {"row": "f", "column": "subsidy", "key": ["f", "subsidy"], "reasons": ["threshold"]}
    ]
    assert "3" not in json.dumps(e["checks"]["suppressed_cells"])
    # the released file holds no trace of the 3, and its checksum is registered
    released = reg.ctx.out_dir / e["file"]
    assert released.read_text() == ("sex,coaching,subsidy,training\nf,40,,25\nm,31,18,22\n")
    assert hashlib.sha256(released.read_bytes()).hexdigest() == e["sha256"]
    # ACRO saw the same cell
    assert e["acro"] == {"status": "fail", "flagged": ["threshold"]}


def test_margins_do_not_reveal_a_suppressed_cell(reg: disclosure.Register) -> None:
    out = reg.crosstab(
        "uptake_totals", cells(UPTAKE), index="sex", columns="instrument", margins=True
    )
    t = out.table
    assert pd.isna(t.loc["f", "subsidy"])
    # totals are the true totals (one value for a margin everywhere) ...
    assert t.loc["f", "Total"] == 40 + 3 + 25
    assert t.loc["Total", "Total"] == 40 + 3 + 25 + 31 + 18 + 22
    # ... so complementary cells are suppressed: the smallest in the 3's row
    # and column, and the fourth corner of that rectangle
    secondary = {(r, c) for r in t.index for c in t.columns if out.flags.loc[r, c] == "secondary"}
    assert secondary == {("f", "training"), ("m", "subsidy"), ("m", "training")}
    # a reader cannot tell a complementary cell from a small one: same mark
    shown = out.display_frame()
    assert shown.loc["f", "subsidy"] == shown.loc["m", "training"] == "x (n)"
    assert sum(line.startswith("x (n)") for line in out.legend()) == 1
    # no subtraction gives back the 3: the attacker's interval is [0, 21]
    table = protection.from_frame("t", "p", t.astype(float), sensitive=[("f", "subsidy")])
    (cell,) = [i for i in protection.attack([table]) if i.sensitive]
    assert (cell.lower, cell.upper) == pytest.approx((0, 21))
    assert protection.leaks([table], 10) == []


def test_total_that_falls_below_threshold_after_suppression_is_suppressed(
    reg: disclosure.Register,
) -> None:
    df = cells({("f", "a"): 4, ("f", "b"): 8, ("m", "a"): 30, ("m", "b"): 30})
    out = reg.crosstab("secondary", df, index="sex", columns="instrument", margins=True)
    # both f cells are small; their true total (12) is shown, so the m cells
    # are suppressed too, else each f cell is the column total minus m's
    assert out.table.loc["f", "Total"] == 12
    assert out.flags.loc["m", "a"] == "secondary" and out.flags.loc["m", "b"] == "secondary"
    assert out.table.loc["Total", "Total"] == 72
    table = protection.from_frame(
        "t", "p", out.table.astype(float), sensitive=[("f", "a"), ("f", "b")]
    )
    assert protection.leaks([table], 10) == []


def test_dominated_magnitude_table_is_flagged(reg: disclosure.Register) -> None:
    rng = np.random.default_rng(1)
    df = cells({("f", "a"): 20, ("f", "b"): 12, ("m", "a"): 25, ("m", "b"): 30})
    df["earnings"] = rng.uniform(1000, 2000, len(df)).round(2)
    dominated = df.index[(df.sex == "f") & (df.instrument == "b")][0]
    df.loc[dominated, "earnings"] = 1_000_000.0  # one person: >90% of the cell total

    out = reg.table(
        "earnings", df, index="sex", columns="instrument", values="earnings", aggfunc="mean"
    )
    assert pd.isna(out.table.loc["f", "b"])
    assert out.flags.loc["f", "b"] == "dominance"
    expected = df[(df.sex == "m") & (df.instrument == "a")].earnings.mean()
    assert out.table.loc["m", "a"] == pytest.approx(expected, abs=0.005)
    e = entry(reg, "earnings")
    assert "dominance" in e["acro"]["flagged"]
    assert any(r.startswith("dominance: 1 cell suppressed") for r in e["reasons"])


def test_proportion_with_few_persons_with_the_outcome_is_suppressed(
    reg: disclosure.Register,
) -> None:
    df = cells({("f", "a"): 50, ("f", "b"): 50, ("m", "a"): 50, ("m", "b"): 50})
    df["employed"] = 0
    df.loc[df.index[(df.sex == "f") & (df.instrument == "a")][:3], "employed"] = 1
    df.loc[df.index[(df.sex == "m")][::2], "employed"] = 1
    df.loc[df.index[(df.sex == "f") & (df.instrument == "b")][:25], "employed"] = 1

    out = reg.table("employed", df, index="sex", columns="instrument", values="employed")
    assert pd.isna(out.table.loc["f", "a"]) and "proportion" in out.flags.loc["f", "a"]
    assert out.table.loc["f", "b"] == 0.5 and out.table.loc["m", "a"] == 0.5


def test_std_table_is_not_blanked(reg: disclosure.Register) -> None:
    rng = np.random.default_rng(2)
    df = cells({("f", "a"): 30, ("f", "b"): 10, ("m", "a"): 40, ("m", "b"): 25})
    df["earnings"] = rng.normal(1500, 300, len(df))

    # the quirk: ACRO 1.0.2 itself blanks every cell of a std table
    acro = disclosure_acro.acro_module()
    with disclosure_acro.quiet_acro():
        session = acro.ACRO(suppress=True)
        blanked = session.crosstab(df.sex, df.instrument, values=df.earnings, aggfunc="std")
    assert blanked.isna().all().all(), "ACRO fixed its std bug: the workaround can be reviewed"

    out = reg.table(
        "spread", df, index="sex", columns="instrument", values="earnings", aggfunc="std"
    )
    # 10 persons have 9 degrees of freedom: suppressed; the rest released
    assert pd.isna(out.table.loc["f", "b"]) and out.flags.loc["f", "b"] == "dof"
    expected = df[(df.sex == "m") & (df.instrument == "b")].earnings.std()
    assert out.table.loc["m", "b"] == pytest.approx(expected, abs=0.005)
    assert out.table.notna().sum().sum() == 3


@pytest.mark.parametrize("aggfunc", ["min", "max"])
def test_minima_and_maxima_are_refused(reg: disclosure.Register, aggfunc: str) -> None:
    df = cells({("f", "a"): 20, ("m", "a"): 20})
    df["earnings"] = range(40)
    with pytest.raises(disclosure.DisclosureError, match="minimum or maximum"):
        reg.table(
            "extremes", df, index="sex", columns="instrument", values="earnings", aggfunc=aggfunc
        )
    assert reg.output_ids == []


def test_structural_zero_passes_and_other_zero_is_suppressed(reg: disclosure.Register) -> None:
    df = cells(
        {
            ("18-26", "bijstand"): 30,
            ("27-66", "bijstand"): 40,
            ("27-66", "aow"): 12,
            ("67+", "aow"): 35,
            ("67+", "bijstand"): 0,
        },
        rows="age",
        cols="benefit",
    )
    # 18-26 x aow is empty by definition; 67+ x bijstand is empty by chance
    out = reg.crosstab(
        "benefit_by_age", df, index="age", columns="benefit", structural_zeros=[("18-26", "aow")]
    )
    assert out.table.loc["18-26", "aow"] == 0 and out.flags.loc["18-26", "aow"] == ""
    assert pd.isna(out.table.loc["67+", "bijstand"])
    assert out.flags.loc["67+", "bijstand"] == "threshold"  # a zero looks like a small count
    e = entry(reg, "benefit_by_age")
    assert e["checks"]["structural_zeros"] == [{"row": "18-26", "column": "aow"}]

    df2 = df[~((df.age == "67+") & (df.benefit == "bijstand"))]
    only_structural = reg.crosstab(
        "benefit_by_age_2",
        df2[df2.age != "67+"],
        index="age",
        columns="benefit",
        structural_zeros=[("18-26", "aow")],
    )
    assert only_structural.status == "pass"

    with pytest.raises(disclosure.DisclosureError, match="not empty"):
        reg.crosstab(
            "wrong", df, index="age", columns="benefit", structural_zeros=[("27-66", "aow")]
        )


def test_thresholds_from_config_reach_acro(ctx: step.StepContext) -> None:
    reg = disclosure.register(ctx, rules=disclosure.Rules(cell_threshold=5))
    df = cells({("f", "a"): 7, ("f", "b"): 20, ("m", "a"): 20, ("m", "b"): 3})
    out = reg.crosstab("lenient", df, index="sex", columns="instrument")
    assert out.table.loc["f", "a"] == 7 and pd.isna(out.table.loc["m", "b"])
    session = reg.session()
    assert session.config["safe_threshold"] == 5
    assert session.sdc_checks.risk_appetite["safe_threshold"] == 5
    assert entry(reg, "lenient")["acro"]["flagged"] == ["threshold"]


def test_every_cell_suppressed_means_nothing_released(reg: disclosure.Register) -> None:
    out = reg.crosstab(
        "tiny", cells({("f", "a"): 2, ("m", "a"): 4}), index="sex", columns="instrument"
    )
    assert out.status == "fail" and out.path is None
    assert not (reg.dir / "tiny.csv").exists()
    assert "Withheld" in out.to_html() and "<table" not in out.to_html()


# ---- models --------------------------------------------------------------------


def test_model_with_too_few_residual_dof_is_refused(reg: disclosure.Register) -> None:
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    x = pd.DataFrame({"age": rng.normal(40, 10, 12), "months": rng.normal(6, 2, 12)})
    res = sm.OLS(rng.normal(size=12), sm.add_constant(x)).fit()  # 12 - 3 = 9 dof
    out = reg.model("tiny_ols", res)
    assert out.status == "fail" and out.path is None
    e = entry(reg, "tiny_ols")
    assert "residual degrees of freedom below 10" in e["reasons"][0]
    assert e["checks"]["residual_dof"] is None  # the 9 itself is not published
    assert e["acro"]["status"] == "fail"


def test_statsmodels_result_passes_through_acro(reg: disclosure.Register) -> None:
    import statsmodels.api as sm

    rng = np.random.default_rng(4)
    x = pd.DataFrame({"treated": np.repeat([0, 1], 40), "age": rng.normal(40, 10, 80)})
    res = sm.OLS(rng.normal(size=80), sm.add_constant(x)).fit()
    out = reg.model("ols_exit", res, groups=x[["treated"]])
    assert out.status == "pass"
    released = json.loads(out.path.read_text())
    assert released["params"]["treated"] == pytest.approx(res.params["treated"])
    assert released["df_resid"] == 77 and released["nobs"] == 80
    assert "n = 80; residual df = 77" in out.to_html()  # one fitted model: its own size
    assert entry(reg, "ols_exit")["acro"]["checks"] == {"MinimumDoFCheck": "pass"}


def _panel(treated_persons: int, persons: int = 30, months: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    idx = pd.MultiIndex.from_product([range(persons), range(months)], names=["person", "month"])
    d = pd.DataFrame(index=idx)
    d["treated"] = np.repeat((np.arange(persons) < treated_persons).astype(int), months)
    d["post"] = (d.index.get_level_values("month") >= 2).astype(int)
    d["treated_post"] = d.treated * d.post
    d["x"] = rng.normal(size=len(d))
    d["y"] = 0.5 * d.treated_post + d.x + rng.normal(size=len(d))
    return d


@pytest.mark.parametrize(("treated", "status"), [(5, "fail"), (15, "pass")])
def test_panelols_group_cells_are_counted_in_persons(
    reg: disclosure.Register, treated: int, status: str
) -> None:
    from linearmodels.panel import PanelOLS

    d = _panel(treated)
    res = PanelOLS(d.y, d[["treated_post", "x"]], entity_effects=True, time_effects=True).fit()
    # 5 treated persons are 20 person-months: counting rows would pass
    out = reg.model("did", res, groups=d[["treated"]], unit="person")
    assert out.status == status
    e = entry(reg, "did")
    if status == "fail":
        assert "fewer than 10 persons: 1 of 2" in e["reasons"][0]
        assert e["checks"]["group_cells"] == {"0": 25, "1": None}
        assert out.path is None
    else:
        assert json.loads(out.path.read_text())["params"]["treated_post"] == pytest.approx(
            float(res.params["treated_post"])
        )
        assert e["sha256"] == hashlib.sha256(out.path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("placed_persons", "status"), [(60, "pass"), (6, "fail")])
def test_iv2sls_group_cells(reg: disclosure.Register, placed_persons: int, status: str) -> None:
    from linearmodels.iv import IV2SLS

    rng = np.random.default_rng(6)
    n = 200
    df = pd.DataFrame({"x": rng.normal(size=n), "const": 1.0})
    df["strict"] = (np.arange(n) % 2).astype(float)  # the case manager's propensity
    df["placed"] = 0.0
    df.loc[df.index[df.strict == 1][:placed_persons], "placed"] = 1.0
    df["y"] = df.placed + df.x + rng.normal(size=n)
    res = IV2SLS(df.y, df[["const", "x"]], df[["placed"]], df[["strict"]]).fit()
    out = reg.model("iv", res, groups=df[["placed"]])
    assert out.status == status
    if status == "pass":
        assert json.loads(out.path.read_text())["estimator"] == "IV2SLS"


# ---- figures ---------------------------------------------------------------------


def test_figure_is_released_only_when_its_counts_pass(reg: disclosure.Register) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.bar(["a", "b"], [20, 35])
    ok = reg.figure("uptake_bars", fig, counts=pd.Series([20, 35], index=["a", "b"]))
    assert ok.status == "pass" and ok.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)  # closed: the notebook will not show it again

    fig, ax = plt.subplots()
    ax.bar(["a", "b"], [20, 4])
    bad = reg.figure("small_bars", fig, counts=pd.Series([20, 4], index=["a", "b"]))
    assert bad.status == "fail" and bad.path is None and bad.png is None
    data, meta = bad.mimebundle()
    assert "image/png" not in data and meta["reintegration"]["status"] == "fail"


# ---- register, display, bundle -----------------------------------------------------------


def test_display_carries_the_output_id(reg: disclosure.Register) -> None:
    out = reg.crosstab("uptake", cells(UPTAKE), index="sex", columns="instrument")
    data, meta = out.mimebundle()
    assert meta == {
        "reintegration": {"output_id": f"{STEP}/uptake", "status": "review", "kind": "table"}
    }
    assert "<table" in data["text/html"] and "x (n)" in data["text/plain"]


def test_rerun_starts_an_empty_register(ctx: step.StepContext) -> None:
    first = disclosure.register(ctx)
    first.crosstab("old", cells(UPTAKE), index="sex", columns="instrument")
    assert (first.dir / "old.csv").exists()
    second = disclosure.register(ctx)
    assert second.output_ids == [] and not (second.dir / "old.csv").exists()


def test_bundle_checksums_match_the_files(root: Path, reg: disclosure.Register) -> None:
    import matplotlib.pyplot as plt

    reg.crosstab("uptake", cells(UPTAKE), index="sex", columns="instrument")
    reg.crosstab("tiny", cells({("f", "a"): 2}), index="sex", columns="instrument")
    fig, ax = plt.subplots()
    ax.plot([1, 2])
    reg.figure("line", fig, counts=pd.DataFrame({"n": [12, 14]}))

    bundle = finalise("rotterdam", "small", root=root)
    assert bundle == root / "release" / "small" / "rotterdam"
    listed = {}
    for line in (bundle / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    files = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert set(listed) == files - {"SHA256SUMS"}
    for name, digest in listed.items():
        assert hashlib.sha256((bundle / name).read_bytes()).hexdigest() == digest
    assert {f"{STEP}/uptake.csv", f"{STEP}/line.png", f"{STEP}/acro/results.json"} <= files
    assert f"{STEP}/tiny.csv" not in files

    readme = (bundle / "README.md").read_text()
    assert f"`{STEP}/uptake` | table | review | threshold: 1 cell suppressed" in readme
    assert f"`{STEP}/tiny` | table | fail |" in readme
    union = json.loads((root / "build/small/rotterdam/outputs/register.json").read_text())
    assert [e["id"] for e in union["outputs"]] == [f"{STEP}/line", f"{STEP}/tiny", f"{STEP}/uptake"]
    assert "timestamp" not in json.dumps(union)
    acro_results = json.loads((bundle / STEP / "acro" / "results.json").read_text())
    assert set(acro_results["results"]) == {"uptake", "line"}  # refused outputs are not offered
    assert {r["timestamp"] for r in acro_results["results"].values()} == {""}

    again = finalise("rotterdam", "small", root=root)
    assert (again / "SHA256SUMS").read_text() == "".join(
        f"{d}  {n}\n" for n, d in sorted(listed.items())
    )


def test_bundle_refuses_a_file_changed_after_registration(
    root: Path, reg: disclosure.Register
) -> None:
    out = reg.crosstab("uptake", cells(UPTAKE), index="sex", columns="instrument")
    out.path.write_text("sex,coaching\nf,3\n")
    with pytest.raises(RuntimeError, match="changed after it was registered"):
        finalise("rotterdam", "small", root=root)


def test_public_table_registers_non_personal_tables(reg: disclosure.Register) -> None:
    files = pd.DataFrame({"file": ["clients.csv", "instruments.csv"], "rows": [4200, 9100]})
    out = reg.public_table("delivery", files, reason="file inventory", count_columns=["rows"])
    assert out.status == "pass" and out.path.exists()
    small = pd.DataFrame({"file": ["x.csv"], "rows": [4]})
    assert (
        reg.public_table("tiny_files", small, reason="inventory", count_columns=["rows"]).status
        == "fail"
    )


# ---- process-wide side effects ---------------------------------------------------------


def test_using_the_register_leaves_logging_and_warnings_alone(
    reg: disclosure.Register,
) -> None:
    root_logger = logging.getLogger()
    before = (root_logger.level, list(root_logger.handlers), list(warnings.filters))
    reg.crosstab("uptake", cells(UPTAKE), index="sex", columns="instrument")
    reg.table("rate", cells(UPTAKE).assign(v=1.0), index="sex", columns="instrument", values="v")
    assert (root_logger.level, list(root_logger.handlers), list(warnings.filters)) == before


def test_importing_acro_leaves_logging_and_warnings_alone(root: Path) -> None:
    """In a fresh interpreter (as in a notebook kernel), where ACRO's import
    would call logging.basicConfig and add a warning filter."""
    script = textwrap.dedent(
        f"""
        import logging, warnings
        import pandas as pd
        root = logging.getLogger()
        before = (root.level, list(root.handlers), list(warnings.filters))
        from reintegration import disclosure
        from reintegration.core import step
        from reintegration.disclosure import protection
        ctx = step.start("{STEP}", city="rotterdam", size="small", root=__import__("pathlib").Path(r"{root}"))
        reg = disclosure.register(ctx)
        df = pd.DataFrame({{"a": ["x"] * 12 + ["y"] * 3, "b": ["u"] * 15}})
        reg.crosstab("t", df, index="a", columns="b")
        import acro, sys
        assert "acro" in sys.modules
        after = (root.level, list(root.handlers), list(warnings.filters))
        assert after == before, (before, after)
        print("unchanged")
        """  # noqa: E501
    )
    env = {k: v for k, v in os.environ.items() if k != "REINTEGRATION_BUILD_DIR"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "unchanged"


# ---- audit helper --------------------------------------------------------------------------


def _html_table() -> str:
    return "<table><tr><th>a</th></tr><tr><td>1</td></tr></table>"


def test_unregistered_outputs_names_the_cells(tmp_path: Path) -> None:
    registered = {"04_describe/uptake"}
    nb = nbformat.v4.new_notebook()
    ok = nbformat.v4.new_code_cell("reg.crosstab('uptake', ...)")
    ok.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={"text/html": _html_table(), "text/plain": "uptake"},
            metadata={"reintegration": {"output_id": "04_describe/uptake", "status": "pass"}},
        )
    ]
    text = nbformat.v4.new_code_cell("print('hello')")
    text.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello\n")]
    table = nbformat.v4.new_code_cell("df.head()")
    table.outputs = [
        nbformat.v4.new_output(
            "execute_result", data={"text/html": _html_table()}, execution_count=3
        )
    ]
    table.execution_count = 3
    image = nbformat.v4.new_code_cell("plt.plot(x)")
    image.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="})]
    stale = nbformat.v4.new_code_cell("reg.figure('gone', ...)")
    stale.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={"image/svg+xml": "<svg/>"},
            metadata={"reintegration": {"output_id": "04_describe/gone"}},
        )
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# Page"), ok, text, table, image, stale]
    path = tmp_path / "page.ipynb"
    nbformat.write(nb, path)

    found = release_check.unregistered_outputs(path, registered)
    assert [i for i, _ in found] == [3, 4, 5]
    assert "cell 3" in found[0][1] and "df.head()" in found[0][1]
    assert "table (text/html)" in found[0][1] and "execution count 3" in found[0][1]
    assert "image (image/png)" in found[1][1] and "plt.plot(x)" in found[1][1]
    assert "'04_describe/gone', which is not in the register" in found[2][1]

    nb.cells = [nb.cells[0], ok, text]
    nbformat.write(nb, path)
    assert release_check.unregistered_outputs(path, registered) == []


def test_register_and_audit_agree(reg: disclosure.Register, tmp_path: Path) -> None:
    out = reg.crosstab("uptake", cells(UPTAKE), index="sex", columns="instrument")
    data, meta = out.mimebundle()
    cell = nbformat.v4.new_code_cell("reg.crosstab('uptake', ...)")
    cell.outputs = [nbformat.v4.new_output("display_data", data=data, metadata=meta)]
    md = nbformat.v4.new_code_cell("Markdown(table)")
    md.outputs = [
        nbformat.v4.new_output("display_data", data={"text/markdown": "| a | b |\n|---|---|\n"})
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [cell, md]
    path = tmp_path / "page.ipynb"
    nbformat.write(nb, path)
    assert release_check.registered_output_ids(reg.ctx.out_dir) == {f"{STEP}/uptake"}
    found = release_check.unregistered_outputs(path, reg.ctx.out_dir)
    assert [(i, "table (text/markdown)" in d) for i, d in found] == [(1, True)]


def test_one_way_table_with_total(reg: disclosure.Register) -> None:
    df = cells({("f", "a"): 40, ("m", "a"): 4, ("x", "a"): 30})
    out = reg.crosstab("by_sex", df, index="sex", margins=True)
    assert list(out.table.columns) == ["count"]
    assert pd.isna(out.table.loc["m", "count"])
    # the true total, and the smallest other cell suppressed with m
    assert out.table.loc["Total", "count"] == 74
    assert pd.isna(out.table.loc["x", "count"]) and out.flags.loc["x", "count"] == "secondary"


def test_a_refused_request_leaves_nothing_in_acros_record(reg: disclosure.Register) -> None:
    df = cells({("f", "a"): 20, ("f", "b"): 3, ("m", "a"): 20, ("m", "b"): 20})
    with pytest.raises(disclosure.DisclosureError, match="not empty"):
        reg.crosstab("wrong", df, index="sex", columns="instrument", structural_zeros=[("f", "b")])
    reg.crosstab("right", df, index="sex", columns="instrument")
    results = json.loads((reg.dir / "acro" / "results.json").read_text())
    assert list(results["results"]) == ["right"]


def test_a_public_table_of_a_population_protects_the_tables_after_it(
    reg: disclosure.Register,
) -> None:
    files = pd.DataFrame({"table": ["a", "b"], "rows": [40, 50]})
    reg.public_table("files", files, reason="row totals per delivered file",
                     count_columns=["rows"], population="rows", index="table")  # fmt: skip
    data = pd.DataFrame(
        {"outcome": ["dup"] * 3 + ["kept"] * 37 + ["dup"] * 12 + ["kept"] * 38,
         "table": ["a"] * 40 + ["b"] * 50}
    )  # fmt: skip
    out = reg.crosstab("by_outcome", data, index="outcome", columns="table", population="rows")
    # dup/a = 3 is small; with the file totals published, kept/a = 37 would
    # give it back (40 - 37), so it is hidden too, and so is its rectangle
    assert pd.isna(out.table.loc["dup", "a"]) and pd.isna(out.table.loc["kept", "a"])
    tables = [
        protection.from_frame("files", "rows", files.set_index("table")[["rows"]].astype(float)),
        protection.from_frame(
            "by_outcome", "rows", out.table.astype(float), sensitive=[("dup", "a")]
        ),
    ]
    assert protection.leaks(tables, 10) == []


def test_acros_record_is_written_once_per_file_and_kept_whole(
    reg: disclosure.Register, monkeypatch
) -> None:
    """ACRO writes every output it holds at each flush; the register writes a
    file of ``acro/`` again only when its bytes changed (results.json after
    each output), and the folder holds exactly what ACRO wrote last."""
    from reintegration.core import atomic

    written: list[str] = []
    real = atomic.write_bytes

    def counting(path, payload, *args, **kwargs):
        if "/acro/" in Path(path).as_posix():
            written.append(Path(path).name)
        return real(path, payload, *args, **kwargs)

    monkeypatch.setattr(atomic, "write_bytes", counting)
    df = cells({("f", "a"): 20, ("f", "b"): 30, ("m", "a"): 20, ("m", "b"): 20})
    for name in ("first", "second", "third"):
        reg.crosstab(name, df, index="sex", columns="instrument")
    assert written.count("results.json") == 3
    others = [f for f in written if f != "results.json"]
    assert len(others) == len(set(others)) > 0  # each output's files once, not at every flush
    results = json.loads((reg.dir / "acro" / "results.json").read_text())
    assert list(results["results"]) == ["first", "second", "third"]
    on_disk = {p.name for p in (reg.dir / "acro").iterdir()}
    assert set(written) <= on_disk
