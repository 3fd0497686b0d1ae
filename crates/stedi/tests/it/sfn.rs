//! An execution history (as GetExecutionHistory returns it) becomes the
//! states' timeline the run page draws.

use aws_sdk_sfn::primitives::DateTime;
use aws_sdk_sfn::types::{
    ExecutionFailedEventDetails, HistoryEvent, HistoryEventType, StateEnteredEventDetails,
    StateExitedEventDetails, TaskFailedEventDetails,
};
use serde_json::json;
use stedi::asl::Outcome;
use stedi::sfn::timeline_of;
use zones::Table;

fn at(seconds: f64) -> DateTime {
    DateTime::from_secs_f64(1_800_000_000.0 + seconds)
}

fn event(
    id: i64,
    seconds: f64,
    ty: HistoryEventType,
) -> aws_sdk_sfn::types::builders::HistoryEventBuilder {
    HistoryEvent::builder()
        .id(id)
        .timestamp(at(seconds))
        .r#type(ty)
}

fn entered(id: i64, seconds: f64, name: &str) -> HistoryEvent {
    event(id, seconds, HistoryEventType::TaskStateEntered)
        .state_entered_event_details(
            StateEnteredEventDetails::builder()
                .name(name)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

fn exited(id: i64, seconds: f64, name: &str, output: serde_json::Value) -> HistoryEvent {
    event(id, seconds, HistoryEventType::TaskStateExited)
        .state_exited_event_details(
            StateExitedEventDetails::builder()
                .name(name)
                .output(output.to_string())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

fn task_failed(id: i64, seconds: f64, error: &str) -> HistoryEvent {
    event(id, seconds, HistoryEventType::TaskFailed)
        .task_failed_event_details(
            TaskFailedEventDetails::builder()
                .resource_type("lambda")
                .resource("invoke")
                .error(error)
                .cause(format!("{error} happened"))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

fn customer_trusted() -> serde_json::Value {
    json!({
        "transition": "customer_trusted", "policy": "strict",
        "table": { "table": "customer_trusted", "location": "customer/trusted/r/", "snapshot": "r", "rows": 5, "columns": [] },
        "quarantine": null, "rubric": null,
        "counts": { "input": 9, "kept": 5, "dropped": { "no_research_consent": 4 } },
        "seconds": 1.5, "peak_rss_mib": null
    })
}

#[test]
fn retried_caught_and_failed_states_from_a_history() {
    let events = vec![
        event(1, 0.0, HistoryEventType::ExecutionStarted)
            .build()
            .unwrap(),
        entered(2, 0.0, "Start"),
        exited(3, 0.1, "Start", json!({ "policy": "strict" })),
        entered(4, 0.1, "CustomerTrusted"),
        task_failed(5, 1.0, "Stedi.Transient"),
        event(6, 2.0, HistoryEventType::TaskSucceeded)
            .build()
            .unwrap(),
        exited(
            7,
            2.1,
            "CustomerTrusted",
            json!({ "results": { "customer_trusted": customer_trusted() } }),
        ),
        entered(8, 2.1, "AccelerometerTrusted"),
        task_failed(9, 3.0, "Stedi.InvalidInput"),
        exited(
            10,
            3.0,
            "AccelerometerTrusted",
            json!({ "error": { "Error": "Stedi.InvalidInput" } }),
        ),
        entered(11, 3.0, "RunFailed"),
        event(12, 3.1, HistoryEventType::ExecutionFailed)
            .execution_failed_event_details(
                ExecutionFailedEventDetails::builder()
                    .error("Stedi.InvalidInput")
                    .cause("no accelerometer data")
                    .build(),
            )
            .build()
            .unwrap(),
    ];
    let (timeline, results) = timeline_of(&events);
    let names: Vec<&str> = timeline.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Start",
            "CustomerTrusted",
            "AccelerometerTrusted",
            "RunFailed"
        ]
    );
    assert_eq!(timeline[0].outcome, Outcome::Succeeded);
    assert_eq!(timeline[1].outcome, Outcome::Succeeded);
    assert_eq!(timeline[1].retries, 1);
    assert!((timeline[1].seconds - 2.0).abs() < 1e-6);
    assert!((timeline[1].started.as_secs_f64() - 0.1).abs() < 1e-6);
    match &timeline[2].outcome {
        Outcome::Caught(f) => assert_eq!(f.error, "Stedi.InvalidInput"),
        other => panic!("{other:?}"),
    }
    assert_eq!(timeline[2].retries, 0);
    match &timeline[3].outcome {
        Outcome::Failed(f) => {
            assert_eq!(f.error, "Stedi.InvalidInput");
            assert_eq!(f.cause, "no accelerometer data");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(results[&Table::CustomerTrusted].counts.kept, 5);
}
