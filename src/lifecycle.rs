//! Shared lifecycle helpers for all resources: create-with-rollback, wait-with-deadline,
//! ownership labels. One copy here instead of three in the resources.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::protocol::{Attr, AttrPath, Attribute, Block, Diagnostic, Diagnostics, NestedBlock, Nesting};
use crate::validate;

/// Label/marker every object the provider makes carries, so it is never confused with others.
pub const MANAGED_LABEL: &str = "lab.managed";

/// The `timeouts` of a resource: `create` and `delete` durations as the user wrote them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeouts {
    pub create: Attr<String>,
    pub delete: Attr<String>,
}

impl Timeouts {
    /// The `timeouts { create = "..", delete = ".." }` block of a resource; the descriptions give
    /// that resource's defaults and what each limit covers.
    pub fn block(create: &str, delete: &str) -> NestedBlock {
        NestedBlock {
            type_name: "timeouts".into(),
            // Terraform requires min == max for single blocks; 0/0 is "optional".
            nesting: Nesting::Single,
            min_items: 0,
            max_items: 0,
            block: Block {
                description: "Time limits, as durations like `\"90s\"`, `\"5m\"` or `\"1h30m\"`.".into(),
                attributes: vec![
                    Attribute::string("create").optional().description(create),
                    Attribute::string("delete").optional().description(delete),
                ],
                ..Default::default()
            },
        }
    }

    /// The create and delete limits, `defaults` where unset; a bad one is an error on
    /// `timeouts.<create|delete>`. Unknown values (not yet known at plan) count as unset.
    pub fn resolve(
        timeouts: Option<&Timeouts>,
        defaults: (Duration, Duration),
    ) -> Result<(Duration, Duration), Diagnostics> {
        let mut diags = Diagnostics::default();
        let mut one = |which: &str, value: Option<&Attr<String>>, default: Duration| match value.and_then(|v| v.known())
        {
            None => default,
            Some(text) => validate::check(&mut diags, AttrPath::root("timeouts").attr(which), validate::duration(text))
                .unwrap_or(default),
        };
        let create = one("create", timeouts.map(|t| &t.create), defaults.0);
        let delete = one("delete", timeouts.map(|t| &t.delete), defaults.1);
        diags.into_result().map(|()| (create, delete))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("timed out after {waited:?} waiting for {what}{}", last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default())]
    Timeout { what: String, waited: Duration, last_error: Option<String> },
    #[error("cancelled while waiting for {what}")]
    Cancelled { what: String },
}

/// Poll `probe` every `interval` until it returns `Ok(Some(v))`, the deadline passes or the
/// operation is cancelled (StopProvider). `Err(e)` from the probe is remembered and retried:
/// the last one is reported on timeout.
pub async fn wait_until<T, E, F, Fut>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    cancel: &CancellationToken,
    mut probe: F,
) -> Result<T, WaitError>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, E>>,
{
    let start = Instant::now();
    let mut last_error = None;
    loop {
        match probe().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_error = Some(e.to_string()),
        }
        if start.elapsed() >= timeout {
            return Err(WaitError::Timeout { what: what.to_string(), waited: start.elapsed(), last_error });
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(WaitError::Cancelled { what: what.to_string() }),
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

type UndoStep = std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

struct Step {
    what: String,
    /// How to remove it by hand when undoing fails (a command, or a sentence).
    by_hand: Option<String>,
    undo: UndoStep,
}

/// Undo steps recorded during a create; run in reverse order unless the create succeeded.
/// Each step is a boxed future so resources can mix backends.
///
/// One policy for a cleanup that fails (`finish`): the create's own error stays first, and each
/// step that could not be undone is one more *error* (a leak must not look like a warning) naming
/// what is left behind and how to remove it.
#[derive(Default)]
pub struct Rollback {
    steps: Vec<Step>,
}

impl Rollback {
    pub fn new() -> Self {
        Self::default()
    }
    /// Record how to undo a step that has just succeeded; `what` names the object it made.
    pub fn push(&mut self, what: impl Into<String>, undo: impl Future<Output = Result<(), String>> + Send + 'static) {
        self.steps.push(Step { what: what.into(), by_hand: None, undo: Box::pin(undo) });
    }
    /// `push`, with how to remove the object by hand, for the diagnostic when undoing fails.
    pub fn push_with_manual(
        &mut self,
        what: impl Into<String>,
        by_hand: impl Into<String>,
        undo: impl Future<Output = Result<(), String>> + Send + 'static,
    ) {
        self.steps.push(Step { what: what.into(), by_hand: Some(by_hand.into()), undo: Box::pin(undo) });
    }
    /// The create succeeded: forget the undo steps.
    pub fn commit(self) {}
    /// The end of a create: commits on `Ok`; on `Err` undoes everything, newest first, and
    /// appends an error for each step that could not be undone.
    pub async fn finish<T>(self, result: Result<T, Diagnostics>) -> Result<T, Diagnostics> {
        match result {
            Ok(value) => {
                self.commit();
                Ok(value)
            }
            Err(mut diags) => {
                for step in self.undo().await {
                    let (what, why, by_hand) = step;
                    let remove = by_hand.map_or_else(
                        || "Remove it by hand: Terraform does not track it.".to_string(),
                        |how| format!("Remove it by hand (Terraform does not track it): {how}"),
                    );
                    diags.push(Diagnostic::error(
                        format!("Cleanup after the failed create left {what} behind"),
                        format!("Undoing it failed: {why}. {remove}"),
                    ));
                }
                Err(diags)
            }
        }
    }
    /// (what, why undoing it failed, how to remove it by hand) of each step that failed.
    async fn undo(self) -> Vec<(String, String, Option<String>)> {
        let mut failures = Vec::new();
        for step in self.steps.into_iter().rev() {
            if let Err(why) = step.undo.await {
                failures.push((step.what, why, step.by_hand));
            }
        }
        failures
    }
}

/// A command line to show to a user (console, cleanup hints): each word single-quoted unless it
/// is made of characters no shell treats specially, so no input can break out of its word.
pub fn shell_command<S: AsRef<str>>(words: impl IntoIterator<Item = S>) -> String {
    words.into_iter().map(|w| shell_quote(w.as_ref())).collect::<Vec<_>>().join(" ")
}

fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=@+,%".contains(&b));
    if plain { word.to_string() } else { format!("'{}'", word.replace('\'', "'\\''")) }
}

// --- objects found at create time ---
//
// The rule for a create that finds an object under the resource's own identity (domain name,
// container name, session record) that Terraform never recorded, because a killed apply lost the
// state before it was written:
// - it carries this provider's ownership marker: the create adopts it when it matches the plan,
//   or removes and re-creates it when it does not, so the next apply converges by itself;
// - it has no marker: it is never adopted, changed or removed; the create fails with
//   `exists_unowned`, which says how to import it.

/// The error of a create that found `what` under its identity without this provider's ownership
/// marker: a ready-to-paste `import` block (Terraform does not tell a provider the resource's
/// address, so `to` is the one word to fill in) and the other way out, another name.
pub fn exists_unowned(attr: AttrPath, type_name: &str, what: &str, import_id: &str) -> Diagnostic {
    let id = import_id.replace('\\', "\\\\").replace('"', "\\\"");
    Diagnostic::attr_error(
        attr,
        format!("{what} exists already"),
        format!(
            "{what} exists already and was not made by this provider (it has no ownership marker), so \
             it is never adopted, changed or removed. To manage it with Terraform, add this block next \
             to the resource, with `to` set to the resource's address, and apply:\n\n\
             import {{\n  to = {type_name}.ADDRESS\n  id = \"{id}\"\n}}\n\n\
             Or choose another name."
        ),
    )
}

/// The import id of an object on a host: `<host>/<name>` on a named host (`host` argument),
/// `<name>` on the provider's own. Names never hold `/` (`validate::name`, Docker names).
pub fn import_id(host: Option<&str>, name: &str) -> String {
    match host {
        Some(host) => format!("{host}/{name}"),
        None => name.to_string(),
    }
}

/// `import_id` read back: the host (None: the provider's own) and the name.
pub fn host_and_id(id: &str) -> (Option<&str>, &str) {
    match id.split_once('/') {
        Some((host, name)) => (Some(host), name),
        None => (None, id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_ids_carry_the_host() {
        assert_eq!(import_id(Some("h2"), "ada"), "h2/ada");
        assert_eq!(host_and_id("h2/ada"), (Some("h2"), "ada"));
        assert_eq!(host_and_id(&import_id(None, "ada")), (None, "ada"));
    }

    #[test]
    fn an_unowned_object_gets_an_import_block_on_its_attribute() {
        let d = exists_unowned(AttrPath::root("name"), "lab_vm", "A libvirt domain named `ada`", "a\"da");
        assert_eq!(d.attribute, Some(AttrPath::root("name")));
        assert!(d.detail.contains("import {\n  to = lab_vm.ADDRESS\n  id = \"a\\\"da\"\n}"), "{}", d.detail);
        assert!(d.summary.contains("exists already"));
    }

    #[test]
    fn timeouts_resolve_to_defaults_values_or_errors_on_their_path() {
        let defaults = (Duration::from_secs(300), Duration::from_secs(60));
        assert_eq!(Timeouts::resolve(None, defaults).unwrap(), defaults);
        let set = Timeouts { create: Attr::Known("10m".into()), delete: Attr::Unknown };
        assert_eq!(Timeouts::resolve(Some(&set), defaults).unwrap(), (Duration::from_secs(600), defaults.1));
        let bad = Timeouts { create: Attr::Known("soon".into()), delete: Attr::Known("0s".into()) };
        let diags = Timeouts::resolve(Some(&bad), defaults).unwrap_err();
        let paths: Vec<String> = diags.0.iter().filter_map(|d| d.attribute.as_ref().map(|p| p.to_string())).collect();
        assert_eq!(paths, ["timeouts.create", "timeouts.delete"]);
    }

    #[tokio::test]
    async fn wait_until_returns_value_and_times_out() {
        let cancel = CancellationToken::new();
        let mut n = 0;
        let v = wait_until("three tries", Duration::from_secs(5), Duration::from_millis(1), &cancel, || {
            n += 1;
            let done = n >= 3;
            async move { Ok::<_, String>(done.then_some(n)) }
        })
        .await
        .unwrap();
        assert_eq!(v, 3);
        let err = wait_until("never", Duration::from_millis(20), Duration::from_millis(5), &cancel, || async {
            Err::<Option<()>, _>("refused")
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
    }

    #[tokio::test]
    async fn rollback_runs_newest_first() {
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut rb = Rollback::new();
        for i in 0..3 {
            let log = log.clone();
            rb.push(format!("step {i}"), async move {
                log.lock().unwrap().push(i);
                if i == 1 { Err("busy".to_string()) } else { Ok(()) }
            });
        }
        let failed: Result<(), Diagnostics> = Err(Diagnostic::error("Creating", "boom").into());
        let diags = rb.finish(failed).await.unwrap_err();
        assert_eq!(*log.lock().unwrap(), vec![2, 1, 0]);
        let failures: Vec<(&str, &str)> =
            diags.0[1..].iter().map(|d| (d.summary.as_str(), d.detail.as_str())).collect();
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].0, "Cleanup after the failed create left step 1 behind");
        assert!(failures[0].1.contains("busy"), "{failures:?}");
    }

    #[tokio::test]
    async fn finish_commits_on_success_and_reports_each_leak_as_an_error() {
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut rb = Rollback::new();
        let flag = ran.clone();
        rb.push("container c1", async move {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        });
        assert_eq!(rb.finish(Ok::<_, Diagnostics>(7)).await.unwrap(), 7);
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst), "a committed step was undone");

        let mut rb = Rollback::new();
        rb.push_with_manual("overlay /x.qcow2", "rm /x.qcow2", async { Err("busy".to_string()) });
        rb.push("domain vm-1", async { Ok(()) });
        rb.push("seed /x-seed.img", async { Err("gone away".to_string()) });
        let failed: Result<(), Diagnostics> = Err(Diagnostic::error("Starting the domain", "boom").into());
        let diags = rb.finish(failed).await.unwrap_err();
        let summaries: Vec<&str> = diags.0.iter().map(|d| d.summary.as_str()).collect();
        assert_eq!(
            summaries,
            [
                "Starting the domain",
                "Cleanup after the failed create left seed /x-seed.img behind",
                "Cleanup after the failed create left overlay /x.qcow2 behind"
            ]
        );
        assert!(diags.0.iter().all(|d| d.severity == crate::protocol::Severity::Error));
        assert!(diags.0[2].detail.contains("busy") && diags.0[2].detail.ends_with("rm /x.qcow2"), "{:?}", diags.0[2]);
    }

    #[test]
    fn shell_commands_quote_every_word_that_needs_it() {
        assert_eq!(
            shell_command(["virsh", "-c", "qemu:///system", "console", "vm-1"]),
            "virsh -c qemu:///system console vm-1"
        );
        assert_eq!(shell_command(["rm", "/a b/it's"]), "rm '/a b/it'\\''s'");
        assert_eq!(shell_command(["echo", "", "$(x)", "a;b"]), "echo '' '$(x)' 'a;b'");
    }
}
