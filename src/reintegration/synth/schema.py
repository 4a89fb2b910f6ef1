"""Schema of the synthetic files: every table, its columns, their meaning, and
the real CBS or municipal name each imitates.

The writers check every table they write against these definitions, and the
book's data dictionary is generated from them (:func:`data_dictionary_markdown`),
so the documentation cannot drift from the files.

Municipal tables are described by their *canonical* column names; each city
renames them (``exports.files.<table>.columns`` in its YAML), recodes their
values (``exports.codes``) and drops columns it does not deliver (a column
mapped to ``null``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: covariates that effect, selection and heterogeneity parameters may name
COVARIATES: dict[str, str] = {
    "female": "1 for women",
    "age_under_27": "1 if younger than 27 at inflow",
    "age_50_plus": "1 if 50 or older at inflow",
    "migrant_first_generation": "1 if born abroad (first generation)",
    "migrant_second_generation": "1 if born in the Netherlands to a parent born abroad",
    "education_low": "1 if the highest education is at most basic vocational (true level)",
    "education_high": "1 if the highest education is higher professional or university",
    "education_missing": "1 if HOOGSTEOPLTAB has no record for the person",
    "single_parent": "1 if the household is a single parent with children",
    "couple_children": "1 if the household is a couple with children",
    "health_chronic": "1 if the person has a chronic condition (shows as medication use)",
    "language_low": "1 if Dutch proficiency is below B1 (municipal assessment)",
    "distance_short": "1 if the municipality rates the distance to the labour market short",
    "distance_large": "1 if the municipality rates the distance to the labour market large",
    "prior_employment": "share of the 24 months before inflow in paid work (0 to 1)",
}

#: canonical code values of municipal coded columns (cities map them to their own codes)
CANONICAL_CODES: dict[str, tuple[str, ...]] = {
    "sex": ("male", "female"),
    "household_type": ("single", "single_parent", "couple", "couple_children"),
    "language_level": ("below_b1", "b1_or_higher"),
    "labour_market_distance": ("short", "medium", "large"),
    "benefit_type": ("participatiewet",),
}


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # string, code, int, float, date, bool
    meaning: str
    imitates: str = ""


@dataclass(frozen=True)
class Table:
    domain: str
    table: str
    file: str
    fmt: str
    meaning: str
    imitates: str
    columns: tuple[Column, ...] = field(default_factory=tuple)
    notes: str = ""

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


C = Column
RIN = (
    C("RINPERSOONS", "string", "key source: R = matched to the person register, S = not",
      "RINPERSOONS"),
    C("RINPERSOON", "string", "pseudonymous person number, 9 characters with leading zeros",
      "RINPERSOON"),
)

MUNICIPAL: tuple[Table, ...] = (
    Table(
        "municipal", "clients", "exports.files.clients.file", "city format",
        "One row per client of the inflow cohort, as the municipality's client system "
        "exports it (with any duplicates the city's system produces).",
        "the municipality's client administration",
        (
            C("client_id", "string", "municipal client number", "klantnummer"),
            C("bsn", "string", "citizen service number; may be missing, mistyped, or numeric "
              "without its leading zero", "BSN"),
            C("first_name", "string", "first name (may hold non-ASCII letters)", "voornaam"),
            C("surname_prefix", "string", "surname prefix such as 'van der'", "tussenvoegsel"),
            C("last_name", "string", "surname (may hold non-ASCII letters)", "achternaam"),
            C("sex", "code", "sex (canonical: male, female)", "geslacht"),
            C("birth_date", "date", "date of birth", "geboortedatum"),
            C("street", "string", "street name", "straatnaam"),
            C("house_number", "int", "house number", "huisnummer"),
            C("postcode", "string", "six-character postcode (PC6), e.g. 3011 AB", "postcode"),
            C("place", "string", "place of residence", "woonplaats"),
            C("district", "string", "district of the address", "wijk / stadsdeel"),
            C("household_type", "code", "household type (single, single_parent, couple, "
              "couple_children)", "leefvorm"),
            C("language_level", "code", "Dutch proficiency (below_b1, b1_or_higher)",
              "taaleis / taalniveau"),
            C("labour_market_distance", "code", "the municipality's rating of the distance to "
              "the labour market (short, medium, large)", "afstand tot de arbeidsmarkt"),
            C("team", "string", "the district team that serves the client", "team"),
            C("case_manager", "string", "the client's case manager from inflow; absent where the "
              "city does not deliver it", "klantmanager / consulent"),
        ),
    ),
    Table(
        "municipal", "benefit_spells", "exports.files.benefit_spells.file", "city format",
        "One row per bijstand spell of a client after the cohort inflow (re-entries included).",
        "benefit administration",
        (
            C("client_id", "string", "municipal client number", "klantnummer"),
            C("spell_id", "string", "spell number within the client", "uitkeringsnummer"),
            C("benefit_type", "code", "benefit scheme (canonical: participatiewet)", "regeling"),
            C("start_date", "date", "first day of the spell", "ingangsdatum"),
            C("end_date", "date", "last day; missing while the spell runs at the export date",
              "einddatum"),
        ),
    ),
    Table(
        "municipal", "instruments", "exports.files.instruments.file", "city format",
        "One row per re-integration instrument episode, with the city's own instrument code "
        "(mapped onto the shared taxonomy in the city's YAML).",
        "re-integration / trajectory administration",
        (
            C("client_id", "string", "municipal client number", "klantnummer"),
            C("episode_id", "string", "episode number", "trajectnummer"),
            C("instrument_code", "code", "the city's instrument code", "voorzieningcode"),
            C("start_date", "date", "start of the episode", "begindatum"),
            C("end_date", "date", "planned or actual end; missing for part of the episodes in "
              "some cities", "einddatum"),
        ),
    ),
    Table(
        "municipal", "caseload", "exports.files.caseload.file", "city format",
        "One row per case manager: the team and the period on a post. Only cities that deliver "
        "case-manager identifiers have this file.",
        "staff administration",
        (
            C("case_manager", "string", "case-manager identifier", "klantmanager"),
            C("team", "string", "team", "team"),
            C("first_active", "date", "first day on the post", ""),
            C("last_active", "date", "last day on the post", ""),
        ),
    ),
)

TTP: tuple[Table, ...] = (
    Table(
        "ttp", "key_table", "key_table.parquet", "parquet",
        "The linking unit's key table: every BSN it knows with its pseudonymous key. Register "
        "persons get RINPERSOONS R; BSNs outside the person register (for example persons "
        "registered as non-residents) get S.",
        "CBS linking unit (BSN -> RIN conversion)",
        (C("BSN", "string", "citizen service number, nine digits", "BSN"), *RIN),
    ),
    Table(
        "ttp", "person_register", "person_register.parquet", "parquet",
        "Fallback linkage data: sex, birth date and address of every register person, for "
        "records whose BSN is missing or wrong.",
        "BRP/GBA person and address register held by the linking unit",
        (
            *RIN,
            C("GESLACHT", "code", "sex: M or V", "GBAGESLACHT"),
            C("GEBOORTEDATUM", "date", "date of birth", "GBAGEBOORTEDATUM"),
            C("POSTCODE", "string", "postcode PC6 without space, e.g. 3011AB", "postcode"),
            C("HUISNUMMER", "int", "house number", "huisnummer"),
        ),
    ),
)

RESEARCH: tuple[Table, ...] = (
    Table(
        "research", "GBAPERSOONTAB", "GBAPERSOONTAB.sav", "sav",
        "One row per register person in the city (clients and other residents).",
        "GBAPERSOONTAB",
        (
            *RIN,
            C("GBAGESLACHT", "code", "sex: 1 man, 2 vrouw", "GBAGESLACHT"),
            C("GBAGEBOORTEJAAR", "string", "year of birth (4 characters)", "GBAGEBOORTEJAAR"),
            C("GBAGEBOORTEMAAND", "string", "month of birth (2 characters)", "GBAGEBOORTEMAAND"),
            C("GBAGEBOORTELAND", "code", "country of birth (4-digit country code)",
              "GBAGEBOORTELAND"),
            C("GBAHERKOMSTGROEPERING", "code", "country of origin (4-digit country code)",
              "GBAHERKOMSTGROEPERING"),
            C("GBAGENERATIE", "code", "0 no migration background, 1 first, 2 second generation",
              "GBAGENERATIE"),
        ),
        "Country codes are illustrative four-digit codes after CBS's country classification "
        "(6030 Nederland, 5022 Marokko, 6043 Turkije, 5007 Suriname, ...); they were not "
        "checked against the official list.",
    ),
    Table(
        "research", "HOOGSTEOPLTAB", "HOOGSTEOPLTAB.sav", "sav",
        "Highest attained education, one row per person for whom it is known; missing for a "
        "large part of older first-generation migrants (education abroad is rarely registered).",
        "HOOGSTEOPLTAB",
        (
            *RIN,
            C("OPLNIVSOI2016AGG4HBMETNIRWO", "code", "education level: 1xxx low, 2xxx middle, "
              "3xxx high (illustrative codes)", "OPLNIVSOI2016AGG4HBMETNIRWO"),
        ),
    ),
    Table(
        "research", "SPOLISBUS", "SPOLISBUS.sav", "sav",
        "Job spells from the payroll register: one row per job spell (a job change starts a "
        "new spell). A person is employed in a calendar month when a spell overlaps it.",
        "SPOLISBUS (one row per income relationship spell; the real file has one row per "
        "declaration period)",
        (
            *RIN,
            C("IKVID", "string", "income relationship (job) number", "IKVID"),
            C("SBEID", "string", "employer number", "SBEID"),
            C("SDATUMAANVANGIKO", "date", "first day of the spell", "SDATUMAANVANGIKO"),
            C("SDATUMEINDEIKO", "date", "last day of the spell (capped at the end of the data)",
              "SDATUMEINDEIKO"),
            C("SBASISLOON", "float", "base wage over the spell, euro", "SBASISLOON"),
            C("SBASISUREN", "float", "paid hours over the spell", "SBASISUREN"),
        ),
    ),
    Table(
        "research", "BIJSTANDUITKERINGTAB", "BIJSTANDUITKERINGTAB.sav", "sav",
        "Bijstand benefit spells, one row per spell. A person is on benefit in a calendar month "
        "when a spell overlaps it.",
        "BIJSTANDUITKERINGTAB (names partly unverified)",
        (
            *RIN,
            C("BIJSTANDAanvangUitkeringPersoon1A", "date", "first day of the spell",
              "BIJSTANDAanvangUitkeringPersoon1A"),
            C("BIJSTANDEindeUitkeringPersoon1A", "date", "last day; missing while running at "
              "the end of the data", "BIJSTANDEindeUitkeringPersoon1A"),
            C("BIJSTANDSTATCODE", "code", "scheme: PW = Participatiewet (general bijstand)",
              "statistic code (unverified name)"),
        ),
    ),
    Table(
        "research", "MEDICIJNTAB", "MEDICIJNTAB.sav", "sav",
        "Reimbursed medication: one row per person, year and ATC4 group dispensed. Chronic "
        "groups: A10B, C07A, C09A, C10A, N05A, N06A, R03A; the others are acute.",
        "MEDICIJNTAB",
        (
            *RIN,
            C("JAAR", "int", "calendar year", "year of the file"),
            C("ATC4", "code", "ATC code at the fourth level", "ATC4"),
        ),
    ),
)

TRUTH: tuple[Table, ...] = (
    Table(
        "truth", "potential_outcomes", "potential_outcomes.parquet", "parquet",
        "One row per client: covariates including the unobserved employability factor, the "
        "assignment process, and employment and benefit status at each horizon under no "
        "instrument and under each instrument. Only validation may read it.",
        "(synthetic only)",
        (
            C("client_id", "string", "municipal client number"),
            *RIN,
            C("team", "string", "team (district)"),
            C("case_manager", "string", "case manager allocated at inflow"),
            C("quarter", "string", "inflow quarter, e.g. 2017Q3 (allocation cell with team)"),
            C("inflow_date", "date", "first day of the cohort benefit spell"),
            C("inflow_month", "string", "inflow month YYYY-MM"),
            C("eta", "float", "unobserved employability factor, standard normal"),
            C("age", "int", "age in years at inflow"),
            C("migration", "string", "migration category (nl, ma, tr, sr, an, other_nonwestern, "
              "western)"),
            C("education", "string", "true education level (low, middle, high)"),
            C("labour_market_distance", "string", "municipal rating (short, medium, large)"),
            C("<covariate>", "float", "each covariate the parameters may name (see the list of "
              "covariates)"),
            C("prior_earnings", "float", "base wage earned in the 24 months before inflow"),
            C("start_month_elapsed", "int", "S*: elapsed month of the start in the worlds "
              "employed_<instrument>_<h>: the realised start month of a starter; otherwise "
              "the first start opportunity on benefit, or the first opportunity (not "
              "eligible), or follow-up + 1 when there is no opportunity at all"),
            C("start_month", "string", "calendar month of S*, YYYY-MM"),
            C("eligible", "bool", "had a start opportunity while on benefit (only then can an "
              "instrument start)"),
            C("choice", "string", "the first instrument the own case manager would start at an "
              "opportunity were the client on benefit throughout (none if never)"),
            C("instrument", "string", "the instrument actually started (none if none)"),
            C("notnow_instrument", "string", "a starter's instrument when the start at the "
              "realised month is blocked and the process continues (none if no later start); "
              "the realised instrument for non-starters"),
            C("notnow_start_month_elapsed", "int", "elapsed month of that later start (0 if "
              "none)"),
            C("rollout_exposed", "bool", "the team had rolled out the instrument by the "
              "client's first start opportunity on benefit (by S* when there is none)"),
            C("instrument_rollout_on", "string", "instrument started were the roll-out in "
              "place at every opportunity"),
            C("instrument_rollout_off", "string", "instrument started were it in place at none"),
            C("employed_<world>_<h>", "int", "1 if employed h months after inflow in world "
              "<world>: none (no instrument ever) or an instrument key (that instrument "
              "started at S* if on benefit just before it)"),
            C("on_benefit_<world>_<h>", "int", "1 if on bijstand h months after inflow in "
              "world <world>"),
            C("employed_obs_<h>", "int", "employment in the realised world"),
            C("on_benefit_obs_<h>", "int", "benefit status in the realised world"),
            C("employed_notnow_<h>", "int", "employment in the not-now world: a starter's "
              "start at the realised month blocked, later opportunities and draws unchanged "
              "(any instrument may start later); the realised world for non-starters"),
            C("on_benefit_notnow_<h>", "int", "benefit status likewise"),
            C("expected_effect_notnow_<h>", "float", "a starter's expected effect on "
              "employment h months after inflow of their start against that start blocked, "
              "given everything the generator knows about them (exact, from the monthly "
              "chain: synth/expected.py); empty for non-starters"),
            C("employed_rollout_<r>_<h>", "int", "employment if the roll-out were in place "
              "(r = on) or not (r = off); equal to the realised world where there is no roll-out"),
            C("on_benefit_rollout_<r>_<h>", "int", "benefit status likewise"),
        ),
    ),
    Table(
        "truth", "potential_assignment", "potential_assignment.parquet", "parquet",
        "One row per client and case manager of the client's team and inflow quarter: the "
        "instrument and start month under that case manager and the outcomes that follow. "
        "These give the estimands of the case-manager instrumental-variable design.",
        "(synthetic only)",
        (
            C("client_id", "string", "municipal client number"),
            C("case_manager", "string", "a case manager of the client's allocation cell"),
            C("own", "bool", "the case manager the client actually had"),
            C("choice", "string", "that case manager's choice were the client on benefit "
              "throughout (or none)"),
            C("instrument", "string", "instrument started under that case manager"),
            C("start_month_elapsed", "int", "its start month in elapsed months (0 if none)"),
            C("employed_<h>", "int", "1 if employed h months after inflow under that case "
              "manager (the realised world for the own case manager)"),
            C("on_benefit_<h>", "int", "benefit status likewise"),
        ),
    ),
    Table(
        "truth", "effects", "effects.json", "json",
        "True average effects per instrument, outcome and horizon (ATE among eligible persons, "
        "ATE over the cohort, ATT versus never and versus not now), the naive "
        "treated-versus-untreated difference and its bias, "
        "the roll-out effect, the case-manager IV estimands, and the planted parameters.",
        "(synthetic only)",
    ),
)

TABLES: tuple[Table, ...] = MUNICIPAL + TTP + RESEARCH + TRUTH

DOMAIN_TEXT = {
    "municipal": "The municipality's own exports: direct identifiers (BSN, name, address, birth "
    "date), in the format, encoding, column names and codes the city's YAML declares.",
    "ttp": "What the linking unit (the trusted third party) holds: the key table and the "
    "register data for fallback linkage.",
    "research": "CBS-like microdata in SPSS format as a researcher sees them in Remote Access: "
    "pseudonymous keys, no direct identifiers.",
    "truth": "The planted truth. Nobody holds it in reality; here only validation reads it.",
}


def table(name: str, domain: str | None = None) -> Table:
    for t in TABLES:
        if t.table == name and (domain is None or t.domain == domain):
            return t
    raise KeyError(f"no table {name!r} in the synthetic schema")


def data_dictionary_markdown() -> str:
    """The data dictionary as MyST markdown, tables grouped by custody domain."""
    out = [
        "# Data dictionary",
        "",
        "Generated from `reintegration.synth.schema`, which the generator also uses to check "
        "every file it writes. Municipal tables are listed by their canonical column names; "
        "each city's YAML maps them to its own export names and codes.",
        "",
    ]
    for domain in ("municipal", "ttp", "research", "truth"):
        out += [f"## Domain `{domain}`", "", DOMAIN_TEXT[domain], ""]
        for t in TABLES:
            if t.domain != domain:
                continue
            file = f"`{t.file}`" if "." in t.file and " " not in t.file else t.file
            if t.file.startswith("exports."):
                file = f"per city, `{t.file}`"
            out += [
                f"### {t.table}",
                "",
                t.meaning,
                "",
                f"- file: {file} ({t.fmt})",
                f"- imitates: {t.imitates}",
            ]
            if t.notes:
                out.append(f"- note: {t.notes}")
            out.append("")
            if t.columns:
                out += ["| column | type | meaning | imitates |", "|---|---|---|---|"]
                for c in t.columns:
                    out.append(
                        f"| `{c.name}` | {c.dtype} | {_cell(c.meaning)} | {_cell(c.imitates)} |"
                    )
                out.append("")
    out += ["## Covariates", "",
            "Names that effect, selection and heterogeneity parameters may use:", "",
            "| covariate | meaning |", "|---|---|"]
    out += [f"| `{k}` | {_cell(v)} |" for k, v in COVARIATES.items()]
    out.append("")
    return "\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
