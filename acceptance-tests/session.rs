//! lab_session through the real terraform: for_each over 200 students, empty re-plan, update in
//! place, replacement, `import {}` blocks, plan-time diagnostics naming the attribute, destroy; and
//! `examples/roster` itself with a roster of 200.
//! Needs no rig: sessions without a `dns` block touch nothing outside the provider.

mod support;

use std::collections::HashSet;

use support::{Workspace, plan_counts};

fn sessions(ws: &Workspace) -> serde_json::Map<String, serde_json::Value> {
    ws.output_json()["sessions"]["value"].as_object().expect("sessions output").clone()
}

#[test]
fn session_lifecycle_200_students() {
    let ws = Workspace::new("session");

    let apply = ws.apply(&[]);
    assert!(apply.stdout.contains("200 added"), "{}", apply.stdout);
    let first = sessions(&ws);
    assert_eq!(first.len(), 200);
    let ids: HashSet<&str> = first.values().map(|s| s["id"].as_str().expect("id")).collect();
    assert_eq!(ids.len(), 200, "session ids must be unique");
    for s in first.values() {
        let id = s["id"].as_str().unwrap();
        assert!(id.len() == 8 && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{id}");
        assert_eq!(s["hostname"], format!("lab-{id}.lab.example.edu"));
        assert_eq!(s["expired"], false);
    }
    let urls = ws.output_json()["urls"]["value"].clone();
    assert_eq!(urls["student007"], format!("https://{}", first["student007"]["hostname"].as_str().unwrap()));

    // No perpetual diff.
    let plan = ws.plan();
    assert_eq!(plan.code, 0, "second plan not empty:\n{}\n{}", plan.stdout, plan.stderr);

    // ttl updates in place and moves expires_at; the id stays.
    let ttl_override = r#"-var=overrides={"student001"={ttl="90m"}}"#;
    let plan = ws.terraform(&["plan", "-no-color", ttl_override]).ok("plan ttl change");
    assert_eq!(plan_counts(&plan.stdout), (0, 1, 0), "{}", plan.stdout);
    ws.apply(&[ttl_override]);
    let after = sessions(&ws);
    assert_eq!(after["student001"]["id"], first["student001"]["id"]);
    assert_eq!(after["student001"]["created_at"], first["student001"]["created_at"]);
    assert_ne!(after["student001"]["expires_at"], first["student001"]["expires_at"]);

    // A new student replaces the session: new id, new URL.
    let both = r#"-var=overrides={"student001"={ttl="90m"},"student002"={student="grace@example.edu"}}"#;
    let plan = ws.terraform(&["plan", "-no-color", both]).ok("plan student change");
    assert_eq!(plan_counts(&plan.stdout), (1, 0, 1), "{}", plan.stdout);
    assert!(plan.stdout.contains("forces replacement"), "{}", plan.stdout);
    ws.apply(&[both]);
    let replaced = sessions(&ws);
    assert_ne!(replaced["student002"]["id"], first["student002"]["id"]);
    let plan = ws.terraform(&["plan", "-detailed-exitcode", "-no-color", both]);
    assert_eq!(plan.code, 0, "plan after replacement not empty:\n{}", plan.stdout);

    ws.destroy();
    assert!(ws.state_list().is_empty(), "destroy left resources in state");
}

#[test]
fn session_import_block_adopts_an_existing_id() {
    let ws = Workspace::new("session-bad");
    ws.apply(&[]);
    let id = ws.state_resources()[0]["values"]["id"].as_str().expect("id").to_string();
    ws.terraform(&["state", "rm", "lab_session.one"]).ok("state rm");

    ws.write("import.tf", &format!("import {{\n  to = lab_session.one\n  id = \"{id}\"\n}}\n"));
    let plan = ws.terraform(&["plan", "-no-color"]).ok("plan import");
    assert!(plan.stdout.contains("1 to import"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("must be replaced"), "import must adopt, not replace:\n{}", plan.stdout);
    ws.apply(&[]);
    assert_eq!(ws.state_resources()[0]["values"]["id"], id.as_str());
    ws.remove("import.tf");
    let plan = ws.plan();
    assert_eq!(plan.code, 0, "plan after import not empty:\n{}", plan.stdout);
    ws.destroy();
}

#[test]
fn bad_inputs_are_plan_time_errors_naming_the_attribute() {
    let ws = Workspace::new("session-bad");
    let cases = [
        ("-var=ttl=4 parsecs", "Invalid ttl", "ttl     = var.ttl", "`parsecs` is not a unit of time"),
        ("-var=student=", "Empty student", "student = var.student", "must name the student"),
    ];
    for (var, summary, source_line, detail) in cases {
        let plan = ws.terraform(&["plan", "-no-color", var]);
        assert_eq!(plan.code, 1, "plan with {var} should fail:\n{}", plan.stdout);
        // Terraform quotes the offending line of the configuration when the diagnostic carries
        // the attribute path.
        for expected in [summary, source_line, detail] {
            assert!(plan.stderr.contains(expected), "missing {expected:?} for {var}:\n{}", plan.stderr);
        }
    }
    assert!(ws.state_list().is_empty(), "a failed plan must not create anything");
}

/// The example an instructor starts from, unchanged but for a CSV of 200 students.
#[test]
fn roster_example_with_200_students_applies_replans_empty_and_destroys() {
    let ws = Workspace::example("roster");
    let mut csv = String::from("email,name,ttl\n");
    for i in 0..200 {
        csv.push_str(&format!("student{i:03}@example.edu,Student {i},4h\n"));
    }
    ws.write("students.csv", &csv);

    let apply = ws.apply(&[]);
    assert!(apply.stdout.contains("200 added"), "{}", apply.stdout);
    let urls = ws.output_json()["urls"]["value"].as_object().expect("urls output").clone();
    assert_eq!(urls.len(), 200);
    let url = urls["student042@example.edu"].as_str().expect("url");
    let id = url.strip_prefix("https://lab-").and_then(|u| u.strip_suffix(".lab.localhost")).expect(url);
    assert!(id.len() == 8 && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{url}");

    let plan = ws.plan();
    assert_eq!(plan.code, 0, "second plan not empty:\n{}\n{}", plan.stdout, plan.stderr);

    ws.destroy();
    assert_eq!(ws.state_list(), Vec::<String>::new(), "destroy leaves an empty state");
}
