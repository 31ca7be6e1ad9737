//! Session DNS records: Cloudflare Tunnel CNAMEs or RFC 2136 dynamic updates.

pub mod cloudflare;
pub mod rfc2136;
