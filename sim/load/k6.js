// The load-test plan's k6 alternative to sim/load/locustfile.py, against `roomsim serve`.
//
// WHAT: the same three tagged workloads as the Locust file (concurrent, conflict, rules; see
// its doc), one k6 scenario each, selected with TAGS (default: all three). The ids come from
// the fixture `roomsim db setup` writes (ROOMSIM_FIXTURE; k6 cannot read the environment's
// default path, so it must be given). Room assignment = booking response time (k6's
// http_req_duration); conflict detection and rules evaluation = the server's Server-Timing
// phases, as custom Trends. handleSummary prints the plan's ROOM ASSIGNMENT PERFORMANCE
// REPORT block; thresholds make k6 exit non-zero when p95 >= 100 ms or bookings < 20/s.
//
//   k6 run -e TARGET=http://127.0.0.1:8000 -e ROOMSIM_FIXTURE=$HOME/.local/state/roomsim/fixture.json \
//       -e TAGS=concurrent,conflict -e USERS=50 -e DURATION=2m sim/load/k6.js
//
// NOT MODELLED: think time (none, like `roomsim load --wait-ms 0`).

import http from 'k6/http';
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';

const TARGET = __ENV.TARGET || 'http://127.0.0.1:8000';
const USERS = parseInt(__ENV.USERS || '50', 10);
const DURATION = __ENV.DURATION || '1m';
const TAGS = (__ENV.TAGS || 'concurrent,conflict,rules').split(',').map((t) => t.trim());
if (!__ENV.ROOMSIM_FIXTURE) {
  throw new Error('set ROOMSIM_FIXTURE (-e ROOMSIM_FIXTURE=…) to the fixture `roomsim db setup` wrote');
}
const FIXTURE = JSON.parse(open(__ENV.ROOMSIM_FIXTURE));

const DAYS_SPREAD_MAX = 250;
const HOT_SLOTS_MAX = 4;
const OPEN_HOUR = 8;
const CLOSE_HOUR = 18;

const conflictDetection = new Trend('conflict_detection', true);
const rulesEvaluation = new Trend('rules_evaluation', true);
const bookingsCreated = new Counter('bookings_created');

const EXEC = { concurrent: 'concurrent', conflict: 'conflict', rules: 'rules' };
const scenarios = {};
for (const name of TAGS) {
  if (!EXEC[name]) throw new Error(`TAGS: unknown tag ${name} (valid: concurrent, conflict, rules)`);
  scenarios[name] = {
    executor: 'constant-vus',
    exec: EXEC[name],
    vus: Math.max(1, Math.floor(USERS / TAGS.length)),
    duration: DURATION,
    tags: { task: name },
  };
}

export const options = {
  scenarios,
  thresholds: {
    'http_req_duration{kind:booking}': ['p(95)<100'],
    bookings_created: ['rate>=20'],
    checks: ['rate>0.99'],
  },
};

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

function businessDay(first, n) {
  const date = new Date(first.getTime());
  const weekday = (d) => d.getUTCDay(); // 0 = Sunday
  while (weekday(date) === 0 || weekday(date) === 6) date.setUTCDate(date.getUTCDate() + 1);
  date.setUTCDate(date.getUTCDate() + 7 * Math.floor(n / 5));
  let left = n % 5;
  while (left > 0) {
    date.setUTCDate(date.getUTCDate() + 1);
    if (weekday(date) !== 0 && weekday(date) !== 6) left -= 1;
  }
  return date;
}

function body(conflict) {
  let day, minute, length;
  if (conflict) {
    day = 0;
    minute = OPEN_HOUR * 60 + 60 + 15 * Math.floor(Math.random() * HOT_SLOTS_MAX);
    length = 15;
  } else {
    const slot = Math.floor(Math.random() * ((CLOSE_HOUR - OPEN_HOUR) * 4 - 2));
    day = Math.floor(Math.random() * DAYS_SPREAD_MAX);
    minute = OPEN_HOUR * 60 + slot * 15;
    length = Math.random() < 0.5 ? 15 : 30;
  }
  const start = businessDay(new Date(`${FIXTURE.first_day}T00:00:00Z`), day);
  start.setUTCMinutes(minute);
  const end = new Date(start.getTime() + length * 60000);
  const iso = (d) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return JSON.stringify({
    clinic_id: FIXTURE.clinic_id,
    doctor_id: pick(FIXTURE.doctor_ids),
    patient_id: pick(FIXTURE.patient_ids),
    appointment_type: pick(FIXTURE.appointment_types),
    start: iso(start),
    end: iso(end),
    room_id: null,
    fallback: 'suggest',
  });
}

function serverTiming(response, phase) {
  const header = response.headers['Server-Timing'] || '';
  for (const part of header.split(',')) {
    const [name, rest] = part.trim().split(';');
    if (name === phase && rest && rest.startsWith('dur=')) return parseFloat(rest.slice(4));
  }
  return null;
}

function uuid4() {
  const hex = '0123456789abcdef';
  let out = '';
  for (let i = 0; i < 32; i += 1) {
    let digit = Math.floor(Math.random() * 16);
    if (i === 12) digit = 4;
    if (i === 16) digit = (digit & 0x3) | 0x8;
    out += hex[digit];
    if (i === 7 || i === 11 || i === 15 || i === 19) out += '-';
  }
  return out;
}

function book(conflict, name) {
  const response = http.post(`${TARGET}/v1/appointments`, body(conflict), {
    headers: { 'Content-Type': 'application/json', 'Idempotency-Key': uuid4() },
    tags: { name, kind: 'booking' },
    // 409 and 200 (suggestions) are answers of a working server, not failures.
    responseCallback: http.expectedStatuses(200, 201, 409),
  });
  check(response, { 'booking answered 200/201/409': (r) => [200, 201, 409].includes(r.status) });
  const conflictMs = serverTiming(response, 'conflict');
  if (conflictMs !== null) conflictDetection.add(conflictMs);
  if (response.status === 201) bookingsCreated.add(1);
}

export function concurrent() {
  book(false, 'POST /v1/appointments [concurrent]');
}

export function conflict() {
  book(true, 'POST /v1/appointments [conflict]');
}

export function rules() {
  const response = http.post(`${TARGET}/v1/room-assignments:preview`, body(false), {
    headers: { 'Content-Type': 'application/json' },
    tags: { name: 'POST /v1/room-assignments:preview [rules]', kind: 'preview' },
  });
  check(response, { 'preview answered 200': (r) => r.status === 200 });
  const rulesMs = serverTiming(response, 'rules');
  if (rulesMs !== null) rulesEvaluation.add(rulesMs);
}

function block(title, trend, target) {
  const values = trend ? trend.values : {};
  const ms = (v) => `${(v || 0).toFixed(2)}ms`;
  const lines = [
    title,
    `  Average: ${ms(values.avg)}`,
    `  P50: ${ms(values.med)}`,
    `  P95: ${ms(values['p(95)'])}`,
    `  P99: ${ms(values['p(99)'])}`,
  ];
  if (target !== undefined) {
    const met = trend !== undefined && values['p(95)'] < target;
    lines.push(`  Target Met: ${met ? '✓ YES' : '✗ NO'} (P95 < ${target}ms)`);
  }
  return lines;
}

export function handleSummary(data) {
  const m = data.metrics;
  const created = m.bookings_created ? m.bookings_created.values : { count: 0, rate: 0 };
  const rule = '='.repeat(50);
  const lines = [
    '',
    rule,
    'ROOM ASSIGNMENT PERFORMANCE REPORT',
    rule,
    ...block('Room Assignment Latencies:', m['http_req_duration{kind:booking}'], 100),
    ...block('Conflict Detection Latencies:', m.conflict_detection),
    ...block('Rules Engine Evaluation Latencies:', m.rules_evaluation),
    `Total Appointments Created: ${created.count}`,
    `Throughput: ${created.rate.toFixed(1)} bookings/s (target >= 20)`,
    `  Target Met: ${created.rate >= 20 ? '✓ YES' : '✗ NO'}`,
    rule,
    '',
  ];
  return { stdout: lines.join('\n') };
}
