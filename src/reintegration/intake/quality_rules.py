"""The rules of the delivery check, as data: the tables and quality
dimensions, the canonical codes, the required and optional columns, every
reason a row is quarantined or flagged (:data:`REASONS`) and the duplicate
rules (:data:`DUPLICATE_RULES`).

:mod:`reintegration.intake.quality` applies them, :mod:`reintegration.intake.quality_schema`
turns them into pandera checks and :mod:`reintegration.intake.quality_report` counts
and documents them.
"""

from __future__ import annotations

from typing import NamedTuple

TABLES = ("clients", "benefit_spells", "instruments", "caseload")
DIMENSIONS = ("completeness", "validity", "uniqueness", "consistency", "timeliness")
#: canonical code values (the same lists as the synthetic schema)
CANONICAL_CODES: dict[str, tuple[str, ...]] = {
    "sex": ("male", "female"),
    "household_type": ("single", "single_parent", "couple", "couple_children"),
    "language_level": ("below_b1", "b1_or_higher"),
    "labour_market_distance": ("short", "medium", "large"),
    "benefit_type": ("participatiewet",),
}
#: columns that must hold a value, per table (a row without one is quarantined)
REQUIRED: dict[str, tuple[str, ...]] = {
    "clients": ("client_id",),
    "benefit_spells": ("client_id", "benefit_type", "start_date"),
    "instruments": ("client_id", "instrument_code", "start_date"),
    "caseload": ("case_manager", "team", "first_active"),
}
#: columns that may be empty by nature (not counted against completeness)
OPTIONAL: dict[str, tuple[str, ...]] = {
    "clients": ("surname_prefix",),
    "benefit_spells": ("end_date",),  # a spell running at the export date has no end
    "instruments": (),
    "caseload": ("last_active",),
}
#: the date a row is placed in time by, per table (clients: their first benefit spell)
REFERENCE_DATE_COLUMN = {
    "benefit_spells": "start_date",
    "instruments": "start_date",
    "caseload": "first_active",
}
#: no delivered date lies before this day (``exports.earliest_date``)
EARLIEST_DATE = "1900-01-01"
#: start and end dates of spells, episodes and posts lie at most this many years
#: before the first inflow month (``exports.earliest_event_date`` overrides it)
EVENT_HISTORY_YEARS = 40
#: youngest and oldest plausible age of a client at the export date
AGE_RANGE = (15, 100)


class Reason(NamedTuple):
    action: str  # "quarantine": the row is removed; "flag": the row is kept
    dimension: str | None  # the quality dimension it counts against (None: a repair)
    text: str


#: every reason a row can be quarantined or flagged for
REASONS: dict[str, Reason] = {
    # quarantine: the row cannot be used
    "missing_value": Reason("quarantine", "completeness", "a required value is empty"),
    "unparsable_date": Reason(
        "quarantine", "validity", "a date that does not match the declared date format"
    ),
    "date_out_of_range": Reason(
        "quarantine",
        "validity",
        "a date in the declared format that no software here can represent (before 1678 or "
        "after 2261) and that is not a configured 'no end date' sentinel",
    ),
    "date_in_future": Reason("quarantine", "validity", "a start date after the export date"),
    "implausible_date": Reason(
        "quarantine",
        "validity",
        "a date before the earliest plausible date of the delivery (exports.earliest_event_date)",
    ),
    "end_before_start": Reason("quarantine", "consistency", "the end date is before the start"),
    "unknown_instrument_code": Reason(
        "quarantine", "validity", "an instrument code the city's configuration does not map"
    ),
    "unknown_benefit_type": Reason(
        "quarantine", "validity", "a benefit scheme code the configuration does not map"
    ),
    "duplicate": Reason("quarantine", "uniqueness", "a second copy of a record that is kept once"),
    "conflicting_duplicate": Reason(
        "quarantine",
        "uniqueness",
        "copies of one key that disagree on what identifies them: every copy is removed",
    ),
    "unknown_client": Reason(
        "quarantine", "consistency", "the client number is not in the client file"
    ),
    "client_quarantined": Reason(
        "quarantine", "consistency", "the client's own record was quarantined"
    ),
    # flags: the row is kept
    "bsn_missing": Reason("flag", "completeness", "no BSN: linked by the fallback route"),
    "bsn_invalid": Reason(
        "flag",
        "validity",
        "the BSN is not nine digits or fails the elfproef: removed, linked by the fallback route",
    ),
    "bsn_padded": Reason(
        "flag", None, "an eight-digit BSN (stored as a number) got its leading zero back"
    ),
    "control_character": Reason(
        "flag", "validity", "a NUL or other control character in the value: removed"
    ),
    "spreadsheet_formula": Reason(
        "flag",
        "validity",
        "a value a spreadsheet would run as a formula (starts with =, +, - or @): kept as "
        "text, neutralised in every CSV file written",
    ),
    "missing_birth_date": Reason("flag", "completeness", "the birth date is empty"),
    "unknown_code": Reason(
        "flag", "validity", "a code the configuration does not map: set to missing"
    ),
    "invalid_birth_date": Reason(
        "flag",
        "validity",
        "a birth date that does not parse, lies in the future or before exports.earliest_date: "
        "set missing",
    ),
    "implausible_birth_date": Reason(
        "flag", "validity", f"an age outside {AGE_RANGE[0]}-{AGE_RANGE[1]} at the export date"
    ),
    "invalid_postcode": Reason(
        "flag", "validity", "not a six-character postcode (1234AB): set to missing"
    ),
    "invalid_house_number": Reason(
        "flag", "validity", "not a positive whole house number: set to missing"
    ),
    "end_after_export": Reason(
        "flag", "validity", "a benefit end date after the export date: treated as running"
    ),
    "overlapping_spell": Reason(
        "flag", "consistency", "the benefit spell overlaps an earlier spell of the same client"
    ),
    "duplicate_values_differ": Reason(
        "flag",
        "consistency",
        "the kept copy of a duplicated client differs from a removed copy in this column",
    ),
    "no_benefit_spell": Reason(
        "flag", "consistency", "the client has no benefit spell in the delivery"
    ),
    "unknown_case_manager": Reason(
        "flag", "consistency", "the client's case manager is not in the case-manager file"
    ),
}
#: quarantine reasons in the order they are checked (the first one found is reported)
QUARANTINE_ORDER = [k for k, r in REASONS.items() if r.action == "quarantine"]

#: the documented duplicate rules: table -> (key, identity, which copy is kept,
#: a second rule on content under different record numbers)
DUPLICATE_RULES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str, str]] = {
    "clients": (
        ("client_id",),
        ("bsn", "birth_date", "sex"),
        "the copy with the most accented letters in name and street (a system migration "
        "that drops accents loses information), then the one with the most values filled "
        "in, then the first in the file",
        "",
    ),
    "benefit_spells": (
        ("client_id", "spell_id"),
        ("benefit_type", "start_date", "end_date"),
        "the first in the file",
        "Spells with the same client, scheme, start and end under different spell numbers "
        "are copies too; the first is kept.",
    ),
    "instruments": (
        ("client_id", "episode_id"),
        ("instrument", "start_date", "end_date"),
        "the first in the file",
        "Episodes with the same client, instrument and start date under different numbers "
        "are copies too; the one with an end date is kept, else the first.",
    ),
    "caseload": (
        ("case_manager", "team", "first_active"),
        ("last_active",),
        "the first in the file",
        "",
    ),
}
