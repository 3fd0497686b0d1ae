//! `stedi seed`: deterministic synthetic landing data in the layout and
//! format of the public STEDI starter data, with every known defect of the
//! real feeds. The same seed gives byte-identical files.
//!
//! Customers are generated in independent chunks (one RNG per chunk, seeded
//! from the seed and the chunk number), in parallel; each chunk writes one
//! object per dataset.

use std::io::Write;

use anyhow::Result;
use lakehouse::Store;
use rayon::prelude::*;
use zones::{Dataset, layout};

/// Customers per landing object.
const CHUNK: usize = 1000;
/// 2022-06-18, where the public data's timestamps lie.
const T0: i64 = 1_655_560_000_000;
/// The serial numbers the website reused across many customers.
const SHARED_SERIALS: usize = 30;
const FIRST: [&str; 16] = [
    "Santosh",
    "Ben",
    "Frank",
    "David",
    "Edward",
    "Jane",
    "Jaya",
    "Jerry",
    "Jacob",
    "Senthil",
    "Neeraj",
    "Sarah",
    "Chris",
    "Danny",
    "Christina",
    "Liz",
];
const LAST: [&str; 14] = [
    "Clayton",
    "Khatib",
    "Hansen",
    "Jones",
    "Staples",
    "Gonzalez",
    "Jackson",
    "Jefferson",
    "Habschied",
    "Olson",
    "Smith",
    "Anandh",
    "Davis",
    "Doshi",
];

#[derive(Debug, Clone, Copy)]
pub struct SeedOptions {
    pub customers: usize,
    pub seed: u64,
    /// Leave out damaged lines and the old `timeStamp` spelling, as in the
    /// public starter data (the benchmark's peers read it without quarantine).
    pub clean: bool,
}

/// What was written, per dataset: (objects, lines).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seeded {
    pub customer_lines: u64,
    pub accelerometer_lines: u64,
    pub step_trainer_lines: u64,
    pub objects: usize,
}

pub fn seed(store: &dyn Store, options: SeedOptions) -> Result<Seeded> {
    let chunks = options.customers.div_ceil(CHUNK);
    let shared = shared_serials(options.seed);
    let written: Vec<Seeded> = (0..chunks)
        .into_par_iter()
        .map(|k| {
            let first = k * CHUNK;
            let count = CHUNK.min(options.customers - first);
            let chunk = generate_chunk(options, k, first, count, &shared);
            for (&dataset, bytes) in Dataset::ALL.iter().zip(&chunk.objects) {
                let name = format!("{}-{}.json", dataset.dir(), 1_691_348_231_425 + k as i64);
                let key = format!("{}{name}", layout::landing_prefix(dataset));
                store.put(&key, bytes)?;
            }
            Ok(Seeded {
                customer_lines: chunk.lines[0],
                accelerometer_lines: chunk.lines[1],
                step_trainer_lines: chunk.lines[2],
                objects: 3,
            })
        })
        .collect::<Result<_>>()?;
    Ok(written.into_iter().fold(Seeded::default(), |a, b| Seeded {
        customer_lines: a.customer_lines + b.customer_lines,
        accelerometer_lines: a.accelerometer_lines + b.accelerometer_lines,
        step_trainer_lines: a.step_trainer_lines + b.step_trainer_lines,
        objects: a.objects + b.objects,
    }))
}

fn uuid(rng: &mut fastrand::Rng) -> String {
    let a = rng.u128(..);
    let h = format!("{a:032x}");
    format!(
        "{}-{}-4{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[16..20],
        &h[20..32]
    )
}

fn shared_serials(seed: u64) -> Vec<String> {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5e41_a15e);
    (0..SHARED_SERIALS).map(|_| uuid(&mut rng)).collect()
}

/// One chunk's three landing objects (customer, accelerometer, step trainer).
struct Chunk {
    objects: [Vec<u8>; 3],
    lines: [u64; 3],
    /// About one line in this many is damaged (none when 0).
    damage_one_in: u16,
}

const CUSTOMER: usize = 0;
const ACCELEROMETER: usize = 1;
const STEP_TRAINER: usize = 2;

impl Chunk {
    /// Writes one line to `object`, damaged now and then in one of the ways real feeds are.
    fn line(
        &mut self,
        object: usize,
        rng: &mut fastrand::Rng,
        write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>,
    ) {
        let buf = &mut self.objects[object];
        let start = buf.len();
        write(buf).expect("writing to a Vec cannot fail");
        if self.damage_one_in > 0 && rng.u16(..self.damage_one_in) == 0 {
            damage(buf, start, rng);
        }
        buf.push(b'\n');
        self.lines[object] += 1;
    }
}

/// A customer's device session: readings at `start + j * interval`.
#[derive(Clone, Copy)]
struct Session {
    start: i64,
    interval: i64,
    steps: i64,
}

fn generate_chunk(
    options: SeedOptions,
    k: usize,
    first: usize,
    count: usize,
    shared: &[String],
) -> Chunk {
    let mut rng = fastrand::Rng::with_seed(
        options
            .seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(k as u64),
    );
    let mut out = Chunk {
        objects: [
            Vec::with_capacity(count * 330),
            Vec::with_capacity(count * 85 * 80),
            Vec::with_capacity(count * 30 * 100),
        ],
        lines: [0; 3],
        damage_one_in: if options.clean { 0 } else { 500 },
    };
    // Older copies of the public data spell the accelerometer field `timeStamp`.
    let time_key = if k % 4 == 3 && !options.clean {
        "timeStamp"
    } else {
        "timestamp"
    };
    let mut later_records = Vec::new();
    // (serial, session) of earlier customers sharing a serial, to overlap with.
    let mut shared_sessions: Vec<(usize, Session)> = Vec::new();

    for i in first..first + count {
        let (first_name, last_name) = (
            FIRST[rng.usize(..FIRST.len())],
            LAST[rng.usize(..LAST.len())],
        );
        let email = format!("{first_name}.{last_name}{i}@test.com");
        let birthday = match rng.u8(..10) {
            0 => "1399-01-01".to_string(),
            1 => "1900-01-01".to_string(),
            2 => format!("{}-01-01", rng.u16(900..1000)),
            _ => format!(
                "{}-{:02}-{:02}",
                rng.u16(1000..2005),
                rng.u8(1..13),
                rng.u8(1..29)
            ),
        };
        let shared_index = (rng.u8(..100) < 35).then(|| rng.usize(..shared.len()));
        let serial = shared_index.map_or_else(|| uuid(&mut rng), |s| shared[s].clone());

        // Each chunk has its own time span, so counts scale with the customers.
        let span = T0 + k as i64 * 100_000_000;
        let mut session = Session {
            start: span + rng.i64(0..40_000) * 1000 + rng.i64(0..1000),
            interval: [4000, 5000, 6000, 7000, 8000][rng.usize(..5)],
            steps: rng.i64(24..37),
        };
        if rng.u8(..100) < 3 {
            // Different users share timestamps: snap onto a coarse grid.
            session.start = span + rng.i64(0..400) * 1000;
            session.interval = 6000;
        }
        if let Some(s) = shared_index {
            // Some customers of a reused serial ride together: ambiguous pairings.
            if let Some((_, other)) = shared_sessions
                .iter()
                .find(|(o, _)| *o == s)
                .filter(|_| rng.u8(..100) < 25)
            {
                session = *other;
            } else {
                shared_sessions.push((s, session));
            }
        }
        // Readings start about two minutes before consent.
        let registration = session.start - rng.i64(60_000..3_600_000);
        let consent = (rng.u8(..100) < 52).then(|| session.start + rng.i64(60_000..150_000));
        let record = CustomerRecord {
            name: format!("{first_name} {last_name}"),
            email: email.clone(),
            birthday,
            serial: serial.clone(),
            registration,
            last_update: registration,
            research: consent.map_or(Share::Absent, Share::At),
            public: if rng.bool() {
                Share::At(registration)
            } else {
                Share::Absent
            },
            friends: if rng.bool() {
                Share::At(registration)
            } else {
                Share::Absent
            },
        };
        let research = match record.research {
            // Optional fields are mostly absent, sometimes an explicit null.
            Share::Absent if rng.u8(..4) == 0 => Share::Null,
            other => other,
        };
        let record = CustomerRecord { research, ..record };
        match rng.u8(..100) {
            // A later record without consent revokes it.
            0..=2 => later_records.push(CustomerRecord {
                last_update: record.last_update + 86_400_000,
                research: Share::Absent,
                ..record.clone()
            }),
            // A later record grants consent after the readings.
            3..=5 => later_records.push(CustomerRecord {
                last_update: record.last_update + 86_400_000,
                research: Share::At(session.start + session.interval * session.steps + 60_000),
                ..record.clone()
            }),
            // The website sent the same record twice.
            6..=7 => later_records.push(record.clone()),
            _ => {}
        }
        out.line(CUSTOMER, &mut rng, |buf| record.write(buf));

        if rng.u8(..100) < 92 {
            for j in 0..session.steps {
                let t = session.start + j * session.interval;
                out.line(
                    STEP_TRAINER,
                    &mut rng,
                    |buf| {
                        write!(
                            buf,
                            r#"{{"sensorReadingTime":{t},"serialNumber":"{serial}","distanceFromObject":{}}}"#,
                            rng_distance(t)
                        )
                    },
                );
                // Each reading time repeats about three times in the accelerometer feed.
                for _ in 0..[2, 3, 3, 4][rng.usize(..4)] {
                    let (x, y, z) = (axis(&mut rng), axis(&mut rng), axis(&mut rng));
                    out.line(
                        ACCELEROMETER,
                        &mut rng,
                        |buf| {
                            write!(
                                buf,
                                r#"{{"user":"{email}","{time_key}":{t},"x":{x:.1},"y":{y:.1},"z":{z:.1}}}"#
                            )
                        },
                    );
                }
            }
        }
    }
    for record in later_records {
        out.line(CUSTOMER, &mut rng, |buf| record.write(buf));
    }
    out
}

/// A deterministic distance for a reading time (the sensor's value itself is not under test).
fn rng_distance(t: i64) -> i64 {
    200 + (t / 7) % 120
}

fn axis(rng: &mut fastrand::Rng) -> f64 {
    [-1.0, 0.0, 1.0][rng.usize(..3)]
}

fn damage(buf: &mut Vec<u8>, start: usize, rng: &mut fastrand::Rng) {
    let line = buf[start..].to_vec();
    let text = String::from_utf8(line).expect("generated lines are UTF-8");
    let damaged: Vec<u8> = match rng.u8(..6) {
        // Truncated mid-object.
        0 => text.as_bytes()[..text.len() / 2].to_vec(),
        // A number sent as a string.
        1 => replace_first_number(&text).into_bytes(),
        // A required field dropped.
        2 => text
            .replacen("\"serialNumber\"", "\"serial\"", 1)
            .replacen("\"user\"", "\"usr\"", 1)
            .replacen("\"email\"", "\"mail\"", 1)
            .into_bytes(),
        // A byte that is not UTF-8.
        3 => {
            let mut bytes = text.into_bytes();
            let at = bytes.len() / 3;
            bytes[at] = 0xff;
            bytes
        }
        // Not an object at all.
        4 => b"[\"not\", \"an\", \"object\"]".to_vec(),
        // A required field null.
        _ => text
            .replacen(
                "\"distanceFromObject\":",
                "\"distanceFromObject\":null,\"_was\":",
                1,
            )
            .replacen("\"x\":", "\"x\":null,\"_x\":", 1)
            .replacen("\"lastUpdateDate\":", "\"lastUpdateDate\":null,\"_l\":", 1)
            .into_bytes(),
    };
    buf.truncate(start);
    buf.extend_from_slice(&damaged);
}

fn replace_first_number(text: &str) -> String {
    for (i, _) in text.match_indices(':') {
        let rest = text[i + 1..].trim_start();
        if rest.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
            let start = text.len() - rest.len();
            let end = rest.find([',', '}']).map_or(text.len(), |e| start + e);
            return format!(
                "{}\"{}\"{}",
                &text[..start],
                &text[start..end],
                &text[end..]
            );
        }
    }
    text.to_string()
}

#[derive(Clone, Copy)]
enum Share {
    Absent,
    Null,
    At(i64),
}

#[derive(Clone)]
struct CustomerRecord {
    name: String,
    email: String,
    birthday: String,
    serial: String,
    registration: i64,
    last_update: i64,
    research: Share,
    public: Share,
    friends: Share,
}

impl CustomerRecord {
    fn write(&self, buf: &mut Vec<u8>) -> std::io::Result<()> {
        write!(
            buf,
            r#"{{"customerName": "{}", "email": "{}", "phone": "8015551212", "birthDay": "{}", "serialNumber": "{}", "registrationDate": {}, "lastUpdateDate": {}"#,
            self.name, self.email, self.birthday, self.serial, self.registration, self.last_update
        )?;
        for (key, share) in [
            ("shareWithResearchAsOfDate", self.research),
            ("shareWithPublicAsOfDate", self.public),
            ("shareWithFriendsAsOfDate", self.friends),
        ] {
            match share {
                Share::Absent => {}
                Share::Null => write!(buf, r#", "{key}": null"#)?,
                Share::At(t) => write!(buf, r#", "{key}": {t}"#)?,
            }
        }
        buf.write_all(b"}")
    }
}
