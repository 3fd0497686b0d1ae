use lakehouse::LocalStore;
use stedi::seed::{SeedOptions, seed};

fn files(root: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for dataset in ["customer", "accelerometer", "step_trainer"] {
        let dir = root.join(dataset).join("landing");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for path in names {
            out.push((
                path.strip_prefix(root).unwrap().display().to_string(),
                std::fs::read(&path).unwrap(),
            ));
        }
    }
    out
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let options = SeedOptions {
        customers: 2500,
        seed: 7,
        clean: false,
    };
    let written = seed(&LocalStore::new(a.path()), options).unwrap();
    seed(&LocalStore::new(b.path()), options).unwrap();
    seed(
        &LocalStore::new(c.path()),
        SeedOptions { seed: 8, ..options },
    )
    .unwrap();
    assert_eq!(files(a.path()), files(b.path()));
    assert_ne!(files(a.path()), files(c.path()));
    // Three chunks of at most 1000 customers, one object per dataset each.
    assert_eq!(written.objects, 9);
    assert_eq!(files(a.path()).len(), 9);
}

#[test]
fn generated_data_has_the_known_defects() {
    let dir = tempfile::tempdir().unwrap();
    seed(
        &LocalStore::new(dir.path()),
        SeedOptions {
            customers: 4000,
            seed: 1,
            clean: false,
        },
    )
    .unwrap();
    let all = files(dir.path());
    let text = |prefix: &str| -> String {
        all.iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .collect()
    };
    let customers = text("customer/");
    let accelerometer = text("accelerometer/");
    assert!(customers.contains("\"birthDay\": \"1399-01-01\""));
    assert!(customers.contains("\"birthDay\": \"1900-01-01\""));
    assert!(
        customers
            .lines()
            .any(|l| !l.contains("shareWithResearchAsOfDate")),
        "consent absent"
    );
    assert!(
        customers.contains("\"shareWithResearchAsOfDate\": null"),
        "consent null"
    );
    assert!(accelerometer.contains("\"timeStamp\":"), "the old spelling");
    assert!(accelerometer.contains("\"timestamp\":"));
    assert!(
        all.iter().any(|(_, b)| std::str::from_utf8(b).is_err()),
        "a line that is not UTF-8"
    );
    // The 30 reused serial numbers: some serial belongs to several emails.
    let mut owners: std::collections::HashMap<&str, std::collections::HashSet<&str>> =
        Default::default();
    for line in customers
        .lines()
        .filter(|l| l.contains("\"serialNumber\"") && l.contains("\"email\""))
    {
        let field = |k: &str| {
            line.split(&format!("\"{k}\": \""))
                .nth(1)
                .and_then(|r| r.split('"').next())
        };
        if let (Some(serial), Some(email)) = (field("serialNumber"), field("email")) {
            owners.entry(serial).or_default().insert(email);
        }
    }
    let shared = owners.values().filter(|emails| emails.len() > 1).count();
    assert_eq!(shared, 30, "exactly the 30 reused serials are shared");
}

#[test]
fn clean_data_has_no_damaged_lines() {
    let dir = tempfile::tempdir().unwrap();
    seed(
        &LocalStore::new(dir.path()),
        SeedOptions {
            customers: 3000,
            seed: 1,
            clean: true,
        },
    )
    .unwrap();
    for (name, bytes) in files(dir.path()) {
        let text = std::str::from_utf8(&bytes).unwrap_or_else(|_| panic!("{name} is not UTF-8"));
        assert!(!text.contains("timeStamp"), "{name}");
        for line in text.lines() {
            let value: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}: {line}"));
            assert!(value.is_object());
        }
    }
}
