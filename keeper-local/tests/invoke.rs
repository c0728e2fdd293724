//! The README's first command, `make demo` (`keeper-local invoke`), as a new user runs it: the human part on stdout,
//! the machine lines on stderr.

use std::path::Path;
use std::process::Command;

#[test]
fn given_the_demo_event_when_invoked_then_stdout_is_for_a_person_and_the_machine_lines_are_on_stderr() {
    // GIVEN the demo's defaults (Makefile: FUNCTION, DEMO_EVENT), run from the repository root, output to a pipe
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the repository root");
    let out = Command::new(env!("CARGO_BIN_EXE_keeper-local"))
        .args(["invoke", "start-idle-image-builders", "events/start-idle-image-builders/manual-start.json"])
        .current_dir(root)
        .env("AWS_LAMBDA_LOG_LEVEL", "info")
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .output()
        .expect("keeper-local runs");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    let stderr = String::from_utf8(out.stderr).expect("UTF-8");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // THEN stdout has the report, the calls, the metrics and the changes, in that order
    let sections =
        ["== report", "== calls to the emulated account", "== metrics", "== changes in the emulated account"];
    let at: Vec<usize> =
        sections.iter().map(|s| stdout.find(s).unwrap_or_else(|| panic!("{s} in\n{stdout}"))).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{stdout}");
    assert!(stdout.contains("StartImageBuilder"), "the demo starts a builder:\n{stdout}");
    assert!(stdout.contains("applied="), "{stdout}");
    // AND no machine line and no colour code reaches it
    assert!(!stdout.contains("\"_aws\""), "the EMF line is not for a person:\n{stdout}");
    assert!(!stdout.contains('\u{1b}'), "no escape codes in a pipe:\n{stdout:?}");
    // AND stderr carries the EMF line, whole, and the logs without colour codes
    let emf = stderr.lines().find(|l| l.contains("\"_aws\"")).unwrap_or_else(|| panic!("an EMF line in\n{stderr}"));
    let emf: serde_json::Value = serde_json::from_str(emf).expect("the EMF line is one JSON document");
    assert_eq!(emf["function"], "start-idle-image-builders");
    assert!(!stderr.contains('\u{1b}'), "no escape codes when stderr is not a terminal:\n{stderr:?}");
}

#[test]
fn given_an_invalid_request_when_invoked_then_it_exits_1_and_a_missing_event_file_exits_2() {
    // GIVEN a request the function refuses (no names, no tags), and an event file that does not exist
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the repository root");
    let dir = std::env::temp_dir().join(format!("keeper-local-invoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let invalid = dir.join("invalid.json");
    std::fs::write(&invalid, r#"{"action": "start", "names": []}"#).expect("the event file");
    let run = |event: &Path| {
        Command::new(env!("CARGO_BIN_EXE_keeper-local"))
            .args(["invoke", "start-idle-image-builders"])
            .arg(event)
            .current_dir(root)
            .env_remove("RUST_LOG")
            .output()
            .expect("keeper-local runs")
    };
    // WHEN each is invoked
    let refused = run(&invalid);
    let missing = run(&dir.join("missing.json"));
    // THEN the refusal is printed as the report and the status is 1; the file that cannot be read is 2
    let stdout = String::from_utf8_lossy(&refused.stdout);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("Permanent.InvalidInput"), "{stdout}");
    assert!(stderr.contains("the invocation failed: Permanent.InvalidInput"), "{stderr}");
    assert_eq!(missing.status.code(), Some(2), "{}", String::from_utf8_lossy(&missing.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}
