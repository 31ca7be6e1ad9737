//! Cloudflare DNS records API client (reqwest, rustls).
