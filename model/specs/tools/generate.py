#!/usr/bin/env python3
"""Writes the templated part of the spec corpus (Hermitage cases at each isolation level,
the row-lock conflict matrix, booking patterns at each level). Hand-written specs live next
to them. Run from model/specs: python3 tools/generate.py"""

LEVELS = [("rc", "READ COMMITTED"), ("rr", "REPEATABLE READ"), ("ser", "SERIALIZABLE")]
HERMITAGE_SETUP = ("CREATE TABLE test (id int PRIMARY KEY, value int); "
                   "INSERT INTO test VALUES (1, 10), (2, 20);")
FIN = ("chk", [("fin", "SELECT * FROM test ORDER BY id;")])


def U(i, v):
    return f"UPDATE test SET value = {v} WHERE id = {i};"


def S(i):
    return f"SELECT * FROM test WHERE id = {i};"


SA = "SELECT * FROM test ORDER BY id;"


def W(cond):
    return f"SELECT * FROM test WHERE {cond} ORDER BY id;"


# (name, comment, sessions in a transaction: [(session, [(step, sql)])], permutation)
HERMITAGE = [
    ("g0", "G0 write cycles: RC waits then overwrites (12,22); RR/SER: 40001 after the wait.",
     [("s1", [("u11", U(1, 11)), ("u21", U(2, 21)), ("c1", "COMMIT;")]),
      ("s2", [("u12", U(1, 12)), ("u22", U(2, 22)), ("c2", "COMMIT;")])],
     "u11 u12 u21 c1 u22 c2 fin"),
    ("g1a", "G1a aborted read: the reader never sees the aborted write.",
     [("s1", [("u101", U(1, 101)), ("a1", "ABORT;")]),
      ("s2", [("r2a", SA), ("r2b", SA), ("c2", "COMMIT;")])],
     "u101 r2a a1 r2b c2 fin"),
    ("g1b", "G1b intermediate read: RC reads 10 then 11; RR/SER read 10 twice.",
     [("s1", [("u101", U(1, 101)), ("u11", U(1, 11)), ("c1", "COMMIT;")]),
      ("s2", [("r2a", SA), ("r2b", SA), ("c2", "COMMIT;")])],
     "u101 r2a u11 c1 r2b c2 fin"),
    ("g1c", "G1c circular information flow: SER fails the second commit (pivot).",
     [("s1", [("u11", U(1, 11)), ("r12", S(2)), ("c1", "COMMIT;")]),
      ("s2", [("u22", U(2, 22)), ("r21", S(1)), ("c2", "COMMIT;")])],
     "u11 u22 r12 r21 c1 c2 fin"),
    ("otv", "Observed transaction vanishes: RC T3 reads 11,19,18,12; RR/SER: T2 gets 40001.",
     [("s1", [("u11", U(1, 11)), ("u19", U(2, 19)), ("c1", "COMMIT;")]),
      ("s2", [("u12", U(1, 12)), ("u18", U(2, 18)), ("c2", "COMMIT;")]),
      ("s3", [("r31", S(1)), ("r32", S(2)), ("r32b", S(2)), ("r31b", S(1)), ("c3", "COMMIT;")])],
     "u11 u19 u12 c1 r31 u18 r32 c2 r32b r31b c3 fin"),
    ("pmp", "Predicate-many-preceders: RC sees the new row (3,30); RR/SER do not.",
     [("s1", [("p30", W("value = 30")), ("p3", W("value % 3 = 0")), ("c1", "COMMIT;")]),
      ("s2", [("i30", "INSERT INTO test VALUES (3, 30);"), ("c2", "COMMIT;")])],
     "p30 i30 c2 p3 c1 fin"),
    ("pmp-write", "PMP with writes: RC deletes nothing; RR/SER: 40001 after the wait.",
     [("s1", [("add10", "UPDATE test SET value = value + 10;"), ("c1", "COMMIT;")]),
      ("s2", [("d20", "DELETE FROM test WHERE value = 20;"), ("r2", SA), ("c2", "COMMIT;")])],
     "add10 d20 c1 r2 c2 fin"),
    ("p4", "Lost update: RC loses T1's update; RR/SER: 40001 for T2.",
     [("s1", [("r11", S(1)), ("u11", U(1, 11)), ("c1", "COMMIT;")]),
      ("s2", [("r21", S(1)), ("u21", U(1, 11)), ("c2", "COMMIT;")])],
     "r11 r21 u11 u21 c1 c2 fin"),
    ("gsingle", "G-single read skew: RC reads 18; RR/SER read 20.",
     [("s1", [("r11", S(1)), ("r12", S(2)), ("c1", "COMMIT;")]),
      ("s2", [("r21", S(1)), ("r22", S(2)), ("u12", U(1, 12)), ("u18", U(2, 18)),
              ("c2", "COMMIT;")])],
     "r11 r21 r22 u12 u18 c2 r12 c1 fin"),
    ("gsingle-pred", "G-single with predicates: RC sees (1,12); RR/SER see nothing.",
     [("s1", [("p5", W("value % 5 = 0")), ("p3", W("value % 3 = 0")), ("c1", "COMMIT;")]),
      ("s2", [("u10", "UPDATE test SET value = 12 WHERE value = 10;"), ("c2", "COMMIT;")])],
     "p5 u10 c2 p3 c1 fin"),
    ("gsingle-write", "G-single with a write predicate: RR/SER fail at once with 40001.",
     [("s1", [("r11", S(1)), ("d20", "DELETE FROM test WHERE value = 20;"), ("c1", "COMMIT;")]),
      ("s2", [("r2", SA), ("u12", U(1, 12)), ("u18", U(2, 18)), ("c2", "COMMIT;")])],
     "r11 r2 u12 u18 c2 d20 c1 fin"),
    ("g2item", "G2-item write skew: RC/RR commit both; SER fails the second commit.",
     [("s1", [("r1", W("id IN (1, 2)")), ("u11", U(1, 11)), ("c1", "COMMIT;")]),
      ("s2", [("r2", W("id IN (1, 2)")), ("u21", U(2, 21)), ("c2", "COMMIT;")])],
     "r1 r2 u11 u21 c1 c2 fin"),
    ("g2", "G2 anti-dependency cycles: SER fails the second commit; only (3,30) remains.",
     [("s1", [("p1", W("value % 3 = 0")), ("i30", "INSERT INTO test VALUES (3, 30);"),
              ("c1", "COMMIT;")]),
      ("s2", [("p2", W("value % 3 = 0")), ("i42", "INSERT INTO test VALUES (4, 42);"),
              ("c2", "COMMIT;")])],
     "p1 p2 i30 i42 c1 c2 fin"),
    ("g2-readonly", "Fekete read-only anomaly: SER cancels T1's write as a pivot, during write.",
     [("s1", [("ra", SA), ("u10", U(1, 0)), ("c1", "COMMIT;")]),
      ("s2", [("add5", "UPDATE test SET value = value + 5 WHERE id = 2;"), ("c2", "COMMIT;")]),
      ("s3", [("r3", SA), ("c3", "COMMIT;")])],
     "ra add5 c2 r3 c3 u10 c1 fin"),
]


def spec_text(comment, setup, sessions, perm, level=None, teardown=None, extra=""):
    out = [f"# {line}" for line in comment.split("\n")]
    out.append("# Generated by tools/generate.py.")
    out.append(f"setup {{ {setup} }}")
    if teardown:
        out.append(f"teardown {{ {teardown} }}")
    for name, steps, *rest in sessions:
        begin = rest[0] if rest else (f"BEGIN ISOLATION LEVEL {level};" if level else None)
        out.append("")
        out.append(f"session {name}")
        if begin:
            out.append(f"setup {{ {begin} }}")
        for step, sql in steps:
            out.append(f"step {step} {{ {sql} }}")
    out.append("")
    for p in ([perm] if isinstance(perm, str) else perm):
        out.append(f"permutation {p}")
    return "\n".join(out) + "\n" + extra


def write(name, text):
    with open(f"{name}.spec", "w") as f:
        f.write(text)


def hermitage():
    for case, comment, sessions, perm in HERMITAGE:
        for short, level in LEVELS:
            sess = [(n, st) for n, st in sessions] + [(FIN[0], FIN[1], None)]
            text = spec_text(f"Hermitage {comment}\nLevel: {level}.", HERMITAGE_SETUP, sess,
                             perm, level=level, teardown="DROP TABLE test;")
            write(f"hermitage-{case}-{short}", text)


# Row-lock conflict matrix: what T1 holds (rows) against what T2 requests (permutations).
LOCKS = [
    ("keyshare", "SELECT * FROM t WHERE id = 1 FOR KEY SHARE;"),
    ("share", "SELECT * FROM t WHERE id = 1 FOR SHARE;"),
    ("nokeyupd", "SELECT * FROM t WHERE id = 1 FOR NO KEY UPDATE;"),
    ("forupd", "SELECT * FROM t WHERE id = 1 FOR UPDATE;"),
    ("updnonkey", "UPDATE t SET v = v + 1 WHERE id = 1;"),
    ("updkey", "UPDATE t SET k = k + 10 WHERE id = 1;"),
    ("delete", "DELETE FROM t WHERE id = 1;"),
    ("fkchild", "INSERT INTO child VALUES (100, 1);"),
]
LOCK_SETUP = ("CREATE TABLE t (id int PRIMARY KEY, k int UNIQUE, v int); "
              "INSERT INTO t VALUES (1, 1, 0), (2, 2, 0); "
              "CREATE TABLE child (id int PRIMARY KEY, t_id int REFERENCES t (id));")


def rowlock_matrix():
    for held, held_sql in LOCKS[:7]:
        steps2 = [(f"r_{req}", sql) for req, sql in LOCKS]
        sessions = [("s1", [("h", held_sql), ("c1", "COMMIT;")], "BEGIN;"),
                    ("s2", steps2 + [("c2", "COMMIT;")], "BEGIN;"),
                    ("chk", [("fin", "SELECT * FROM t ORDER BY id;")], None)]
        perms = [f"h r_{req} c1 c2 fin" for req, _ in LOCKS]
        comment = (f"Row-lock conflict matrix: T1 holds {held} on row 1; T2 requests each\n"
                   "mode in turn (one permutation each); a conflicting request waits for c1.")
        write(f"rowlock-held-{held}", spec_text(comment, LOCK_SETUP, sessions, perms,
                                                 teardown="DROP TABLE child; DROP TABLE t;"))


BOOK_SETUP = ("CREATE TABLE rooms (id int PRIMARY KEY, version int NOT NULL DEFAULT 0); "
              "INSERT INTO rooms VALUES (1, 0), (2, 0); "
              "CREATE TABLE bookings (id serial PRIMARY KEY, "
              "room_id int NOT NULL REFERENCES rooms, "
              "during tstzrange NOT NULL);")
SLOT_A = "'[2030-01-07 10:00+00, 2030-01-07 11:00+00)'"
SLOT_B = "'[2030-01-07 10:30+00, 2030-01-07 11:30+00)'"


def count(slot):
    return f"SELECT count(*) FROM bookings WHERE room_id = 1 AND during && {slot};"


def insert(slot):
    return f"INSERT INTO bookings (room_id, during) VALUES (1, {slot});"


BOOK_FIN = ("chk", [("fin", "SELECT room_id, during FROM bookings ORDER BY id;")], None)
STRATEGIES = [
    ("check-insert", "check-then-insert without locks", None),
    ("room-forupdate", "lock the room row FOR UPDATE, then check, then insert",
     "SELECT id FROM rooms WHERE id = 1 FOR UPDATE;"),
    ("room-nokeyupdate", "lock the room row FOR NO KEY UPDATE, then check, then insert",
     "SELECT id FROM rooms WHERE id = 1 FOR NO KEY UPDATE;"),
    ("room-version", "bump the room's version first, then check, then insert",
     "UPDATE rooms SET version = version + 1 WHERE id = 1;"),
    ("advisory", "take an advisory transaction lock on the room, then check, then insert",
     "SELECT pg_advisory_xact_lock(1) IS NOT NULL AS locked;"),
]


def booking():
    for strat, what, lock in STRATEGIES:
        for short, level in LEVELS:
            sessions = []
            for s, slot in (("s1", SLOT_A), ("s2", SLOT_B)):
                steps = [(f"l{s[1]}", lock)] if lock else []
                steps += [(f"chk{s[1]}", count(slot)), (f"ins{s[1]}", insert(slot)),
                          (f"c{s[1]}", "COMMIT;")]
                sessions.append((s, steps))
            sessions.append(BOOK_FIN)
            # The client inserts only if its check saw no overlap. With a room lock at READ
            # COMMITTED the second check sees the first booking (count 1), so it does not
            # insert; everywhere else it saw 0 and inserts (the diff still compares counts).
            ins2 = "" if (lock and short == "rc") else "ins2 "
            perm = "chk1 chk2 ins1 ins2 c1 c2 fin" if not lock else \
                f"l1 chk1 l2 ins1 c1 chk2 {ins2}c2 fin"
            comment = (f"Booking: two clients book overlapping slots of room 1; {what}.\n"
                       f"Level: {level}. A client inserts only if its check counted 0; the final\n"
                       "SELECT shows whether the room is double-booked.")
            write(f"book-{strat}-{short}",
                  spec_text(comment, BOOK_SETUP, sessions, perm, level=level,
                            teardown="DROP TABLE bookings; DROP TABLE rooms;"))


if __name__ == "__main__":
    hermitage()
    rowlock_matrix()
    booking()
