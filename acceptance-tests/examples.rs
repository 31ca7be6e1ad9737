//! Every example under `examples/` is valid HCL for this provider's schema, as `terraform validate`
//! sees it: the registry docs and the README point users at these files. Needs no rig: validate
//! calls the provider's schema and ValidateResourceConfig, nothing else.

mod support;

use std::path::Path;

use support::{Workspace, repo_root};

const REQUIRED_PROVIDERS: &str =
    "terraform {\n  required_providers {\n    lab = { source = \"classroom/lab\" }\n  }\n}\n";

fn validates(example: &Path) {
    let ws = Workspace::copy_of(example);
    let has_terraform_block = std::fs::read_dir(ws.path())
        .expect("workspace")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .any(|text| text.contains("required_providers"));
    if !has_terraform_block {
        ws.write("versions.tf", REQUIRED_PROVIDERS);
    }
    // The terminal examples read a key file; validate wants it to exist and be a key.
    std::fs::create_dir_all(ws.path().join("keys")).expect("keys dir");
    let key = ws.path().join("keys/student_ed25519");
    let keygen = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen runs");
    assert!(keygen.success(), "ssh-keygen failed");
    let run = ws.terraform(&["validate", "-no-color"]);
    assert_eq!(run.code, 0, "{} does not validate:\n{}\n{}", example.display(), run.stdout, run.stderr);
    assert!(run.stdout.contains("Success!"), "{}", run.stdout);
}

#[test]
fn every_example_validates() {
    let examples = repo_root().join("examples");
    let mut dirs = vec![examples.join("provider")];
    for group in ["resources", "data-sources"] {
        if let Ok(entries) = std::fs::read_dir(examples.join(group)) {
            dirs.extend(entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()));
        }
    }
    for name in ["roster", "classroom", "classroom-hosts", "scheduled-destroy", "idle-stop", "multi-vm-lab"] {
        dirs.push(examples.join(name));
    }
    dirs.sort();
    assert!(dirs.len() >= 7, "examples found: {dirs:?}");
    for dir in &dirs {
        validates(dir);
    }
}
