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
