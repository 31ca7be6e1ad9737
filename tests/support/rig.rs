//! The acceptance rig as tests see it: `$LAB_CACHE/rig.env`, written by `acceptance-tests/rig.sh up`.
//! A test that needs the rig fails with the reason when it is not up (no silent skip).
//! Shared by the backend tests and the acceptance tests (`#[path]` module).
#![allow(dead_code)] // each user needs a different part

use std::collections::HashMap;
use std::path::PathBuf;

pub fn rig_env_file() -> PathBuf {
    let cache = std::env::var("LAB_CACHE").unwrap_or_else(|_| "/var/tmp/lab-cache".into());
    let env = PathBuf::from(cache).join("rig.env");
    assert!(
        env.exists(),
        "acceptance rig is not up: {} is missing. Run `acceptance-tests/rig.sh up` first (scripts/test.sh does).",
        env.display()
    );
    env
}

/// Every `export NAME=value` (or `'value'`) of rig.env.
pub fn rig_vars() -> HashMap<String, String> {
    rig_vars_in(&rig_env_file())
}

/// Every `export NAME=value` (or `'value'`) of the rig.env at `path` (a rig other than `$LAB_CACHE`'s).
pub fn rig_vars_in(path: &std::path::Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches(|c| c == '\'' || c == '"').to_string()))
        .collect()
}

pub fn rig_var(name: &str) -> String {
    rig_vars().remove(name).unwrap_or_else(|| panic!("rig.env does not export {name}"))
}
