use zones::Dataset;
use zones::schema::{ColumnType, LandingSchema};

#[test]
fn landing_schemas_come_from_the_athena_ddl() {
    let customer = Dataset::Customer.landing_schema();
    assert_eq!(customer.table, "customer_landing");
    let names: Vec<_> = customer.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "customerName",
            "email",
            "phone",
            "birthDay",
            "serialNumber",
            "registrationDate",
            "lastUpdateDate",
            "shareWithResearchAsOfDate",
            "shareWithPublicAsOfDate",
            "shareWithFriendsAsOfDate"
        ]
    );
    let optional: Vec<_> = customer
        .columns
        .iter()
        .filter(|c| c.optional)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        optional,
        [
            "shareWithResearchAsOfDate",
            "shareWithPublicAsOfDate",
            "shareWithFriendsAsOfDate"
        ]
    );

    let acc = Dataset::Accelerometer.landing_schema();
    let typed: Vec<_> = acc
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.ty, c.optional))
        .collect();
    assert_eq!(
        typed,
        [
            ("user", ColumnType::String, false),
            ("timestamp", ColumnType::BigInt, false),
            ("x", ColumnType::Double, false),
            ("y", ColumnType::Double, false),
            ("z", ColumnType::Double, false),
        ]
    );
    let step = Dataset::StepTrainer.landing_schema();
    assert_eq!(
        step.columns[2].ty,
        ColumnType::Int,
        "distanceFromObject is an int, not a string"
    );
}

#[test]
fn ddl_errors_name_the_problem() {
    let err = LandingSchema::from_ddl("CREATE EXTERNAL TABLE t (\n  `a` varchar\n)\n").unwrap_err();
    assert_eq!(err, "column `a` has unsupported type `varchar`");
    let err = LandingSchema::from_ddl("SELECT 1").unwrap_err();
    assert_eq!(err, "no CREATE EXTERNAL TABLE statement");
}
