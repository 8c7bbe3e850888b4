"""The clinic load-test plan's Locust file, against `roomsim serve`.

WHAT: one HttpUser with the plan's three tagged tasks, shaped like `roomsim load`'s
(sim/real/src/workload.rs):

* `concurrent` - POST /v1/appointments spread over 250 business days: bookings that rarely
  collide (throughput, room-assignment latency);
* `conflict` - POST /v1/appointments aimed at four hot 15-minute slots of the first day, so
  most requests race for the same rooms (409 / suggestions expected, not failures);
* `rules` - POST /v1/room-assignments:preview: the rules engine and allocator, no write.

The ids come from the fixture `roomsim db setup` writes: $ROOMSIM_FIXTURE, else the default
place (`$XDG_STATE_HOME/roomsim/fixture[-$ROOMSIM_SCHEMA].json`, else
`~/.local/state/roomsim/...`), else the plan's variables printed by
`eval "$(roomsim db setup --print-env)"` (TEST_CLINIC_ID, TEST_DOCTOR_ID, TEST_PATIENT_ID,
TEST_APPOINTMENT_TYPE, TEST_FIRST_DAY).

At the end it prints the plan's ROOM ASSIGNMENT PERFORMANCE REPORT block: room assignment =
the booking requests' response times; conflict detection and rules evaluation = the
server's own `Server-Timing` phases (`conflict;dur`, `rules;dur`). Samples are kept as
counts per value rounded to 3 significant digits (like an HdrHistogram), so they merge
exactly: in distributed mode (`--master` / `--worker`) each worker ships its counts to the
master with every stats report and the master prints the block for the whole swarm.

Exit code: Locust's own (1 when any request failed); with `--enforce-targets` also 1 when
room assignment p95 >= 100 ms or fewer than 20 bookings/s were made.

NOT MODELLED: think time (`wait_time` is 0, like `roomsim load --wait-ms 0`); cancellations.

    locust -f sim/load/locustfile.py --host http://127.0.0.1:8000 --tags concurrent \\
        --headless -u 50 -r 10 -t 2m --csv results/run --html results/run.html
"""

import datetime
import itertools
import json
import math
import os
import random
import sys
import uuid

from locust import HttpUser, events, tag, task
from locust.runners import MasterRunner, WorkerRunner

ROOM_ASSIGNMENT_P95_TARGET_MS = 100.0
THROUGHPUT_TARGET_PER_S = 20.0
DAYS_SPREAD_MAX = 250
HOT_SLOTS_MAX = 4
OPEN_HOUR = 8
CLOSE_HOUR = 18
REPORT_MESSAGE_KEY = "roomsim_histograms"

# --- the fixture -------------------------------------------------------------------------


def default_fixture_path():
    """The place `roomsim db setup` writes to without --fixture (workload::default_fixture_path)."""
    state = os.environ.get("XDG_STATE_HOME") or (
        os.path.join(os.environ["HOME"], ".local", "state") if os.environ.get("HOME") else None
    )
    if not state:
        import tempfile

        state = tempfile.gettempdir()
    schema = os.environ.get("ROOMSIM_SCHEMA")
    name = f"fixture-{schema}.json" if schema else "fixture.json"
    return os.path.join(state, "roomsim", name)


def load_fixture():
    """The fixture as a dict; exits with status 2 and a message naming what is missing."""
    path = os.environ.get("ROOMSIM_FIXTURE") or default_fixture_path()
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as handle:
                fixture = json.load(handle)
        except (OSError, ValueError) as error:
            sys.exit(f"locustfile: fixture {path}: {error}")
        for field in ("clinic_id", "doctor_ids", "patient_ids", "appointment_types", "first_day"):
            if not fixture.get(field):
                print(f"locustfile: fixture {path}: field `{field}` is missing or empty", file=sys.stderr)
                sys.exit(2)
        return fixture
    if os.environ.get("TEST_CLINIC_ID"):
        names = ["TEST_CLINIC_ID", "TEST_DOCTOR_ID", "TEST_PATIENT_ID", "TEST_APPOINTMENT_TYPE", "TEST_FIRST_DAY"]
        missing = [name for name in names if not os.environ.get(name)]
        if missing:
            print(f"locustfile: TEST_CLINIC_ID is set but {', '.join(missing)} are not", file=sys.stderr)
            sys.exit(2)
        return {
            "clinic_id": os.environ["TEST_CLINIC_ID"],
            "doctor_ids": [os.environ["TEST_DOCTOR_ID"]],
            "patient_ids": [os.environ["TEST_PATIENT_ID"]],
            "appointment_types": [os.environ["TEST_APPOINTMENT_TYPE"]],
            "first_day": os.environ["TEST_FIRST_DAY"],
        }
    print(
        f"locustfile: no fixture at {path} and TEST_CLINIC_ID is not set: run `roomsim db setup` "
        "first (or set ROOMSIM_FIXTURE, or eval \"$(roomsim db setup --print-env)\")",
        file=sys.stderr,
    )
    sys.exit(2)


FIXTURE = None


def business_day(first, n):
    """The n-th business day (Mon-Fri) from `first` (workload::business_day)."""
    date = first
    while date.isoweekday() > 5:
        date += datetime.timedelta(days=1)
    date += datetime.timedelta(weeks=n // 5)
    left = n % 5
    while left > 0:
        date += datetime.timedelta(days=1)
        if date.isoweekday() <= 5:
            left -= 1
    return date


# --- histograms --------------------------------------------------------------------------


def bucket(value_ms):
    """The value rounded to 3 significant digits (in microseconds), as an int key."""
    us = max(1, int(round(value_ms * 1000.0)))
    digits = int(math.floor(math.log10(us))) + 1
    scale = 10 ** max(0, digits - 3)
    return (us // scale) * scale


class Histogram:
    """Counts per bucket; merges exactly across workers."""

    def __init__(self):
        self.counts = {}

    def record(self, value_ms):
        key = bucket(value_ms)
        self.counts[key] = self.counts.get(key, 0) + 1

    def merge(self, counts):
        for key, count in counts.items():
            key = int(key)
            self.counts[key] = self.counts.get(key, 0) + count

    def total(self):
        return sum(self.counts.values())

    def mean_ms(self):
        total = self.total()
        return sum(k * c for k, c in self.counts.items()) / total / 1000.0 if total else 0.0

    def percentile_ms(self, q):
        total = self.total()
        if not total:
            return 0.0
        rank = max(1, math.ceil(q * total))
        seen = 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen >= rank:
                return key / 1000.0
        return max(self.counts) / 1000.0


METRICS = ("room_assignment", "conflict_detection", "rules_evaluation")
HISTOGRAMS = {name: Histogram() for name in METRICS}
COUNTERS = {"bookings_created": 0}


def server_timing(response, phase):
    """`dur` of one phase of the Server-Timing header in ms, or None."""
    header = response.headers.get("Server-Timing", "")
    for part in header.split(","):
        name, _, rest = part.strip().partition(";")
        if name == phase and rest.startswith("dur="):
            try:
                return float(rest[4:])
            except ValueError:
                return None
    return None


# --- the user ----------------------------------------------------------------------------

USER_NUMBERS = itertools.count()


class ClinicUser(HttpUser):
    wait_time = staticmethod(lambda: 0)

    def on_start(self):
        # Each user's request stream is seeded by (ROOMSIM_SEED, worker index, user number),
        # so workers of one swarm do not send the same stream.
        seed = int(os.environ.get("ROOMSIM_SEED", "1"))
        worker = getattr(self.environment.runner, "worker_index", 0) or 0
        self.rng = random.Random(f"{seed}/{worker}/{next(USER_NUMBERS)}")
        self.first_day = datetime.date.fromisoformat(FIXTURE["first_day"])

    def body(self, conflict):
        f, rng = FIXTURE, self.rng
        if conflict:
            day, minute, length = 0, OPEN_HOUR * 60 + 60 + 15 * rng.randrange(HOT_SLOTS_MAX), 15
        else:
            slot = rng.randrange((CLOSE_HOUR - OPEN_HOUR) * 4 - 2)
            length = 15 if rng.random() < 0.5 else 30
            day, minute = rng.randrange(DAYS_SPREAD_MAX), OPEN_HOUR * 60 + slot * 15
        date = business_day(self.first_day, day)
        start = datetime.datetime.combine(date, datetime.time(), datetime.timezone.utc)
        start += datetime.timedelta(minutes=minute)
        end = start + datetime.timedelta(minutes=length)
        return {
            "clinic_id": f["clinic_id"],
            "doctor_id": rng.choice(f["doctor_ids"]),
            "patient_id": rng.choice(f["patient_ids"]),
            "appointment_type": rng.choice(f["appointment_types"]),
            "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "room_id": None,
            "fallback": "suggest",
        }

    def book(self, name, conflict):
        # Keys are random, not seeded: a key stored by an earlier run with another body would
        # be answered 422 IDEMPOTENCY_KEY_REUSED.
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        with self.client.post(
            "/v1/appointments", json=self.body(conflict), headers=headers, name=name, catch_response=True
        ) as response:
            # 201 booked, 200 suggestions (fallback `suggest`), 409 a participant or the room
            # was taken: answers of a working server. Anything else is a failure.
            if response.status_code in (200, 201, 409):
                response.success()
                HISTOGRAMS["room_assignment"].record(response.request_meta["response_time"])
                conflict_ms = server_timing(response, "conflict")
                if conflict_ms is not None:
                    HISTOGRAMS["conflict_detection"].record(conflict_ms)
                if response.status_code == 201:
                    COUNTERS["bookings_created"] += 1
            else:
                response.failure(f"{response.status_code}: {response.text[:200]}")

    @tag("concurrent")
    @task
    def concurrent_booking(self):
        self.book("POST /v1/appointments [concurrent]", conflict=False)

    @tag("conflict")
    @task
    def conflicting_booking(self):
        self.book("POST /v1/appointments [conflict]", conflict=True)

    @tag("rules")
    @task
    def rules_preview(self):
        name = "POST /v1/room-assignments:preview [rules]"
        with self.client.post(
            "/v1/room-assignments:preview", json=self.body(False), name=name, catch_response=True
        ) as response:
            if response.status_code == 200:
                response.success()
                rules_ms = server_timing(response, "rules")
                if rules_ms is not None:
                    HISTOGRAMS["rules_evaluation"].record(rules_ms)
            else:
                response.failure(f"{response.status_code}: {response.text[:200]}")


# --- events: fixture, distributed aggregation, the report ---------------------------------


@events.init_command_line_parser.add_listener
def add_arguments(parser):
    parser.add_argument(
        "--enforce-targets",
        action="store_true",
        default=False,
        help="exit 1 when room assignment p95 >= 100 ms or fewer than 20 bookings/s",
    )


@events.init.add_listener
def on_init(environment, **_kwargs):
    global FIXTURE
    if not isinstance(environment.runner, MasterRunner):
        FIXTURE = load_fixture()


@events.report_to_master.add_listener
def on_report_to_master(client_id, data, **_kwargs):
    """Worker: ship the counts gathered since the last report, then start afresh."""
    data[REPORT_MESSAGE_KEY] = {
        "histograms": {name: HISTOGRAMS[name].counts for name in METRICS},
        "bookings_created": COUNTERS["bookings_created"],
    }
    for name in METRICS:
        HISTOGRAMS[name] = Histogram()
    COUNTERS["bookings_created"] = 0


@events.worker_report.add_listener
def on_worker_report(client_id, data, **_kwargs):
    """Master: merge a worker's counts."""
    report = data.get(REPORT_MESSAGE_KEY)
    if not report:
        return
    for name in METRICS:
        HISTOGRAMS[name].merge(report["histograms"].get(name, {}))
    COUNTERS["bookings_created"] += report["bookings_created"]


def performance_report(elapsed_s):
    """The plan's block, and whether both targets were met."""
    tick = lambda ok: "✓ YES" if ok else "✗ NO"  # noqa: E731
    lines = ["", "=" * 50, "ROOM ASSIGNMENT PERFORMANCE REPORT", "=" * 50]
    titles = {
        "room_assignment": "Room Assignment Latencies:",
        "conflict_detection": "Conflict Detection Latencies:",
        "rules_evaluation": "Rules Engine Evaluation Latencies:",
    }
    met_latency = False
    for name in METRICS:
        histogram = HISTOGRAMS[name]
        lines.append(titles[name])
        lines.append(f"  Samples: {histogram.total()}")
        lines.append(f"  Average: {histogram.mean_ms():.2f}ms")
        for label, q in (("P50", 0.5), ("P95", 0.95), ("P99", 0.99)):
            lines.append(f"  {label}: {histogram.percentile_ms(q):.2f}ms")
        if name == "room_assignment":
            met_latency = histogram.total() > 0 and histogram.percentile_ms(0.95) < ROOM_ASSIGNMENT_P95_TARGET_MS
            lines.append(f"  Target Met: {tick(met_latency)} (P95 < {ROOM_ASSIGNMENT_P95_TARGET_MS:.0f}ms)")
    created = COUNTERS["bookings_created"]
    rate = created / elapsed_s if elapsed_s > 0 else 0.0
    met_rate = rate >= THROUGHPUT_TARGET_PER_S
    lines.append(f"Total Appointments Created: {created}")
    lines.append(f"Throughput: {rate:.1f} bookings/s (target >= {THROUGHPUT_TARGET_PER_S:.0f})")
    lines.append(f"  Target Met: {tick(met_rate)}")
    lines.append("=" * 50)
    return "\n".join(lines), met_latency and met_rate


@events.quitting.add_listener
def on_quitting(environment, **_kwargs):
    if isinstance(environment.runner, WorkerRunner):
        return
    total = environment.stats.total
    elapsed = (total.last_request_timestamp or 0) - (total.start_time or 0)
    text, met = performance_report(max(elapsed, 0.0))
    print(text, flush=True)
    if environment.parsed_options and environment.parsed_options.enforce_targets and not met:
        environment.process_exit_code = 1
