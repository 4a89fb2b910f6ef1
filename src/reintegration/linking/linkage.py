"""Pseudonymise and link: what CBS's linking unit does with a municipal delivery.

The linking unit (a trusted third party) receives the checked delivery with
its direct identifiers, replaces the BSN by the pseudonymous person key
RINPERSOONS + RINPERSOON, and passes on only what the analysis needs. Two
routes, in this order:

1. **BSN**: a BSN that passes the elfproef is looked up in the key table.
   RINPERSOONS is ``R`` for persons in the population register and ``S`` for
   BSNs outside it.
2. **Fallback** for clients without a usable BSN (missing, failing the
   elfproef, or not in the key table): sex + birth date + postcode (PC6) +
   house number against the person register. Where no register person
   matches on PC6, the four-digit postcode (PC4) is tried with the same
   fields. Exactly one candidate links; two or more candidates are
   *ambiguous* and are not linked (guessing would attach one person's history
   to another); none is *no match*.

A register person can be linked once. A fallback link to a person already
linked by BSN is dropped (``fallback_conflict``); two client records linked to
the same person by their BSN are both withheld (``same_person_twice``).
Benefit spells and instrument episodes follow their client.

The research delivery (:data:`RESEARCH_TABLES`) keeps only what the analysis
needs: no BSN, name, address, postcode, house number, exact birth date or
municipal record number. Case-manager numbers are replaced by a keyed hash
(HMAC-SHA256) whose key stays with the linking unit.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..disclosure import figures
from ..intake.quality import CHECKED_FILES, QUARANTINE_FILE
from . import bsn as bsnlib

#: client row outcomes in funnel order (the categories of the funnel figure)
OUTCOMES = (
    "quarantined in delivery check",
    "linked by BSN",
    "linked by fallback",
    "not linked",
)
#: linkage reasons: rows of the checked delivery that are not linked
LINK_REASONS = {
    "no_match": "no register person has this sex, birth date, postcode and house number",
    "ambiguous": "two or more register persons match: not linked",
    "fallback_incomplete": "no usable BSN, and sex, birth date, postcode or house number "
    "is missing",
    "fallback_conflict": "the fallback match is a person already linked by BSN to another "
    "client record",
    "same_person_twice": "two client records carry the BSN of the same person",
    "client_not_linked": "the spell's or episode's client was not linked",
}
#: columns that identify a person directly; none may reach the research domain
DIRECT_IDENTIFIERS = (
    "bsn", "BSN", "client_id", "first_name", "surname_prefix", "last_name", "street",
    "house_number", "postcode", "place", "birth_date", "spell_id", "episode_id",
)
FALLBACK_FIELDS = ("sex", "birth_date", "postcode", "house_number")
_SEX_REGISTER = {"male": "M", "female": "V"}

KEY_FILE = "pseudonym_key.json"
UNLINKED_FILE = "linkage_quarantine.parquet"

#: The research delivery: table -> columns (name, type, meaning). The panel
#: step reads these files from ``build/<size>/<city>/research/<table>.parquet``.
RESEARCH_TABLES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "clients": (
        ("RINPERSOONS", "string", "key source: R = population register, S = BSN outside it"),
        ("RINPERSOON", "string", "pseudonymous person number, 9 characters"),
        ("link_route", "string", "bsn or fallback: how the record was linked"),
        ("birth_year", "Int16", "year of birth (from the municipal record)"),
        ("birth_month", "Int8", "month of birth, 1-12"),
        ("sex", "string", "male or female"),
        ("district", "string", "district of the address"),
        ("household_type", "string", "single, single_parent, couple, couple_children"),
        ("language_level", "string", "below_b1 or b1_or_higher (municipal assessment)"),
        ("labour_market_distance", "string", "short, medium or large (municipal rating)"),
        ("team", "string", "the district team that serves the client"),
        ("case_manager", "string", "pseudonymised case manager (keyed hash); missing where "
         "the city does not deliver it"),
    ),
    "benefit_spells": (
        ("RINPERSOONS", "string", "key source"),
        ("RINPERSOON", "string", "pseudonymous person number"),
        ("benefit_type", "string", "scheme: participatiewet"),
        ("start_date", "datetime64[ns]", "first day of the spell"),
        ("end_date", "datetime64[ns]", "last day; missing while running at the export date"),
    ),
    "instruments": (
        ("RINPERSOONS", "string", "key source"),
        ("RINPERSOON", "string", "pseudonymous person number"),
        ("instrument", "string", "instrument, key of config/instruments.yml"),
        ("start_date", "datetime64[ns]", "start of the episode"),
        ("end_date", "datetime64[ns]", "planned or actual end; missing where not delivered"),
    ),
    "caseload": (
        ("case_manager", "string", "pseudonymised case manager (same keyed hash)"),
        ("team", "string", "team"),
        ("first_active", "datetime64[ns]", "first day on the post"),
        ("last_active", "datetime64[ns]", "last day on the post; missing while on it"),
    ),
}
#: sort keys of the research tables (rows are written in this order)
RESEARCH_SORT = {
    "clients": ["RINPERSOONS", "RINPERSOON"],
    "benefit_spells": ["RINPERSOONS", "RINPERSOON", "start_date", "end_date"],
    "instruments": ["RINPERSOONS", "RINPERSOON", "start_date", "instrument", "end_date"],
    "caseload": ["team", "first_active", "case_manager"],
}


class LinkageError(ValueError):
    """The linking unit's own data are unusable (for example a key table in
    which a BSN occurs twice)."""


# ---------------------------------------------------------------------------
# pseudonyms
# ---------------------------------------------------------------------------


def synthetic_key(city: str, size: str, seed: int | str = "") -> bytes:
    """The deterministic key used for synthetic data: a SHA-256 of a fixed
    label, the generator's seed, the city and the size. Anyone with the
    repository can recompute it, which is harmless for synthetic data and is
    why real data never use it (see :func:`pseudonym_key`)."""
    label = f"reintegration synthetic pseudonym key|{seed}|{city}|{size}"
    return hashlib.sha256(label.encode("utf-8")).digest()


def pseudonym_key(ctx: Any) -> bytes:
    """The linking unit's pseudonymisation key, kept in the ttp domain
    (``build/<size>/<city>/ttp/pseudonym_key.json``; never committed).

    For synthetic data the key is derived deterministically, so reruns give
    the same pseudonyms. A city whose configuration declares ``data_roots``
    (real exports) gets 32 random bytes on first use, kept and reused.
    """
    path = ctx.output_path(KEY_FILE, "ttp")
    if ctx.city.get("data_roots"):
        if path.exists():
            return bytes.fromhex(ctx.read_json(path)["key"])
        key = secrets.token_bytes(32)
        origin = "random (real data)"
    else:
        import yaml

        cfg = ctx.check_read(ctx.paths.config_dir / "synthetic.yml")
        seed = (yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}).get("seed", "")
        key = synthetic_key(ctx.city_name, ctx.size, seed)
        origin = "derived from the synthetic-data seed (synthetic data only)"
    ctx.write_json(
        KEY_FILE, {"algorithm": "HMAC-SHA256", "key": key.hex(), "origin": origin}, domain="ttp"
    )
    return key


def pseudonymise(values: pd.Series, key: bytes, *, length: int = 16) -> pd.Series:
    """A keyed hash of each value (HMAC-SHA256, the first ``length`` hex
    characters); missing stays missing. Without the key the mapping cannot be
    recomputed, so a list of case-manager numbers does not reveal who is who."""
    def one(v: Any) -> Any:
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            return pd.NA
        return hmac.new(key, str(v).encode("utf-8"), hashlib.sha256).hexdigest()[:length]

    return pd.Series([one(v) for v in values], index=values.index, dtype="string")


# ---------------------------------------------------------------------------
# reading (through the step context)
# ---------------------------------------------------------------------------


def read_checked(ctx: Any) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The delivery check's tables and quarantine (municipal domain)."""
    tables = {}
    for table in ctx.city["exports"]["files"]:
        tables[table] = ctx.read_parquet(ctx.upstream_path(CHECKED_FILES[table], "municipal"))
    quarantine = ctx.read_parquet(ctx.upstream_path(QUARANTINE_FILE, "municipal"))
    return tables, quarantine


def read_ttp(ctx: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The key table and the person register (ttp domain)."""
    folder = ctx.paths.data_domain_dir("ttp", ctx.city_name)
    return (
        ctx.read_parquet(folder / "key_table.parquet"),
        ctx.read_parquet(folder / "person_register.parquet"),
    )


# ---------------------------------------------------------------------------
# linking
# ---------------------------------------------------------------------------


@dataclass
class LinkResult:
    """Everything the linkage produces (see :func:`link`)."""

    research: dict[str, pd.DataFrame]
    clients: pd.DataFrame  # per checked client row: route, reason, key, candidates
    unlinked: pd.DataFrame  # linkage quarantine (ttp domain)
    report: dict[str, Any]
    outcomes: dict[str, pd.DataFrame] = field(default_factory=dict)

    def accounting_ok(self) -> bool:
        return all(_adds_up(t) for t in self.report["tables"].values())

    def client_outcomes(self) -> pd.DataFrame:
        """One row per delivered client row with its outcome (:data:`OUTCOMES`)."""
        return self.outcomes["clients"]

    def all_outcomes(self) -> pd.DataFrame:
        """One row per delivered row of every linked table: table, outcome."""
        return pd.concat(
            [o.assign(table=t) for t, o in self.outcomes.items()], ignore_index=True
        )[["table", "outcome"]]


def link(
    tables: dict[str, pd.DataFrame],
    delivery_quarantine: pd.DataFrame,
    key_table: pd.DataFrame,
    register: pd.DataFrame,
    *,
    key: bytes,
    fallback_pc4: bool = True,
) -> LinkResult:
    """Link a checked delivery; see the module docstring for the rules."""
    kt = _key_table(key_table)
    reg = _register(register)
    clients = tables["clients"].copy()
    routes = _link_clients(clients, kt, reg, fallback_pc4=fallback_pc4)
    research: dict[str, pd.DataFrame] = {}
    linked = routes[routes["route"].notna()]
    research["clients"] = _research_clients(clients, routes, key)
    by_client = linked.set_index("client_id")[["RINPERSOONS", "RINPERSOON", "route"]]

    unlinked = [
        pd.DataFrame({
            "table": "clients", "row": routes.loc[routes["route"].isna(), "_row"],
            "client_id": routes.loc[routes["route"].isna(), "client_id"],
            "reason": routes.loc[routes["route"].isna(), "reason"],
            "candidates": routes.loc[routes["route"].isna(), "candidates"],
        })
    ]
    spell_routes: dict[str, pd.Series] = {"clients": routes["route"]}
    for table in ("benefit_spells", "instruments"):
        if table not in tables:
            continue
        df = tables[table]
        joined = df.join(by_client, on="client_id")
        ok = joined["RINPERSOON"].notna()
        spell_routes[table] = joined["route"]
        unlinked.append(pd.DataFrame({
            "table": table, "row": df.loc[~ok, "_row"], "client_id": df.loc[~ok, "client_id"],
            "reason": "client_not_linked", "candidates": 0,
        }))
        research[table] = _research_events(table, joined[ok])
    if "caseload" in tables:
        cl = tables["caseload"]
        research["caseload"] = _finish(
            "caseload",
            pd.DataFrame({
                "case_manager": pseudonymise(cl["case_manager"], key),
                "team": cl["team"], "first_active": cl["first_active"],
                "last_active": cl["last_active"],
            }),
        )
    unlinked_df = pd.concat(unlinked, ignore_index=True)
    unlinked_df["detail"] = unlinked_df["reason"].map(LINK_REASONS)
    unlinked_df = unlinked_df.astype({"row": "int64", "candidates": "int64"})
    unlinked_df["client_id"] = unlinked_df["client_id"].astype("string")

    report = _report(tables, delivery_quarantine, routes, spell_routes, clients, reg, research)
    result = LinkResult(research, routes, unlinked_df, report)
    result.outcomes = _outcomes(tables, delivery_quarantine, spell_routes)
    for name, df in research.items():
        research_schema(name).validate(df)
    return result


def _key_table(key_table: pd.DataFrame) -> pd.DataFrame:
    kt = key_table[["BSN", "RINPERSOONS", "RINPERSOON"]].copy()
    kt["BSN"] = kt["BSN"].astype(str)
    dup = kt["BSN"].duplicated(keep=False)
    if dup.any():
        raise LinkageError(
            f"the key table holds {int(dup.sum())} rows whose BSN occurs more than once: "
            "a BSN must identify one person"
        )
    return kt.set_index("BSN")


def _register(register: pd.DataFrame) -> pd.DataFrame:
    reg = register[["RINPERSOONS", "RINPERSOON", "GESLACHT", "GEBOORTEDATUM", "POSTCODE",
                    "HUISNUMMER"]].copy()
    reg["sex"] = reg["GESLACHT"].astype(str).str.upper()
    reg["birth_date"] = pd.to_datetime(reg["GEBOORTEDATUM"]).dt.normalize().astype(
        "datetime64[ns]"
    )
    reg["postcode"] = reg["POSTCODE"].astype(str).str.replace(" ", "").str.upper()
    reg["pc4"] = reg["postcode"].str[:4]
    reg["house_number"] = pd.to_numeric(reg["HUISNUMMER"], errors="coerce").astype("Int64")
    return reg


def _link_clients(
    clients: pd.DataFrame, kt: pd.DataFrame, reg: pd.DataFrame, *, fallback_pc4: bool
) -> pd.DataFrame:
    n = len(clients)
    out = pd.DataFrame({
        "_row": clients["_row"].to_numpy(),
        "client_id": clients["client_id"].to_numpy(),
        "route": pd.Series([None] * n, dtype=object),
        "tier": pd.Series([None] * n, dtype=object),
        "reason": pd.Series([None] * n, dtype=object),
        "RINPERSOONS": pd.Series([None] * n, dtype=object),
        "RINPERSOON": pd.Series([None] * n, dtype=object),
        "candidates": np.zeros(n, dtype=np.int64),
        "bsn_not_in_key_table": np.zeros(n, dtype=bool),
    })
    bsn = clients["bsn"] if "bsn" in clients.columns else pd.Series([None] * n)
    has_bsn = bsn.notna().to_numpy()
    found = kt.reindex(bsn.where(bsn.notna(), "").astype(str).to_numpy())
    hit = has_bsn & found["RINPERSOON"].notna().to_numpy()
    out.loc[hit, "route"] = "bsn"
    out.loc[hit, "RINPERSOONS"] = found["RINPERSOONS"].to_numpy()[hit]
    out.loc[hit, "RINPERSOON"] = found["RINPERSOON"].to_numpy()[hit]
    out.loc[has_bsn & ~hit, "bsn_not_in_key_table"] = True

    todo = ~hit
    fields = {
        "sex": clients["sex"].map(_SEX_REGISTER) if "sex" in clients.columns else None,
        "birth_date": clients.get("birth_date"),
        "postcode": clients.get("postcode"),
        "house_number": clients.get("house_number"),
    }
    complete = np.ones(n, dtype=bool)
    for name in FALLBACK_FIELDS:
        values = fields[name]
        complete &= values.notna().to_numpy() if values is not None else np.zeros(n, dtype=bool)
    out.loc[todo & ~complete, "reason"] = "fallback_incomplete"
    try_rows = np.flatnonzero(todo & complete)
    if try_rows.size:
        probe = pd.DataFrame({
            "pos": try_rows,
            "sex": fields["sex"].to_numpy()[try_rows],
            "birth_date": pd.to_datetime(fields["birth_date"].to_numpy()[try_rows]).normalize(),
            "postcode": fields["postcode"].to_numpy()[try_rows],
            "house_number": pd.array(fields["house_number"].to_numpy()[try_rows], dtype="Int64"),
        })
        probe["birth_date"] = probe["birth_date"].astype("datetime64[ns]")
        probe["pc4"] = probe["postcode"].astype(str).str[:4]
        tiers = [("pc6", ["sex", "birth_date", "postcode", "house_number"])]
        if fallback_pc4:
            tiers.append(("pc4", ["sex", "birth_date", "pc4", "house_number"]))
        remaining = probe
        for tier, keys in tiers:
            if remaining.empty:
                break
            cand = reg.groupby(keys, dropna=True).agg(
                candidates=("RINPERSOON", "size"),
                RINPERSOONS=("RINPERSOONS", "first"),
                RINPERSOON=("RINPERSOON", "first"),
            )
            m = remaining.join(cand, on=keys)
            one = m["candidates"] == 1
            many = m["candidates"] > 1
            pos = m.loc[one, "pos"].to_numpy()
            out.loc[pos, "route"] = "fallback"
            out.loc[pos, "tier"] = tier
            out.loc[pos, "RINPERSOONS"] = m.loc[one, "RINPERSOONS"].to_numpy()
            out.loc[pos, "RINPERSOON"] = m.loc[one, "RINPERSOON"].to_numpy()
            out.loc[pos, "candidates"] = 1
            amb = m.loc[many, "pos"].to_numpy()
            out.loc[amb, "reason"] = "ambiguous"
            out.loc[amb, "candidates"] = m.loc[many, "candidates"].to_numpy(dtype=np.int64)
            remaining = remaining[m["candidates"].isna().to_numpy()]
        out.loc[remaining["pos"].to_numpy(), "reason"] = "no_match"

    # a register person is linked once
    linked = out["route"].notna()
    person = out["RINPERSOONS"].astype(str) + ":" + out["RINPERSOON"].astype(str)
    multi = linked & person.duplicated(keep=False) & linked
    if multi.any():
        groups = out[multi].assign(_p=person[multi]).groupby("_p")["route"]
        n_bsn = groups.transform(lambda s: int((s == "bsn").sum()))
        for idx, route in out.loc[multi, "route"].items():
            if n_bsn[idx] == 1 and route == "fallback":
                reason = "fallback_conflict"
            elif n_bsn[idx] == 1:
                continue
            else:
                reason = "same_person_twice"
            out.loc[idx, ["route", "tier", "RINPERSOONS", "RINPERSOON"]] = None
            out.loc[idx, "reason"] = reason
    return out


def _research_clients(clients: pd.DataFrame, routes: pd.DataFrame, key: bytes) -> pd.DataFrame:
    ok = routes["route"].notna().to_numpy()
    c = clients[ok]
    birth = pd.to_datetime(c["birth_date"]) if "birth_date" in c.columns else None

    def col(name: str) -> Any:
        return c[name].to_numpy() if name in c.columns else pd.NA

    df = pd.DataFrame({
        "RINPERSOONS": routes.loc[ok, "RINPERSOONS"].to_numpy(),
        "RINPERSOON": routes.loc[ok, "RINPERSOON"].to_numpy(),
        "link_route": routes.loc[ok, "route"].to_numpy(),
        "birth_year": birth.dt.year.to_numpy() if birth is not None else pd.NA,
        "birth_month": birth.dt.month.to_numpy() if birth is not None else pd.NA,
        "sex": col("sex"),
        "district": col("district"),
        "household_type": col("household_type"),
        "language_level": col("language_level"),
        "labour_market_distance": col("labour_market_distance"),
        "team": col("team"),
        "case_manager": (
            pseudonymise(c["case_manager"], key).to_numpy()
            if "case_manager" in c.columns else pd.NA
        ),
    })
    return _finish("clients", df)


def _research_events(table: str, joined: pd.DataFrame) -> pd.DataFrame:
    what = "benefit_type" if table == "benefit_spells" else "instrument"
    df = pd.DataFrame({
        "RINPERSOONS": joined["RINPERSOONS"].to_numpy(),
        "RINPERSOON": joined["RINPERSOON"].to_numpy(),
        what: joined[what].to_numpy(),
        "start_date": joined["start_date"].to_numpy(),
        "end_date": joined["end_date"].to_numpy(),
    })
    return _finish(table, df)


def _finish(table: str, df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=range(len(df)))
    for name, dtype, _ in RESEARCH_TABLES[table]:
        values = df[name].to_numpy() if name in df.columns else pd.NA
        s = pd.Series(values, index=out.index)
        if dtype == "string":
            s = s.astype(object).where(s.notna(), None).astype("string")
        elif dtype.startswith("datetime"):
            s = pd.to_datetime(s).astype("datetime64[ns]")
        else:
            s = pd.to_numeric(s, errors="coerce").astype(dtype)
        out[name] = s
    out = out.sort_values(RESEARCH_SORT[table], kind="stable", na_position="last")
    return out.reset_index(drop=True)


def research_schema(table: str) -> Any:
    """The pandera contract of a research table (columns, types, keys)."""
    import pandera.pandas as pa

    cols: dict[str, Any] = {}
    for name, dtype, _ in RESEARCH_TABLES[table]:
        checks = []
        nullable = True
        if name == "RINPERSOONS":
            checks, nullable = [pa.Check.isin(["R", "S"])], False
        elif name == "RINPERSOON":
            checks, nullable = [pa.Check.str_matches(r"^[0-9]{9}$")], False
        elif name == "link_route":
            checks, nullable = [pa.Check.isin(["bsn", "fallback"])], False
        elif name == "birth_month":
            checks = [pa.Check.in_range(1, 12)]
        elif name == "start_date":
            nullable = False
        cols[name] = pa.Column(dtype, checks=checks, nullable=nullable)
    unique = ["RINPERSOONS", "RINPERSOON"] if table == "clients" else None
    return pa.DataFrameSchema(cols, strict=True, ordered=True, unique=unique,
                              name=f"research {table}")


# ---------------------------------------------------------------------------
# accounting
# ---------------------------------------------------------------------------


def _adds_up(t: dict[str, Any]) -> bool:
    return t["rows_in"] == t["linked_bsn"] + t["linked_fallback"] + sum(t["quarantined"].values())


def _report(
    tables: dict[str, pd.DataFrame],
    delivery_q: pd.DataFrame,
    routes: pd.DataFrame,
    spell_routes: dict[str, pd.Series],
    clients: pd.DataFrame,
    reg: pd.DataFrame,
    research: dict[str, pd.DataFrame],
) -> dict[str, Any]:
    out: dict[str, Any] = {"tables": {}}
    for table in ("clients", "benefit_spells", "instruments"):
        if table not in tables:
            continue
        dq = delivery_q[delivery_q["table"] == table]["reason"].value_counts()
        r = spell_routes[table]
        if table == "clients":
            lq = routes.loc[routes["route"].isna(), "reason"].value_counts()
        else:
            lq = pd.Series({"client_not_linked": int(r.isna().sum())})
            lq = lq[lq > 0]
        quarantined = {k: int(v) for k, v in dq.items()}
        for k, v in lq.items():
            quarantined[k] = quarantined.get(k, 0) + int(v)
        entry = {
            "rows_in": int(len(tables[table]) + len(delivery_q[delivery_q["table"] == table])),
            "rows_checked": int(len(tables[table])),
            "linked_bsn": int((r == "bsn").sum()),
            "linked_fallback": int((r == "fallback").sum()),
            "linked": int(r.notna().sum()),
            "quarantined": dict(sorted(quarantined.items())),
            "quarantined_delivery_check": {k: int(v) for k, v in sorted(dq.items())},
            "quarantined_linkage": {k: int(v) for k, v in sorted(lq.items())},
            "ambiguous": int(lq.get("ambiguous", 0)),
        }
        if table == "clients":
            linked = routes["route"].notna()
            entry["ambiguous_candidates"] = int(
                routes.loc[routes["reason"] == "ambiguous", "candidates"].sum()
            )
            entry["linked_fallback_by_postcode"] = {
                t: int((routes["tier"] == t).sum()) for t in ("pc6", "pc4")
            }
            entry["linked_by_rinpersoons"] = {
                s: int(((routes["RINPERSOONS"] == s) & linked).sum()) for s in ("R", "S")
            }
            entry["bsn_not_in_key_table"] = int(routes["bsn_not_in_key_table"].sum())
            padded = _padded_rows(clients)
            entry["bsn_padded_linked"] = int(
                (padded & (routes["route"] == "bsn").to_numpy()).sum()
            )
            entry["bsn_register_mismatch"] = _mismatches(clients, routes, reg)
            entry["linked_share"] = round(entry["linked"] / entry["rows_in"], 4) if entry[
                "rows_in"] else None
        out["tables"][table] = entry
        if not _adds_up(entry):  # pragma: no cover - a bug, never a data problem
            raise AssertionError(f"linkage rows do not add up for {table}: {entry}")
    if "caseload" in tables:
        dq = delivery_q[delivery_q["table"] == "caseload"]["reason"].value_counts()
        out["other_tables"] = {
            "caseload": {
                "rows_in": int(len(tables["caseload"]) + dq.sum()),
                "rows_checked": int(len(tables["caseload"])),
                "pseudonymised": int(len(research["caseload"])),
                "quarantined": {k: int(v) for k, v in sorted(dq.items())},
            }
        }
    out["research_tables"] = {t: int(len(df)) for t, df in research.items()}
    out["pseudonymisation"] = {
        "case_manager": "HMAC-SHA256 keyed hash, first 16 hex characters; the key stays in "
        "the ttp domain",
    }
    out["reasons"] = LINK_REASONS
    return out


def _padded_rows(clients: pd.DataFrame) -> np.ndarray:
    """Rows whose eight-digit BSN got its leading zero back in the delivery check."""
    if "bsn_padded" not in clients.columns:
        return np.zeros(len(clients), dtype=bool)
    return clients["bsn_padded"].fillna(False).to_numpy(dtype=bool)


def _mismatches(clients: pd.DataFrame, routes: pd.DataFrame, reg: pd.DataFrame) -> int:
    """BSN links whose sex or birth date differ from the register: a sign of
    a BSN that passes the elfproef but belongs to someone else."""
    ok = (routes["route"] == "bsn").to_numpy() & (routes["RINPERSOONS"] == "R").to_numpy()
    if not ok.any() or "birth_date" not in clients.columns or "sex" not in clients.columns:
        return 0
    r = reg.set_index("RINPERSOON")[["sex", "birth_date"]]
    got = r.reindex(routes.loc[ok, "RINPERSOON"].to_numpy())
    sex = clients["sex"].map(_SEX_REGISTER).to_numpy()[ok]
    bd = pd.to_datetime(clients["birth_date"]).dt.normalize().to_numpy()[ok]
    differ = (
        (pd.notna(sex) & (sex != got["sex"].to_numpy()))
        | (pd.notna(bd) & (bd != got["birth_date"].to_numpy()))
    )
    return int(differ.sum())


def _outcomes(
    tables: dict[str, pd.DataFrame], delivery_q: pd.DataFrame, spell_routes: dict[str, pd.Series]
) -> dict[str, pd.DataFrame]:
    out = {}
    for table, r in spell_routes.items():
        n_q = int((delivery_q["table"] == table).sum())
        labels = np.where(
            r.to_numpy() == "bsn", OUTCOMES[1],
            np.where(r.to_numpy() == "fallback", OUTCOMES[2], OUTCOMES[3]),
        )
        out[table] = pd.DataFrame({"outcome": np.concatenate([[OUTCOMES[0]] * n_q, labels])})
    return out


# ---------------------------------------------------------------------------
# checks and writing
# ---------------------------------------------------------------------------


def identifier_columns(research: dict[str, pd.DataFrame]) -> list[str]:
    """Names of direct-identifier columns present in the research tables (none expected)."""
    return sorted({f"{t}.{c}" for t, df in research.items() for c in df.columns
                   if c in DIRECT_IDENTIFIERS})


def identifier_values(
    research: dict[str, pd.DataFrame], municipal_clients: pd.DataFrame
) -> dict[str, int]:
    """How many values of the research tables equal a direct identifier of the
    municipal client file (BSN, name, street, postcode, client number, exact
    birth date), per identifier. Every count should be zero."""
    values: dict[str, set[str]] = {}
    for col in ("bsn", "client_id", "first_name", "last_name", "street", "postcode"):
        if col in municipal_clients.columns:
            values[col] = {str(v) for v in municipal_clients[col].dropna()}
    dates: set[pd.Timestamp] = set()
    if "birth_date" in municipal_clients.columns:
        dates = set(pd.to_datetime(municipal_clients["birth_date"]).dropna())
    found = {k: 0 for k in [*values, "birth_date"]}
    events = ("start_date", "end_date", "first_active", "last_active")
    for df in research.values():
        for col in df.columns:
            s = df[col]
            if col == "RINPERSOON":
                # nine digits like a BSN: equal values occur by chance; that the key
                # does not carry a person's own BSN is checked separately
                continue
            if pd.api.types.is_datetime64_any_dtype(s):
                # event dates may coincide with someone's birthday; any other date
                # column would be a birth date
                if col not in events:
                    found["birth_date"] += int(s.isin(dates).sum())
                continue
            text = s.dropna().astype(str)
            for k, vals in values.items():
                found[k] += int(text.isin(vals).sum())
    return found


def elfproef_values(research: dict[str, pd.DataFrame]) -> int:
    """Values outside the RINPERSOON column that are nine digits passing the
    elfproef (a BSN would; RINPERSOON numbers are nine digits too and are
    excluded)."""
    n = 0
    for df in research.values():
        for col in df.columns:
            if col == "RINPERSOON" or pd.api.types.is_datetime64_any_dtype(df[col]):
                continue
            s = df[col].dropna().astype(str)
            n += int(bsnlib.elfproef_series(s).sum())
    return n


def contract_table() -> pd.DataFrame:
    """The research delivery's tables and columns (the panel step's input)."""
    rows = [
        {"table": t, "column": name, "type": dtype, "meaning": meaning}
        for t, cols in RESEARCH_TABLES.items() for name, dtype, meaning in cols
    ]
    return pd.DataFrame(rows).set_index(["table", "column"])


def write_delivery(ctx: Any, result: LinkResult) -> dict[str, Any]:
    """Write the research delivery, the linkage quarantine (ttp) and
    ``linkage.json`` (research: it holds exact counts)."""
    written = {}
    for table, df in result.research.items():
        written[table] = ctx.write_parquet(f"{table}.parquet", df, domain="research")
    written["unlinked"] = ctx.write_parquet(UNLINKED_FILE, result.unlinked, domain="ttp")
    report = dict(result.report, city=ctx.city_name, size=ctx.size)
    written["linkage"] = ctx.write_json("linkage.json", report, domain="research")
    return written


def funnel_stages(released: Any) -> list[tuple[str, float | None, str]]:
    """The funnel's bars, top to bottom, as (label, count or None when
    suppressed, kind). Built from the released (disclosure-checked) one-way
    table of client outcomes only: a total is drawn only when every count it
    adds up is released, so no bar gives a suppressed count back by subtraction."""
    table = getattr(released, "table", released)
    values = table.iloc[:, 0] if isinstance(table, pd.DataFrame) else table
    present = {o: values.get(o) for o in OUTCOMES if o in values.index}
    known = {o: float(v) for o, v in present.items() if pd.notna(v)}
    stages: list[tuple[str, float | None, str]] = []
    if len(known) == len(present):
        total = sum(known.values())
        stages.append(("delivered", total, "total"))
        if OUTCOMES[0] in known:
            stages.append(("passed the delivery check", total - known[OUTCOMES[0]], "total"))
    routes = [o for o in OUTCOMES[1:3] if o in present]
    if routes and all(o in known for o in routes):
        stages.append(("linked", sum(known[o] for o in routes), "linked"))
    for o in (*OUTCOMES[1:3], OUTCOMES[3], OUTCOMES[0]):
        if o in present:
            kind = "route" if o in OUTCOMES[1:3] else "lost"
            stages.append((o, known.get(o), kind))
    return stages


def funnel_figure(released: Any, *, threshold: int | None = None) -> Any:
    """The linkage funnel (see :func:`funnel_stages`): a suppressed count is
    drawn as a hatched box of a nominal length, labelled as suppressed (see
    :mod:`reintegration.disclosure.figures`), never as an empty bar."""
    import matplotlib.pyplot as plt

    threshold = figures.threshold_of(released, threshold)
    stages = funnel_stages(released)
    colour = {"total": "#8c8c8c", "linked": "#2f5d8c", "route": "#6f9fd8", "lost": "#d08c60"}
    fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(stages) + 1.3))
    y = np.arange(len(stages))[::-1]
    values = np.array([np.nan if c is None else c for _, c, _ in stages], dtype=float)
    nominal = figures.nominal_size(values)
    top = max(float(np.nanmax(values)) if np.isfinite(values).any() else 0.0, nominal)
    ends = figures.bar_or_suppressed(ax, y, values, nominal=nominal, horizontal=True,
                                     colour=[colour[k] for _, _, k in stages],
                                     text=figures.label(threshold), fontsize=9)
    for yi, c, end in zip(y, values, ends, strict=True):
        if np.isfinite(c):
            ax.text(end + top * 0.01, yi, f"{int(c):,}", va="center", fontsize=9)
    ax.set_yticks(y, [label for label, _, _ in stages])
    ax.set_xlim(0, top * 1.2)
    ax.set_xlabel("client rows (hatched: suppressed, drawn at a nominal length)")
    ax.set_title("Linkage funnel: where the delivered client rows went")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig
