//! `lab_sessions`: the data source listing the live sessions, found through their
//! ownership-marked DNS records (so it needs a provider `dns` block).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::session::is_expired;
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
                description:
                    "Live sessions found through their ownership-marked DNS records: id, student, hostname and expiry."
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
        let now = OffsetDateTime::now_utc();
        let mut sessions = Vec::with_capacity(records.len());
        for r in records {
            let expires_at = Attr::from(r.expires_at);
            sessions.push(ListedSession {
                id: Attr::Known(r.session_id),
                student: Attr::from(r.student),
                hostname: Attr::Known(r.hostname),
                expired: Attr::Known(is_expired(&expires_at, now)?),
                expires_at,
                dns_record_id: Attr::Known(r.id.0),
            });
        }
        Ok(SessionsState { sessions: Attr::Known(sessions) })
    }
}
