use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use stedi::asl::{Event, Failure, Interpreter, Invoker, Outcome};

/// An invoker that answers from a closure and records every call.
pub struct Fake<F> {
    answer: F,
    pub calls: Mutex<Vec<(String, Value)>>,
}

impl<F: Fn(&str, &Value, usize) -> Result<Value, Failure> + Sync> Invoker for Fake<F> {
    fn invoke(&self, resource: &str, input: Value) -> Result<Value, Failure> {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push((resource.to_string(), input.clone()));
            calls.len() - 1
        };
        (self.answer)(resource, &input, n)
    }
}

impl<F> Fake<F> {
    pub fn calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().unwrap().clone()
    }
}

pub fn fake<F: Fn(&str, &Value, usize) -> Result<Value, Failure> + Sync>(answer: F) -> Fake<F> {
    Fake {
        answer,
        calls: Mutex::new(Vec::new()),
    }
}

fn execute(
    definition: Value,
    input: Value,
    invoker: &dyn Invoker,
) -> (Result<Value, Failure>, Vec<Event>) {
    let events = Mutex::new(Vec::new());
    let observer = |e: &Event| events.lock().unwrap().push(e.clone());
    let interpreter = Interpreter::new(invoker, &observer);
    let result = interpreter.execute(&definition, input);
    (result, events.into_inner().unwrap())
}

fn transient(n: &str) -> Failure {
    Failure {
        error: "Stedi.Transient".into(),
        cause: format!("hiccup {n}"),
    }
}

#[test]
fn tasks_pass_data_through_parameters_and_result_paths() {
    let definition = json!({
        "StartAt": "First",
        "States": {
            "First": {
                "Type": "Task", "Resource": "${A}",
                "Parameters": { "id.$": "$.run_id", "fixed": "x", "nested": { "p.$": "$.policy" } },
                "ResultSelector": { "rows.$": "$.rows" },
                "ResultPath": "$.results.first",
                "Next": "Second"
            },
            "Second": {
                "Type": "Task", "Resource": "${B}",
                "Parameters": { "prev.$": "$.results.first.rows" },
                "ResultPath": "$.results.second",
                "OutputPath": "$.results",
                "End": true
            }
        }
    });
    let invoker = fake(|resource, input, _| match resource {
        "${A}" => Ok(json!({ "rows": 7, "noise": true, "echo": input })),
        _ => Ok(json!({ "got": input["prev"] })),
    });
    let (result, events) = execute(
        definition,
        json!({ "run_id": "r1", "policy": "strict" }),
        &invoker,
    );
    assert_eq!(
        result.unwrap(),
        json!({ "first": { "rows": 7 }, "second": { "got": 7 } })
    );
    assert_eq!(
        invoker.calls()[0],
        (
            "${A}".to_string(),
            json!({ "id": "r1", "fixed": "x", "nested": { "p": "strict" } })
        )
    );
    let done: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Succeeded { state, .. } => Some(state.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(done, ["First", "Second"]);
}

#[test]
fn retry_backs_off_then_succeeds() {
    let definition = json!({
        "StartAt": "T",
        "States": { "T": {
            "Type": "Task", "Resource": "${A}",
            "Retry": [
                { "ErrorEquals": ["Stedi.InvalidInput"], "MaxAttempts": 0 },
                { "ErrorEquals": ["Stedi.Transient"], "IntervalSeconds": 0.004, "BackoffRate": 2.0, "MaxAttempts": 3, "MaxDelaySeconds": 0.006 }
            ],
            "End": true
        } }
    });
    let invoker = fake(|_, _, n| {
        if n < 3 {
            Err(transient(&n.to_string()))
        } else {
            Ok(json!("ok"))
        }
    });
    let (result, events) = execute(definition, json!({}), &invoker);
    assert_eq!(result.unwrap(), json!("ok"));
    let delays: Vec<Duration> = events
        .iter()
        .filter_map(|e| match e {
            Event::Retrying { delay, .. } => Some(*delay),
            _ => None,
        })
        .collect();
    // 0.004, 0.008 capped at 0.006, 0.016 capped at 0.006.
    assert_eq!(
        delays,
        [
            Duration::from_millis(4),
            Duration::from_millis(6),
            Duration::from_millis(6)
        ]
    );
    assert_eq!(invoker.calls().len(), 4);
}

#[test]
fn exhausted_retries_fall_to_catch_and_fail_records_the_cause() {
    let definition = json!({
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task", "Resource": "${A}",
                "Retry": [{ "ErrorEquals": ["Stedi.Transient"], "IntervalSeconds": 0, "MaxAttempts": 2 }],
                "Catch": [
                    { "ErrorEquals": ["Stedi.QualityGateFailed"], "Next": "Unreached" },
                    { "ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed" }
                ],
                "End": true
            },
            "Unreached": { "Type": "Succeed" },
            "Failed": { "Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause" }
        }
    });
    let invoker = fake(|_, _, n| Err(transient(&n.to_string())));
    let (result, events) = execute(definition, json!({ "run_id": "r" }), &invoker);
    assert_eq!(
        result.unwrap_err(),
        Failure {
            error: "Stedi.Transient".into(),
            cause: "hiccup 2".into()
        }
    );
    assert_eq!(invoker.calls().len(), 3, "one try and two retries");
    // The caught state is reported as caught, not as done.
    assert!(events.contains(&Event::Caught {
        state: "T".into(),
        error: "Stedi.Transient".into(),
        next: "Failed".into(),
    }));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Succeeded { state, .. } if state == "T")),
        "{events:?}"
    );
}

#[test]
fn uncaught_errors_fail_the_execution() {
    let definition = json!({ "StartAt": "T", "States": { "T": { "Type": "Task", "Resource": "${A}", "End": true } } });
    let invoker = fake(|_, _, _| {
        Err(Failure {
            error: "Stedi.InvalidInput".into(),
            cause: "no landing data".into(),
        })
    });
    let (result, events) = execute(definition, json!({}), &invoker);
    assert_eq!(result.unwrap_err().error, "Stedi.InvalidInput");
    assert_eq!(
        events.last(),
        Some(&Event::Failed {
            state: "T".into(),
            error: "Stedi.InvalidInput".into()
        })
    );
}

#[test]
fn choice_parallel_map_and_pass() {
    let definition = json!({
        "StartAt": "Route",
        "States": {
            "Route": {
                "Type": "Choice",
                "Choices": [
                    { "And": [
                        { "Variable": "$.policy", "StringEquals": "strict" },
                        { "Not": { "Variable": "$.n", "NumericGreaterThan": 5 } }
                    ], "Next": "Fan" }
                ],
                "Default": "Other"
            },
            "Other": { "Type": "Pass", "Result": "other", "End": true },
            "Fan": {
                "Type": "Parallel",
                "Branches": [
                    { "StartAt": "B1", "States": { "B1": { "Type": "Pass", "Parameters": { "b.$": "$.n" }, "End": true } } },
                    { "StartAt": "B2", "States": { "B2": { "Type": "Task", "Resource": "${A}", "End": true } } }
                ],
                "ResultPath": "$.branches",
                "Next": "Each"
            },
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": { "value.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index", "n.$": "$.n" },
                "ItemProcessor": { "StartAt": "Work", "States": { "Work": { "Type": "Task", "Resource": "${A}", "End": true } } },
                "ResultPath": "$.mapped",
                "Next": "Done"
            },
            "Done": { "Type": "Succeed", "OutputPath": "$" }
        }
    });
    let invoker = fake(|_, input, _| Ok(json!({ "saw": input })));
    let input = json!({ "policy": "strict", "n": 2, "items": ["a", "b"] });
    let (result, _) = execute(definition.clone(), input, &invoker);
    assert_eq!(
        result.unwrap(),
        json!({
            "policy": "strict", "n": 2, "items": ["a", "b"],
            "branches": [{ "b": 2 }, { "saw": { "policy": "strict", "n": 2, "items": ["a", "b"] } }],
            "mapped": [
                { "saw": { "value": "a", "index": 0, "n": 2 } },
                { "saw": { "value": "b", "index": 1, "n": 2 } }
            ]
        })
    );
    let (other, _) = execute(definition, json!({ "policy": "rubric", "n": 2 }), &invoker);
    assert_eq!(other.unwrap(), json!("other"));
}

#[test]
fn missing_paths_are_runtime_errors() {
    let definition = json!({
        "StartAt": "T",
        "States": { "T": { "Type": "Task", "Resource": "${A}", "Parameters": { "x.$": "$.absent" }, "End": true } }
    });
    let invoker = fake(|_, _, _| Ok(json!(null)));
    let (result, _) = execute(definition, json!({}), &invoker);
    let failure = result.unwrap_err();
    assert_eq!(failure.error, "States.Runtime");
    assert_eq!(
        failure.cause,
        "`x.$`: path `$.absent` does not select exactly one value of the input"
    );
}

#[test]
fn the_timeline_records_each_state_with_retries_and_caught_errors() {
    let definition = json!({
        "StartAt": "P",
        "States": {
            "P": { "Type": "Pass", "Next": "T" },
            "T": {
                "Type": "Task", "Resource": "${A}",
                "Retry": [{ "ErrorEquals": ["Stedi.Transient"], "IntervalSeconds": 0, "MaxAttempts": 1 }],
                "Catch": [{ "ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed" }],
                "End": true
            },
            "Failed": { "Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause" }
        }
    });
    let invoker = fake(|_, _, n| Err(transient(&n.to_string())));
    let observer = |_: &Event| {};
    let interpreter = Interpreter::new(&invoker, &observer);
    let result = interpreter.execute(&definition, json!({}));
    assert_eq!(result.unwrap_err().error, "Stedi.Transient");
    let timeline = interpreter.timeline();
    let names: Vec<&str> = timeline.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["P", "T", "Failed"]);
    assert_eq!(timeline[0].outcome, Outcome::Succeeded);
    assert_eq!(timeline[1].retries, 1);
    assert_eq!(timeline[1].outcome, Outcome::Caught(transient("1")));
    assert_eq!(timeline[2].outcome, Outcome::Failed(transient("1")));
    assert!(timeline[1].started <= timeline[2].started);
}

/// `States.StringToJson` turns a SAM substitution (text) into a number or
/// an object; what is not JSON, or not a string, is `States.IntrinsicFailure`.
#[test]
fn string_to_json_turns_a_substitution_into_a_value() {
    let definition = json!({
        "StartAt": "P",
        "States": { "P": { "Type": "Pass", "Parameters": {
            "n.$": "States.StringToJson('40')",
            "o.$": "States.StringToJson('{\"it\\'s\": [1, 2]}')",
            "p.$": "States.StringToJson($.text)"
        }, "End": true } }
    });
    let invoker = fake(|_, _, _| Ok(json!(null)));
    let (result, _) = execute(definition, json!({"text": "true"}), &invoker);
    assert_eq!(
        result.unwrap(),
        json!({"n": 40, "o": {"it's": [1, 2]}, "p": true})
    );
    for (call, error, why) in [
        (
            "States.StringToJson('4x')",
            "States.IntrinsicFailure",
            "States.StringToJson: `4x` is not JSON: trailing characters at line 1 column 2",
        ),
        (
            "States.StringToJson($.n)",
            "States.IntrinsicFailure",
            "States.StringToJson: takes one argument, a string",
        ),
    ] {
        let definition = json!({
            "StartAt": "P",
            "States": { "P": { "Type": "Pass", "Parameters": { "v.$": call }, "End": true } }
        });
        let (result, _) = execute(definition, json!({"n": 1}), &invoker);
        let failure = result.unwrap_err();
        assert_eq!(failure.error, error);
        assert_eq!(failure.cause, format!("`v.$`: {why}"));
    }
}

/// `States.Format` in Parameters: `{}` takes the next argument (a quoted
/// string, a number, a path into the input or the context), escapes keep
/// braces and quotes; a mismatch is `States.IntrinsicFailure`, any other
/// intrinsic a `States.Runtime` naming it.
#[test]
fn states_format_builds_strings_from_paths_and_literals() {
    let task = |template: &str| {
        json!({
            "StartAt": "T",
            "States": { "T": {
                "Type": "Task", "Resource": "${A}",
                "Parameters": { "text.$": template },
                "End": true
            } }
        })
    };
    let echo = fake(|_, input, _| Ok(input["text"].clone()));
    let run = |template: &str| {
        let events = Mutex::new(Vec::new());
        let observer = |e: &Event| events.lock().unwrap().push(e.clone());
        let interpreter = Interpreter::new(&echo, &observer).with_execution("r1", &json!({}));
        interpreter.execute(
            &task(template),
            json!({ "run": "r7", "n": 3, "ok": true, "o": {} }),
        )
    };
    assert_eq!(
        run("States.Format('warehouse/_map_results/{}/{}/', $.run, 'accelerometer_trusted')")
            .unwrap(),
        json!("warehouse/_map_results/r7/accelerometer_trusted/")
    );
    assert_eq!(
        run("States.Format('{} of {}, {}: {}', $.n, 12, $.ok, $$.Execution.Name)").unwrap(),
        json!("3 of 12, true: r1")
    );
    assert_eq!(
        run(r"States.Format('\{\}\'{}\\', 'x')").unwrap(),
        json!(r"{}'x\")
    );
    assert_eq!(run("States.Format('plain')").unwrap(), json!("plain"));
    for (template, cause) in [
        (
            "States.Format('{} {}', $.n)",
            "more {} in the template than arguments",
        ),
        (
            "States.Format('{}', $.n, $.n)",
            "more arguments than {} in the template",
        ),
        (
            "States.Format('{}', $.o)",
            "an argument is {}, not a string",
        ),
        ("States.Format('{})", "an unterminated string"),
        (
            "States.Format($.run)",
            "the first argument must be a quoted template",
        ),
        (r"States.Format('\n')", r"`\n` is not an escape"),
    ] {
        let failure = run(template).unwrap_err();
        assert_eq!(failure.error, "States.IntrinsicFailure", "{template}");
        assert!(
            failure.cause.contains(cause),
            "{template}: {}",
            failure.cause
        );
    }
    let failure = run("States.UUID()").unwrap_err();
    assert_eq!(
        (failure.error.as_str(), failure.cause.as_str()),
        (
            "States.Runtime",
            "`text.$`: `States.UUID()` is neither a path nor States.Format(...) or States.StringToJson(...), the intrinsic functions the local runner knows"
        )
    );
}
