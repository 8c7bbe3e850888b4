"""Schemathesis hooks: let generated requests reach the database.

WHAT: the clinic, doctor and patient ids schemathesis generates are random UUIDs, so nearly
every booking stops at 422 UNKNOWN_REFERENCE before any query that uses the other fields,
and most generated time ranges are empty (422 INVALID_TIME_RANGE). `before_call` swaps three
out of four schema-valid ids for ids of the fixture `roomsim db setup` wrote, and gives three
out of four empty ranges a 30-minute end (ids chosen by the id's value, ranges by a counter
of the calls, so a run stays reproducible with `--seed` and one worker), and every other appointment type the
fixture's, so some bookings succeed and their 201 bodies are checked against the schema. Wrong types are left alone, so negative cases stay
negative.

Used with SCHEMATHESIS_HOOKS=schemathesis_hooks (PYTHONPATH=sim/load) and ROOMSIM_FIXTURE.
"""

import datetime
import itertools
import json
import os
import uuid

import schemathesis

_FIXTURE = None
_RANGES = itertools.count()
_TYPES = itertools.count()


def fixture():
    global _FIXTURE
    if _FIXTURE is None:
        path = os.environ.get("ROOMSIM_FIXTURE")
        if not path:
            raise SystemExit("schemathesis_hooks: set ROOMSIM_FIXTURE to the fixture of `roomsim db setup`")
        with open(path, encoding="utf-8") as handle:
            _FIXTURE = json.load(handle)
    return _FIXTURE


def _real_id(value, choices):
    """A fixture id for three out of four valid UUIDs; anything else unchanged."""
    if not isinstance(value, str):
        return value
    try:
        number = uuid.UUID(value).int
    except ValueError:
        return value
    if number % 4 == 0:
        return value
    return choices[number % len(choices)]


def _nonempty_end(start, end):
    """`start + 30 min` for three out of four valid ranges that are empty; else `end`."""
    if not isinstance(start, str) or not isinstance(end, str):
        return end
    try:
        begin = datetime.datetime.fromisoformat(start)
        finish = datetime.datetime.fromisoformat(end)
        if finish > begin or next(_RANGES) % 4 == 0:
            return end
        later = begin + datetime.timedelta(minutes=30)
    except (ValueError, TypeError, OverflowError):
        return end
    return later.isoformat()


@schemathesis.hook
def before_call(context, case, kwargs):
    f = fixture()
    ids = {
        "clinic_id": [f["clinic_id"]],
        "doctor_id": f["doctor_ids"],
        "patient_id": f["patient_ids"],
        "room_id": f["room_ids"],
        "previous_room_id": f["room_ids"],
    }
    if isinstance(case.body, dict):
        for field, choices in ids.items():
            if field in case.body:
                case.body[field] = _real_id(case.body[field], choices)
    if isinstance(case.body, dict):
        case.body["end"] = _nonempty_end(case.body.get("start"), case.body.get("end"))
        kind = case.body.get("appointment_type")
        if isinstance(kind, str) and next(_TYPES) % 2 == 0:
            case.body["appointment_type"] = f["appointment_types"][0]
    if isinstance(case.query, dict) and "clinic_id" in case.query:
        case.query["clinic_id"] = _real_id(case.query["clinic_id"], ids["clinic_id"])
