//! Diagnostics: what the user sees in `terraform plan/apply` output, with the attribute path.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One step of an attribute path: `.name`, `["key"]` or `[0]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    Attr(String),
    Key(String),
    Index(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AttrPath(pub Vec<PathStep>);

impl AttrPath {
    pub fn root(name: &str) -> Self {
        AttrPath(vec![PathStep::Attr(name.to_string())])
    }
    pub fn attr(mut self, name: &str) -> Self {
        self.0.push(PathStep::Attr(name.to_string()));
        self
    }
    pub fn key(mut self, key: &str) -> Self {
        self.0.push(PathStep::Key(key.to_string()));
        self
    }
    pub fn index(mut self, i: i64) -> Self {
        self.0.push(PathStep::Index(i));
        self
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                PathStep::Attr(a) if i == 0 => write!(f, "{a}")?,
                PathStep::Attr(a) => write!(f, ".{a}")?,
                PathStep::Key(k) => write!(f, "[{k:?}]")?,
                PathStep::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub summary: String,
    pub detail: String,
    pub attribute: Option<AttrPath>,
}

impl Diagnostic {
    pub fn error(summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Error, summary: summary.into(), detail: detail.into(), attribute: None }
    }
    pub fn warning(summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, summary: summary.into(), detail: detail.into(), attribute: None }
    }
    /// An error about one attribute: Terraform underlines it in the user's configuration.
    pub fn attr_error(path: AttrPath, summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Diagnostic { attribute: Some(path), ..Self::error(summary, detail) }
    }
    pub fn attr_warning(path: AttrPath, summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Diagnostic { attribute: Some(path), ..Self::warning(summary, detail) }
    }
    /// An error from a failed operation: `what` says what was being done, the error chain why
    /// (`error_chain`); never a backtrace.
    pub fn from_error(what: impl Into<String>, err: &dyn std::error::Error) -> Self {
        Self::error(what, error_chain(err))
    }
    /// `from_error` about one attribute.
    pub fn attr_from_error(path: AttrPath, what: impl Into<String>, err: &dyn std::error::Error) -> Self {
        Diagnostic { attribute: Some(path), ..Self::from_error(what, err) }
    }
}

/// The whole `source()` chain as `outer: inner: innermost`. A source whose text is already shown
/// is left out: many errors repeat their cause in their own message (`{source}` in a thiserror
/// format), and others (hickory's "proto error") print nothing useful and keep it in the source.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

/// Turns a failed operation into diagnostics at the resource boundary:
/// `lv.start(name).await.or_diag("Starting the domain")?`.
pub trait DiagResultExt<T> {
    /// The error as `Diagnostic::from_error(summary, ..)`.
    fn or_diag(self, summary: impl Into<String>) -> Result<T, Diagnostics>;
    /// The same, about the attribute at `path`.
    fn or_attr_diag(self, path: AttrPath, summary: impl Into<String>) -> Result<T, Diagnostics>;
}

impl<T, E: std::error::Error> DiagResultExt<T> for Result<T, E> {
    fn or_diag(self, summary: impl Into<String>) -> Result<T, Diagnostics> {
        self.map_err(|e| Diagnostic::from_error(summary, &e).into())
    }
    fn or_attr_diag(self, path: AttrPath, summary: impl Into<String>) -> Result<T, Diagnostics> {
        self.map_err(|e| Diagnostic::attr_from_error(path, summary, &e).into())
    }
}

/// An ordered list of diagnostics; `Err(Diagnostics)` is how resource code fails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// `Ok(())` when no error was recorded, else `Err(self)`; for early returns after validation.
    pub fn into_result(self) -> Result<(), Diagnostics> {
        if self.has_errors() { Err(self) } else { Ok(()) }
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("reading {path}: {source}")]
        Repeats { path: String, source: std::io::Error },
        #[error("proto error")]
        Hides(#[source] std::io::Error),
    }

    #[test]
    fn the_chain_shows_each_cause_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let repeats = Outer::Repeats { path: "/x".into(), source: io() };
        assert_eq!(error_chain(&repeats), "reading /x: no such file");
        assert_eq!(error_chain(&Outer::Hides(io())), "proto error: no such file");
    }

    #[test]
    fn results_become_diagnostics_on_their_attribute() {
        let failed: Result<(), _> = Err(Outer::Hides(std::io::Error::other("refused")));
        let diags = failed.or_attr_diag(AttrPath::root("image"), "Pulling the image").unwrap_err();
        assert_eq!(diags.0[0].summary, "Pulling the image");
        assert_eq!(diags.0[0].detail, "proto error: refused");
        assert_eq!(diags.0[0].attribute, Some(AttrPath::root("image")));
        let failed: Result<(), _> = Err(std::io::Error::other("busy"));
        assert_eq!(failed.or_diag("Starting").unwrap_err().0[0].attribute, None);
    }
}
