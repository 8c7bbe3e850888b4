//! The backend's real migrations and booking statements run on the engine: the schema
//! loads, the exclusion constraint `no_room_overlap` rejects an overlapping booking from a
//! concurrent transaction after waiting, and the statements' parameter types bind.
use crate::common::*;
use model::{Step, Value};

fn migrations() -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../backend-core/migrations");
    let mut files: Vec<_> =
        std::fs::read_dir(dir).expect("migrations dir").map(|e| e.unwrap().path()).collect();
    files.retain(|p| p.extension().is_some_and(|x| x == "sql"));
    files.sort();
    files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect::<Vec<_>>().join("\n")
}

const INSERT: &str = "INSERT INTO appointments (id, clinic_id, room_id, doctor_id, \
     patient_id, appointment_type, starts_at, ends_at, turnover_minutes, blocked_until, status, \
     infectious, patient_gender, policy_version, score, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'booked', $11, $12::text, $13, $14, $15)";

fn ts(s: &str) -> Value {
    Value::Timestamp(model::value::parse_timestamp_us(s).unwrap())
}

fn booking(id: u128, doctor: u128, patient: u128, from: &str, to: &str) -> Vec<Value> {
    vec![
        Value::Uuid(id),
        Value::Uuid(1),
        Value::Uuid(10),
        Value::Uuid(doctor),
        Value::Uuid(patient),
        Value::Text("checkup".into()),
        ts(from),
        ts(to),
        Value::Int(0),
        ts(to),
        Value::Bool(false),
        Value::Null,
        Value::Int(1),
        Value::Text("0hard/0medium/0soft".into()),
        ts("2030-03-01 00:00:00+00"),
    ]
}

#[test]
fn migrations_load_and_room_overlap_is_rejected() {
    let mut h = H::new(2, &migrations());
    let seed = "insert into clinics values ('00000000-0000-0000-0000-000000000001', 'c', '{}');
        insert into rooms values ('00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-000000000001', 'r', 'exam', 'active', '{}');
        insert into doctors values ('00000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-000000000001', 'd', '{}'),
                                   ('00000000-0000-0000-0000-000000000003', '00000000-0000-0000-0000-000000000001', 'e', '{}');
        insert into patients values ('00000000-0000-0000-0000-000000000004', '{}'), ('00000000-0000-0000-0000-000000000005', '{}')";
    h.ok(0, seed);
    let lock = "SELECT id FROM rooms WHERE id = $1 FOR NO KEY UPDATE";
    let a = booking(100, 2, 4, "2030-03-10 09:00:00+00", "2030-03-10 09:30:00+00");
    let b = booking(101, 3, 5, "2030-03-10 09:15:00+00", "2030-03-10 09:45:00+00");
    // Room-lock strategy: the second locker waits for the first transaction.
    h.ok(0, "BEGIN");
    h.ok(1, "BEGIN");
    assert!(matches!(h.e.submit(h.s[0], lock, &[Value::Uuid(10)]), Step::Done(Ok(_))));
    assert!(matches!(h.e.submit(h.s[1], lock, &[Value::Uuid(10)]), Step::Blocked));
    let r = h.e.submit(h.s[0], INSERT, &a);
    assert!(matches!(r, Step::Done(Ok(_))), "{r:?}");
    h.ok(0, "COMMIT");
    assert_eq!(code_of(&h.completed(1)), "ok");
    let Step::Done(Err(e)) = h.e.submit(h.s[1], INSERT, &b) else { panic!("expected 23P01") };
    assert_eq!((e.code.as_str(), e.constraint.as_deref()), ("23P01", Some("no_room_overlap")));
    h.ok(1, "ROLLBACK");
    // Exclusion strategy: the overlapping insert waits for the uncommitted one.
    let c = booking(102, 3, 5, "2030-03-10 10:00:00+00", "2030-03-10 10:30:00+00");
    let d = booking(103, 2, 4, "2030-03-10 10:15:00+00", "2030-03-10 10:45:00+00");
    h.ok(0, "BEGIN");
    assert!(matches!(h.e.submit(h.s[0], INSERT, &c), Step::Done(Ok(_))));
    assert!(matches!(h.e.submit(h.s[1], INSERT, &d), Step::Blocked));
    h.ok(0, "COMMIT");
    let e = h.completed(1).unwrap_err();
    assert_eq!((e.code.as_str(), e.constraint.as_deref()), ("23P01", Some("no_room_overlap")));
    let count = h.e.submit(
        h.s[0],
        "SELECT count(*) AS overlapping FROM appointments WHERE room_id = $1 AND status IN ('held', 'booked', 'checked_in') AND starts_at < $2 AND blocked_until > $3",
        &[Value::Uuid(10), ts("2030-03-10 10:00:00+00"), ts("2030-03-10 09:00:00+00")],
    );
    let Step::Done(Ok(r)) = count else { panic!("{count:?}") };
    assert_eq!((r.columns[0].as_str(), &r.rows[0][0]), ("overlapping", &Value::Int(1)));
    let during = h.e.query_committed("select during from appointments").unwrap();
    assert_eq!(
        model::value::to_pg_text(&during.rows[0][0]),
        "[\"2030-03-10 09:00:00+00\",\"2030-03-10 09:30:00+00\")"
    );
}
