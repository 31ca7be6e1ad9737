//! `lab_sessions`: the data source listing the live sessions, found through their
//! ownership-marked DNS records (so it needs a provider `dns` block); with a `docker_host`, each
//! with its terminal's activity (the terminal found by its `lab.hostname` label).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::session::is_expired;
use super::terminal::activity_of_hostname;
use crate::protocol::{
    Attr, Attribute, Block, DataSource, DiagResultExt, Diagnostic, Diagnostics, Nesting, OpContext, Schema,
};
use crate::settings::ProviderHandle;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionsState {
    pub sessions: Attr<Vec<ListedSession>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListedSession {
    pub id: Attr<String>,
    pub student: Attr<String>,
    pub hostname: Attr<String>,
    pub expires_at: Attr<String>,
    pub expired: Attr<bool>,
    pub dns_record_id: Attr<String>,
    pub terminal: Attr<String>,
    pub last_activity_at: Attr<String>,
    pub clients: Attr<i64>,
}

pub struct SessionsDataSource {
    provider: ProviderHandle,
}

impl SessionsDataSource {
    pub fn new(provider: ProviderHandle) -> Self {
        SessionsDataSource { provider }
    }
}

#[async_trait]
impl DataSource for SessionsDataSource {
    type State = SessionsState;

    fn type_name(&self) -> &'static str {
        "lab_sessions"
    }

    fn schema(&self) -> Schema {
        Schema {
            version: 0,
            block: Block {
                description: "Live sessions found through their ownership-marked DNS records: id, student, hostname \
                              and expiry, and (with a `docker_host`) the activity of the terminal serving each."
                    .into(),
                attributes: vec![
                    Attribute::nested(
                        "sessions",
                        Nesting::List,
                        vec![
                            Attribute::string("id").computed().description("Session id."),
                            Attribute::string("student").computed().description(
                                "The session's `student`, as recorded in the DNS ownership marker (null when it did \
                                 not fit: Cloudflare comments hold 100 characters on free zones).",
                            ),
                            Attribute::string("hostname").computed().description("Session hostname."),
                            Attribute::string("expires_at")
                                .computed()
                                .description("The session's `expires_at` (RFC 3339); null without `ttl`."),
                            Attribute::bool("expired")
                                .computed()
                                .description("Whether `expires_at` has passed, at the time of the read."),
                            Attribute::string("dns_record_id").computed().description("DNS record id."),
                            Attribute::string("terminal").computed().description(
                                "Name of the `lab_terminal` serving the session's hostname, found on the provider's \
                                 `docker_host` by its labels; null without `docker_host` or without a terminal.",
                            ),
                            Attribute::string("last_activity_at").computed().description(
                                "When the student last typed into that terminal (RFC 3339, UTC), as \
                                 `lab_terminal.last_activity_at`; null when unknown (no terminal, not \
                                 `persistent`, nobody connected since it started).",
                            ),
                            Attribute::number("clients").computed().description(
                                "Browsers connected to that terminal now, as `lab_terminal.clients` (0 when it is \
                                 stopped); null without a persistent terminal.",
                            ),
                        ],
                    )
                    .computed()
                    .description("One entry per live session."),
                ],
                ..Default::default()
            },
        }
    }

    async fn read(&self, _config: SessionsState, _ctx: &OpContext) -> Result<SessionsState, Diagnostics> {
        let settings = self.provider.settings()?;
        let Some(dns) = &settings.dns else {
            return Err(Diagnostic::error(
                "lab_sessions needs a provider `dns` block",
                "Sessions are found through their ownership-marked DNS records.",
            )
            .into());
        };
        let records = dns.list_owned().await.or_diag("Listing session DNS records")?;
        let docker = match settings.docker_host {
            Some(_) => Some(self.provider.docker("lab_sessions")?),
            None => None,
        };
        let now = OffsetDateTime::now_utc();
        let mut sessions = Vec::with_capacity(records.len());
        for r in records {
            let found = match docker {
                Some(docker) => activity_of_hostname(docker, &r.hostname)
                    .await
                    .or_diag(format!("Reading the activity of the terminal of {}", r.hostname))?,
                None => None,
            };
            let (terminal, activity) = found.map_or((None, None), |(name, a)| (Some(name), a));
            let (last_activity_at, clients) = activity.map_or((None, None), |a| (a.last_activity_at, Some(a.clients)));
            let expires_at = Attr::from(r.expires_at);
            sessions.push(ListedSession {
                id: Attr::Known(r.session_id),
                student: Attr::from(r.student),
                hostname: Attr::Known(r.hostname),
                expired: Attr::Known(is_expired(&expires_at, now)?),
                expires_at,
                dns_record_id: Attr::Known(r.id.0),
                terminal: Attr::from(terminal),
                last_activity_at: Attr::from(last_activity_at),
                clients: Attr::from(clients),
            });
        }
        Ok(SessionsState { sessions: Attr::Known(sessions) })
    }
}
