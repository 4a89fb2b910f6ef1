"""Turn a :class:`~reintegration.synth.world.World` into the tables of each
custody domain, with canonical column names (see :mod:`.schema`).

Spells are cut from the realised monthly path so that month-level status and
spells agree exactly: a spell covers only months in which the person has that
status, and two spells of different status never share a month. *Status in a
month* is therefore unambiguous: a spell overlaps the month.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.months import text as month_text
from ..linking import bsn as bsnlib
from .names import (
    ACUTE_ATC4,
    CHRONIC_ATC4,
    COUNTRIES,
    EDUCATION_CODES,
    FIRST_NAMES,
    NETHERLANDS,
    POSTCODE_LETTERS,
    STREETS,
    SURNAMES,
)
from .world import (
    PRE_MONTHS,
    B,
    E,
    World,
    _categorical,
    _ymd,
    day_between,
    month_first_day,
    random_day,
)

MONTH_DAYS = 30.4375


@dataclass
class Identity:
    """Identifiers and addresses of all register persons: clients first
    (index 0..n-1), then other residents."""

    rin: np.ndarray  # 9-char strings
    rins: np.ndarray  # R or S
    bsn: np.ndarray
    pc4: np.ndarray
    letters: np.ndarray
    house_number: np.ndarray
    street: np.ndarray
    country: np.ndarray  # origin country code (6030 for no migration background)


@dataclass
class Residents:
    female: np.ndarray
    birth_date: np.ndarray
    migration: np.ndarray
    generation: np.ndarray
    education: np.ndarray
    education_missing: np.ndarray
    chronic: np.ndarray


def _strings(values: np.ndarray) -> np.ndarray:
    return np.asarray(values).astype(str).astype(object)


def make_identity(w: World, rng: np.random.Generator, n_res: int, res_mig: np.ndarray) -> Identity:
    p = w.p
    n = w.n
    total = n + n_res
    if total > 999_999:
        raise ValueError(f"{p.city}: {total} persons exceed one RINPERSOON block (999,999)")
    # Pseudonyms must never look like a BSN: numbers that pass the elfproef are
    # not issued (so any nine-digit number passing it in an output is a leak).
    block = p.rin_block * 1_000_000 + np.arange(1_000_000)
    pool = block[~bsnlib.passes_as_int(block)]
    if total > len(pool):
        raise ValueError(f"{p.city}: {total} persons exceed one RINPERSOON block ({len(pool)})")
    rin = np.char.zfill(rng.choice(pool, size=total, replace=False).astype(str), 9)
    unregistered = np.zeros(total, dtype=bool)
    unregistered[:n] = rng.random(n) < p.syn["defects"]["unregistered_rate"]
    rins = np.where(unregistered, "S", "R")
    bsns = bsnlib.generate(rng, total)
    teams = np.concatenate([w.persons.team, rng.integers(0, len(p.syn["teams"]), n_res)])
    lo, hi = p.syn["pc4_range"]
    chunks = np.array_split(np.arange(lo, hi + 1), len(p.syn["teams"]))
    c_lo = np.array([c[0] for c in chunks])
    c_len = np.array([len(c) for c in chunks])
    pc4 = c_lo[teams] + np.floor(rng.random(total) * c_len[teams]).astype(int)
    letters_idx = rng.integers(0, len(POSTCODE_LETTERS), (total, 2))
    alphabet = np.array(list(POSTCODE_LETTERS))
    letters = np.char.add(alphabet[letters_idx[:, 0]], alphabet[letters_idx[:, 1]])
    house = np.minimum(rng.geometric(1 / 40, total), 400)
    street_idx = (pc4 * 400 + letters_idx[:, 0] * 20 + letters_idx[:, 1]) * 7919 % len(STREETS)
    street = np.array(STREETS, dtype=object)[street_idx]
    migration = np.concatenate([w.persons.migration, res_mig])
    country = np.empty(total, dtype=object)
    for cat, options in COUNTRIES.items():
        mask = migration == cat
        codes = np.array([c for c, _ in options], dtype=object)
        country[mask] = codes[rng.integers(0, len(codes), mask.sum())]
    return Identity(
        rin=_strings(rin), rins=_strings(rins), bsn=_strings(bsns), pc4=pc4,
        letters=_strings(letters), house_number=house, street=street, country=country,
    )


def make_residents(w: World, rng: np.random.Generator, n_res: int) -> Residents:
    p = w.p
    pop = p.syn["population"]
    female = rng.random(n_res) < pop["female_share"]
    ref = month_first_day(np.array([p.data_end]))[0]
    age_days = rng.integers(18 * 365, 75 * 365, n_res)
    birth = ref - age_days.astype("timedelta64[D]")
    migration = _categorical(rng, pop["migration"], n_res)
    generation = np.where(migration == "nl", 0, np.where(rng.random(n_res) < 0.5, 1, 2))
    education = _categorical(rng, pop["education"], n_res)
    education_missing = rng.random(n_res) < np.where(generation == 1, 0.3, 0.03)
    age = age_days / 365.25
    ch = pop["chronic_health"]
    chronic = rng.random(n_res) < np.clip(
        ch["base"] * 0.6 + ch["per_decade_over_30"] * np.maximum(age - 30, 0) / 10, 0, 0.95
    )
    return Residents(female, birth, migration, generation, education, education_missing, chronic)


def names(w: World, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = w.n
    first = np.empty(n, dtype=object)
    prefix = np.empty(n, dtype=object)
    last = np.empty(n, dtype=object)
    sex = np.where(w.persons.female, "female", "male")
    for cat in FIRST_NAMES:
        for s in ("male", "female"):
            mask = (w.persons.migration == cat) & (sex == s)
            pool = np.array(FIRST_NAMES[cat][s], dtype=object)
            first[mask] = pool[rng.integers(0, len(pool), mask.sum())]
        mask = w.persons.migration == cat
        pool = SURNAMES[cat]
        idx = rng.integers(0, len(pool), mask.sum())
        prefix[mask] = np.array([a for a, _ in pool], dtype=object)[idx]
        last[mask] = np.array([b for _, b in pool], dtype=object)[idx]
    # some second-generation and mixed households carry a Dutch surname
    mixed = (w.persons.generation == 2) & (rng.random(n) < 0.15)
    pool = SURNAMES["nl"]
    idx = rng.integers(0, len(pool), mixed.sum())
    prefix[mixed] = np.array([a for a, _ in pool], dtype=object)[idx]
    last[mixed] = np.array([b for _, b in pool], dtype=object)[idx]
    return first, prefix, last


_FOLD = str.maketrans({"ı": "i", "İ": "I", "ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "æ": "ae",
                       "Æ": "AE", "ß": "ss", "đ": "d"})


def ascii_fold(text: str) -> str:
    """Drop accents the way a careless system migration does (é -> e, ş -> s)."""
    if not isinstance(text, str):
        return text
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _runs(mask: np.ndarray, breaks: np.ndarray | None = None):
    """(row, first column, last column) of every run of True along axis 1; a
    True in ``breaks`` starts a new run even inside a run."""
    prev = np.zeros_like(mask)
    prev[:, 1:] = mask[:, :-1]
    nxt = np.zeros_like(mask)
    nxt[:, :-1] = mask[:, 1:]
    starts = mask & ~prev
    ends = mask & ~nxt
    if breaks is not None:
        starts |= mask & breaks
        brk_next = np.zeros_like(mask)
        brk_next[:, :-1] = breaks[:, 1:]
        ends |= mask & nxt & brk_next
    rs, cs = np.nonzero(starts)
    re_, ce = np.nonzero(ends)
    assert np.array_equal(rs, re_)
    return rs, cs, ce


def _nat_after(dates: np.ndarray, limit: np.datetime64) -> np.ndarray:
    out = dates.copy()
    out[out > limit] = np.datetime64("NaT")
    return out


@dataclass
class Spells:
    jobs: pd.DataFrame  # person, start, end, wage (monthly), hours (monthly)
    benefits: pd.DataFrame  # person, start, end (NaT while running)
    episodes: pd.DataFrame  # person, instrument, start, end
    prior_earnings: np.ndarray


def make_spells(w: World, rng: np.random.Generator, res: Residents) -> Spells:
    p = w.p
    n, K = w.n, p.follow_up
    t0 = w.persons.inflow_month
    path = w.observed_path()  # (n, K+1)
    data_end_day = month_first_day(np.array([p.data_end + 1]))[0] - np.timedelta64(1, "D")
    emp = p.syn["employment"]
    tails = emp["tail_months"]

    # ---- job spells of clients: 24 months before inflow and K months after
    employed = np.concatenate([w.pre_emp, path == E], axis=1)  # columns: k = -24..K
    switch = rng.random(employed.shape) < emp["job_switch_rate"]
    person, c_s, c_e = _runs(employed, switch)
    k_s, k_e = c_s - PRE_MONTHS, c_e - PRE_MONTHS
    m_s = t0[person] + k_s
    left = k_s == -PRE_MONTHS
    m_s[left] -= rng.geometric(1 / 12, left.sum()) - 1
    m_e = t0[person] + k_e
    right = k_e == K
    m_e[right] += rng.geometric(1 / tails["employed"], right.sum()) - 1
    start = random_day(rng, m_s)
    end = day_between(rng, start, m_e)
    end = np.minimum(end, data_end_day)
    wage_p = emp["wage"]
    log_w = (
        wage_p["log_mean"] + wage_p["education_low"] * (w.persons.education == "low")
        + wage_p["education_high"] * (w.persons.education == "high")
        + wage_p["eta"] * w.eta + rng.normal(0, wage_p["sd"], n)
    )
    hp = emp["hours"]
    part = rng.random(n) < hp["part_time_share"]
    hours_p = hp["full_time"] * np.where(part, hp["part_time_factor"], 1.0)
    wage = np.exp(log_w[person] + rng.normal(0, 0.1, len(person)))
    hours = hours_p[person] * rng.uniform(0.9, 1.1, len(person))
    # prior earnings: wage over the days of each spell inside the 24 months before inflow
    w_lo = month_first_day(t0 - PRE_MONTHS)[person]
    w_hi = month_first_day(t0)[person] - np.timedelta64(1, "D")
    overlap = (np.minimum(end, w_hi) - np.maximum(start, w_lo)).astype("int64") + 1
    prior = np.bincount(person, weights=wage * np.maximum(overlap, 0) / MONTH_DAYS, minlength=n)
    jobs = pd.DataFrame({"person": person, "start": start, "end": end, "wage": wage,
                         "hours": hours})

    # ---- job spells of other residents: at most one long job each
    n_res = len(res.female)
    has_job = rng.random(n_res) < 0.75
    rs = np.nonzero(has_job)[0]
    r_ms = rng.integers(p.data_start - 60, p.data_end + 1, len(rs))
    r_me = r_ms + rng.geometric(1 / 60, len(rs)) - 1
    keep = r_me >= p.data_start
    rs, r_ms, r_me = rs[keep], r_ms[keep], r_me[keep]
    r_start = random_day(rng, r_ms)
    r_end = np.minimum(day_between(rng, r_start, r_me), data_end_day)
    r_wage = np.exp(wage_p["log_mean"] + 0.3 + rng.normal(0, wage_p["sd"], len(rs)))
    r_hours = hp["full_time"] * np.where(rng.random(len(rs)) < 0.35, hp["part_time_factor"], 1.0)
    jobs = pd.concat(
        [jobs, pd.DataFrame({"person": n + rs, "start": r_start, "end": r_end, "wage": r_wage,
                             "hours": r_hours})],
        ignore_index=True,
    )

    # ---- benefit spells after inflow (re-entries included)
    person_b, b_s, b_e = _runs(path == B)
    bm_s = t0[person_b] + b_s
    bm_e = t0[person_b] + b_e
    right = b_e == K
    bm_e[right] += rng.geometric(1 / tails["benefit"], right.sum()) - 1
    b_start = np.where(b_s == 0, w.persons.inflow_date[person_b], random_day(rng, bm_s))
    b_end = day_between(rng, b_start, bm_e)
    b_end = _nat_after(b_end, data_end_day)
    benefits = pd.DataFrame({"person": person_b, "start": b_start, "end": b_end})

    # ---- instrument episodes of persons for whom an instrument started
    treated = np.nonzero(w.instrument > 0)[0]
    inst = np.array(w.worlds, dtype=object)[w.instrument[treated]]
    months = np.array([int(p.syn["effects"][i]["months"]) for i in inst], dtype=np.int64)
    e_m = t0[treated] + w.real_start[treated]  # the realised start month
    e_start = random_day(rng, e_m)
    e_end = _nat_after(day_between(rng, e_start, e_m + months - 1), data_end_day)
    episodes = pd.DataFrame({"person": treated, "instrument": inst, "start": e_start,
                             "end": e_end})
    return Spells(jobs=jobs, benefits=benefits, episodes=episodes, prior_earnings=prior)


def medication(
    w: World, rng: np.random.Generator, res: Residents, ident: Identity
) -> pd.DataFrame:
    p = w.p
    chronic = np.concatenate([w.persons.chronic, res.chronic])
    total = len(chronic)
    y0, y1 = 1970 + p.data_start // 12, 1970 + p.data_end // 12
    years = np.arange(y0, y1 + 1)
    codes_c = np.array(CHRONIC_ATC4, dtype=object)
    codes_a = np.array(ACUTE_ATC4, dtype=object)
    own = rng.integers(0, len(codes_c), (total, 2))
    two = rng.random(total) < 0.35
    parts = []
    for slot in range(2):
        has = chronic & (two | (slot == 0))
        use = has[:, None] & (rng.random((total, len(years))) < 0.9)
        pi, yi = np.nonzero(use)
        parts.append(
            pd.DataFrame({"person": pi, "JAAR": years[yi], "ATC4": codes_c[own[pi, slot]]})
        )
    acute = rng.random((total, len(years))) < 0.25
    pi, yi = np.nonzero(acute)
    parts.append(pd.DataFrame({"person": pi, "JAAR": years[yi],
                               "ATC4": codes_a[rng.integers(0, len(codes_a), len(pi))]}))
    med = pd.concat(parts, ignore_index=True).drop_duplicates(["person", "JAAR", "ATC4"])
    med.insert(0, "RINPERSOONS", ident.rins[med["person"].to_numpy()])
    med.insert(1, "RINPERSOON", ident.rin[med["person"].to_numpy()])
    med["JAAR"] = med["JAAR"].astype("int64")
    out = med.drop(columns="person").sort_values(["RINPERSOON", "JAAR", "ATC4"])
    return out.reset_index(drop=True)


def _dates(values: np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(values)).astype("datetime64[s]")


def research_tables(
    w: World, ident: Identity, res: Residents, spells: Spells, rng: np.random.Generator
) -> dict[str, pd.DataFrame]:
    n = w.n
    registered = ident.rins == "R"
    female = np.concatenate([w.persons.female, res.female])
    birth = np.concatenate([w.persons.birth_date, res.birth_date])
    generation = np.concatenate([w.persons.generation, res.generation])
    education = np.concatenate([w.persons.education, res.education])
    edu_missing = np.concatenate([w.persons.education_missing, res.education_missing])
    by, bm, _ = _ymd(birth)
    reg = np.nonzero(registered)[0]
    gba = pd.DataFrame({
        "RINPERSOONS": ident.rins[reg],
        "RINPERSOON": ident.rin[reg],
        "GBAGESLACHT": np.where(female[reg], "2", "1").astype(object),
        "GBAGEBOORTEJAAR": by[reg].astype(str).astype(object),
        "GBAGEBOORTEMAAND": np.char.zfill(bm[reg].astype(str), 2).astype(object),
        "GBAGEBOORTELAND": np.where(generation[reg] == 1, ident.country[reg], NETHERLANDS),
        "GBAHERKOMSTGROEPERING": ident.country[reg],
        "GBAGENERATIE": generation[reg].astype(str).astype(object),
    })
    has_edu = np.nonzero(registered & ~edu_missing)[0]
    edu_codes = np.empty(len(has_edu), dtype=object)
    for level, codes in EDUCATION_CODES.items():
        mask = education[has_edu] == level
        edu_codes[mask] = np.array(codes, dtype=object)[rng.integers(0, len(codes), mask.sum())]
    hoogst = pd.DataFrame({
        "RINPERSOONS": ident.rins[has_edu],
        "RINPERSOON": ident.rin[has_edu],
        "OPLNIVSOI2016AGG4HBMETNIRWO": edu_codes,
    })
    jobs = spells.jobs
    pj = jobs["person"].to_numpy()
    n_emp = max(50, (n + len(res.female)) // 8)
    employers = np.unique(rng.integers(10**8, 10**9, n_emp))
    employers = employers[~bsnlib.passes_as_int(employers)]  # no BSN look-alikes
    days = (jobs["end"] - jobs["start"]).dt.days.to_numpy() + 1
    polis = pd.DataFrame({
        "RINPERSOONS": ident.rins[pj],
        "RINPERSOON": ident.rin[pj],
        "IKVID": _strings(rng.permutation(len(jobs)) + 1),
        "SBEID": _strings(np.char.zfill(employers[rng.integers(0, len(employers), len(jobs))]
                                        .astype(str), 9)),
        "SDATUMAANVANGIKO": _dates(jobs["start"].to_numpy()),
        "SDATUMEINDEIKO": _dates(jobs["end"].to_numpy()),
        "SBASISLOON": np.round(jobs["wage"].to_numpy() * days / MONTH_DAYS, 2),
        "SBASISUREN": np.round(jobs["hours"].to_numpy() * days / MONTH_DAYS, 0),
    })
    ben = spells.benefits
    pb = ben["person"].to_numpy()
    bijstand = pd.DataFrame({
        "RINPERSOONS": ident.rins[pb],
        "RINPERSOON": ident.rin[pb],
        "BIJSTANDAanvangUitkeringPersoon1A": _dates(ben["start"].to_numpy()),
        "BIJSTANDEindeUitkeringPersoon1A": _dates(ben["end"].to_numpy()),
        "BIJSTANDSTATCODE": "PW",
    })
    med = medication(w, rng, res, ident)
    out = {
        "GBAPERSOONTAB": gba.sort_values("RINPERSOON"),
        "HOOGSTEOPLTAB": hoogst.sort_values("RINPERSOON"),
        "SPOLISBUS": polis.sort_values(["RINPERSOON", "SDATUMAANVANGIKO", "IKVID"]),
        "BIJSTANDUITKERINGTAB": bijstand.sort_values(
            ["RINPERSOON", "BIJSTANDAanvangUitkeringPersoon1A"]
        ),
        "MEDICIJNTAB": med,
    }
    return {k: v.reset_index(drop=True) for k, v in out.items()}


def ttp_tables(w: World, ident: Identity, res: Residents) -> dict[str, pd.DataFrame]:
    female = np.concatenate([w.persons.female, res.female])
    birth = np.concatenate([w.persons.birth_date, res.birth_date])
    key = pd.DataFrame({"BSN": ident.bsn, "RINPERSOONS": ident.rins, "RINPERSOON": ident.rin})
    reg = np.nonzero(ident.rins == "R")[0]
    register = pd.DataFrame({
        "RINPERSOONS": ident.rins[reg],
        "RINPERSOON": ident.rin[reg],
        "GESLACHT": np.where(female[reg], "V", "M").astype(object),
        "GEBOORTEDATUM": _dates(birth[reg]),
        "POSTCODE": _strings(np.char.add(ident.pc4[reg].astype(str),
                                         ident.letters[reg].astype(str))),
        "HUISNUMMER": ident.house_number[reg].astype("int64"),
    })
    return {
        "key_table": key.sort_values(["RINPERSOONS", "RINPERSOON"]).reset_index(drop=True),
        "person_register": register.sort_values("RINPERSOON").reset_index(drop=True),
    }


@dataclass
class MunicipalIds:
    client_id: np.ndarray
    cm_id: np.ndarray


def municipal_ids(w: World, rng: np.random.Generator) -> MunicipalIds:
    p = w.p
    fmt_client = p.exports.get("client_id_format", "{:07d}")
    fmt_cm = p.exports.get("case_manager_id_format", "CM{:04d}")
    nums = rng.choice(9_000_000, size=w.n, replace=False) + 1_000_000
    cms = rng.choice(9000, size=len(w.cm_team), replace=False) + 1000
    return MunicipalIds(
        client_id=np.array([fmt_client.format(int(x)) for x in nums], dtype=object),
        cm_id=np.array([fmt_cm.format(int(x)) for x in cms], dtype=object),
    )


def municipal_tables(
    w: World, ident: Identity, spells: Spells, ids: MunicipalIds, rng: np.random.Generator
) -> dict[str, pd.DataFrame]:
    """Canonical municipal tables with the city's codes and defects applied;
    the writer renames columns and formats values."""
    p = w.p
    n = w.n
    d = p.syn["defects"]
    teams = np.array(p.syn["teams"], dtype=object)
    first, prefix, last = names(w, rng)
    # BSN defects: a typo (fails the elfproef) or missing (registered persons only)
    u = rng.random(n)
    typo = u < d["bsn_typo_rate"]
    missing = (
        (u >= d["bsn_typo_rate"]) & (u < d["bsn_typo_rate"] + d["bsn_missing_rate"])
        & (ident.rins[:n] == "R")
    )
    bsn = ident.bsn[:n].copy()
    if typo.any():
        bsn[typo] = bsnlib.typo(rng, bsn[typo].astype(str)).astype(object)
    bsn[missing] = None
    space = " " if p.exports.get("postcode_space", True) else ""
    postcode = np.char.add(np.char.add(ident.pc4[:n].astype(str), space),
                           ident.letters[:n].astype(str))
    own_cm = w.cm_cells[np.arange(n), w.slot]

    def code(field: str, values: np.ndarray) -> np.ndarray:
        mapping = p.codes(field)
        return pd.Series(values).map(mapping).to_numpy(dtype=object)

    distance = np.array(["short", "medium", "large"], dtype=object)[w.distance]
    clients = pd.DataFrame({
        "client_id": ids.client_id,
        "bsn": bsn,
        "first_name": first,
        "surname_prefix": prefix,
        "last_name": last,
        "sex": code("sex", np.where(w.persons.female, "female", "male")),
        "birth_date": _dates(w.persons.birth_date),
        "street": ident.street[:n],
        "house_number": ident.house_number[:n].astype("int64"),
        "postcode": _strings(postcode),
        "place": p.cfg["display_name"],
        "district": teams[w.persons.team],
        "household_type": code("household_type", w.persons.household),
        "language_level": code(
            "language_level", np.where(w.persons.language_low, "below_b1", "b1_or_higher")
        ),
        "labour_market_distance": code("labour_market_distance", distance),
        "team": teams[w.persons.team],
        "case_manager": ids.cm_id[own_cm],
    })
    ben = spells.benefits
    benefit = pd.DataFrame({
        "client_id": ids.client_id[ben["person"].to_numpy()],
        "spell_id": "",
        "benefit_type": p.codes("benefit_type")["participatiewet"],
        "start_date": _dates(ben["start"].to_numpy()),
        "end_date": _dates(ben["end"].to_numpy()),
    })
    benefit = benefit.sort_values(["client_id", "start_date"]).reset_index(drop=True)
    benefit["spell_id"] = (benefit.groupby("client_id").cumcount() + 1).astype(str)
    inv = {}
    for city_code, inst in (p.exports.get("instrument_codes") or {}).items():
        inv.setdefault(inst, city_code)
    ep = spells.episodes
    ends = ep["end"].to_numpy().copy()
    gone = rng.random(len(ep)) < d["missing_instrument_end_rate"]
    ends[gone] = np.datetime64("NaT")
    episodes = pd.DataFrame({
        "client_id": ids.client_id[ep["person"].to_numpy()],
        "episode_id": "",
        "instrument_code": ep["instrument"].map(inv).to_numpy(dtype=object),
        "start_date": _dates(ep["start"].to_numpy()),
        "end_date": _dates(ends),
    })
    episodes = episodes.sort_values(["client_id", "start_date"]).reset_index(drop=True)
    episodes["episode_id"] = _strings(rng.permutation(len(episodes)) + 100001)
    q_first = month_first_day(w.cm_first_q * 3)
    q_last = month_first_day(w.cm_last_q * 3 + 3) - np.timedelta64(1, "D")
    caseload = pd.DataFrame({
        "case_manager": ids.cm_id,
        "team": teams[w.cm_team],
        "first_active": _dates(q_first),
        "last_active": _dates(q_last),
    }).sort_values("case_manager").reset_index(drop=True)

    # duplicates from a system migration: clients on benefit in that month
    if d["duplicate_rate"] and d.get("duplicate_month"):
        from ..core.months import index as month_index

        mm = month_index(str(d["duplicate_month"]))
        day0 = month_first_day(np.array([mm]))[0]
        day1 = month_first_day(np.array([mm + 1]))[0] - np.timedelta64(1, "D")
        on = (ben["start"] <= day1) & (ben["end"].isna() | (ben["end"] >= day0))
        candidates = np.unique(ben.loc[on, "person"].to_numpy())
        dup = candidates[rng.random(len(candidates)) < d["duplicate_rate"]]
        dup_ids = set(ids.client_id[dup])
        extra = clients[clients["client_id"].isin(dup_ids)].copy()
        fold = rng.random(len(extra)) < d["duplicate_ascii_fold_share"]
        for col in ("first_name", "last_name", "street"):
            extra.loc[fold, col] = extra.loc[fold, col].map(ascii_fold)
        clients = pd.concat([clients, extra])
        benefit = pd.concat([benefit, benefit[benefit["client_id"].isin(dup_ids)]])
        episodes = pd.concat([episodes, episodes[episodes["client_id"].isin(dup_ids)]])
    clients = clients.sort_values("client_id", kind="stable").reset_index(drop=True)
    benefit = benefit.sort_values(["client_id", "start_date"], kind="stable")
    episodes = episodes.sort_values(["client_id", "start_date"], kind="stable")
    return {
        "clients": clients,
        "benefit_spells": benefit.reset_index(drop=True),
        "instruments": episodes.reset_index(drop=True),
        "caseload": caseload,
    }


def _expected(w: World, horizons: list[int]) -> np.ndarray:
    """(n, horizons): each starter's expected effect against the start
    blocked (:mod:`.expected`); NaN for the others."""
    from .expected import expected_effects

    assert w.model is not None and w.assignment is not None
    own = w.cm_cells[np.arange(w.n), w.slot]
    return expected_effects(w.model, w.assignment, w.assignment.q, w.theta[own],
                            w.instrument, w.real_start, list(horizons))


def truth_tables(
    w: World, ident: Identity, ids: MunicipalIds, spells: Spells
) -> dict[str, pd.DataFrame]:
    from .schema import COVARIATES

    p = w.p
    n = w.n
    worlds = np.array(w.worlds, dtype=object)
    teams = np.array(p.syn["teams"], dtype=object)
    own_cm = w.cm_cells[np.arange(n), w.slot]
    q = w.persons.quarter
    cols: dict[str, object] = {
        "client_id": ids.client_id,
        "RINPERSOONS": ident.rins[:n],
        "RINPERSOON": ident.rin[:n],
        "team": teams[w.persons.team],
        "case_manager": ids.cm_id[own_cm],
        "quarter": _strings(np.char.add(np.char.add((1970 + q // 4).astype(str), "Q"),
                                        (q % 4 + 1).astype(str))),
        "inflow_date": _dates(w.persons.inflow_date),
        "inflow_month": np.array([month_text(int(m)) for m in w.persons.inflow_month],
                                 dtype=object),
        "eta": w.eta,
        "age": w.persons.age,
        "migration": w.persons.migration,
        "education": w.persons.education,
        "labour_market_distance": np.array(["short", "medium", "large"], dtype=object)[w.distance],
    }
    for i, c in enumerate(COVARIATES):
        cols[c] = w.X[:, i]
    cols["prior_earnings"] = np.round(spells.prior_earnings, 2)
    cols["start_month_elapsed"] = w.start
    cols["start_month"] = np.array(
        [month_text(int(m)) for m in w.persons.inflow_month + w.start], dtype=object
    )
    cols["eligible"] = w.eligible
    cols["choice"] = worlds[w.choice]
    cols["instrument"] = worlds[w.instrument]
    cols["notnow_instrument"] = worlds[w.notnow_instrument]
    cols["notnow_start_month_elapsed"] = w.notnow_start
    cols["rollout_exposed"] = w.rollout_exposed if p.rollout else np.zeros(n, dtype=bool)
    cols["instrument_rollout_on"] = worlds[w.instrument_rollout["on"]]
    cols["instrument_rollout_off"] = worlds[w.instrument_rollout["off"]]
    hist = w.hist
    assert hist is not None
    rows = np.arange(n)
    for outcome, state in (("employed", E), ("on_benefit", B)):
        for wi, name in enumerate(w.worlds):
            for h in p.horizons:
                cols[f"{outcome}_{name}_{h}"] = (hist[wi, :, h] == state).astype("int8")
        for h in p.horizons:
            cols[f"{outcome}_obs_{h}"] = (hist[w.instrument, rows, h] == state).astype("int8")
        for h in p.horizons:
            cols[f"{outcome}_notnow_{h}"] = (w.notnow_path[:, h] == state).astype("int8")
        if outcome == "employed":
            for h, values in zip(p.horizons, _expected(w, p.horizons).T, strict=True):
                cols[f"expected_effect_notnow_{h}"] = values
        # without a roll-out these equal the realised world
        for tag in ("on", "off"):
            path = w.rollout_paths[tag]
            for h in p.horizons:
                cols[f"{outcome}_rollout_{tag}_{h}"] = (path[:, h] == state).astype("int8")
    po = pd.DataFrame(cols).sort_values("client_id").reset_index(drop=True)
    slots = w.cm_cells.shape[1]
    pa_cols: dict[str, object] = {
        "client_id": np.repeat(ids.client_id, slots),
        "case_manager": ids.cm_id[w.cm_cells.ravel()],
        "own": (np.arange(slots)[None, :] == w.slot[:, None]).ravel(),
        "choice": worlds[w.choice_cells.ravel()],
        "instrument": worlds[w.inst_cells.ravel()],
        "start_month_elapsed": w.start_cells.ravel(),
    }
    for outcome, state in (("employed", E), ("on_benefit", B)):
        for h in p.horizons:
            pa_cols[f"{outcome}_{h}"] = (w.cell_paths[:, :, h] == state).ravel().astype("int8")
    pa = pd.DataFrame(pa_cols).sort_values(["client_id", "case_manager"]).reset_index(drop=True)
    return {"potential_outcomes": po, "potential_assignment": pa}

