//! The guest: its address, its SSH banner, and a graceful stop.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use crate::backends::libvirt::{AddressSource, Libvirt, VmState};
use crate::lifecycle::wait_until;
use crate::protocol::log;
use crate::protocol::{DiagResultExt, Diagnostics, OpContext};

use super::config::{VmConfig, WaitFor};
use super::{MAX_SHUTDOWN_GRACE, POLL};

/// Wait for the guest's address, then (with `wait_for = "ssh"`) for sshd's banner.
pub(super) async fn wait_ready(
    lv: &Libvirt,
    cfg: &VmConfig,
    mac: Option<&str>,
    t0: Instant,
    timeout: Duration,
    ctx: &OpContext,
) -> Result<(), Diagnostics> {
    if cfg.wait_for == WaitFor::None {
        return Ok(());
    }
    let deadline = t0 + timeout;
    let name = cfg.name.clone();
    let mut tick = 0u32;
    let ip = wait_until(
        &format!("an IP address for {name}"),
        deadline.saturating_duration_since(Instant::now()),
        POLL,
        &ctx.cancel,
        || {
            tick += 1;
            // The agent is asked once a second: it answers only when the guest runs one.
            let agent_too = tick % 5 == 0;
            let (lv, name) = (lv.clone(), name.clone());
            let mac = mac.map(str::to_string);
            async move { find_ip(&lv, &name, mac.as_deref(), agent_too).await }
        },
    )
    .await
    .or_diag(format!("Waiting for {} to get an address", cfg.name))?;
    log::debug(&format!("{}: boot_to_ip_s={:.3} ip={ip}", cfg.name, t0.elapsed().as_secs_f64()));
    if cfg.wait_for == WaitFor::Ip {
        return Ok(());
    }
    wait_until(
        &format!("SSH on {ip}:22"),
        deadline.saturating_duration_since(Instant::now()),
        POLL,
        &ctx.cancel,
        || ssh_banner(ip),
    )
    .await
    .or_diag(format!("Waiting for SSH on {} ({ip})", cfg.name))?;
    log::debug(&format!("{}: boot_to_ssh_s={:.3}", cfg.name, t0.elapsed().as_secs_f64()));
    Ok(())
}

/// The guest's IPv4 address on the interface with `mac`, from the DHCP leases (and the guest
/// agent when `agent_too`).
pub(super) async fn find_ip(
    lv: &Libvirt,
    name: &str,
    mac: Option<&str>,
    agent_too: bool,
) -> Result<Option<Ipv4Addr>, String> {
    let mut sources = vec![AddressSource::Lease];
    if agent_too {
        sources.push(AddressSource::Agent);
    }
    let mut last_err = None;
    for source in sources {
        match lv.addresses(name, source).await {
            Ok(addrs) => {
                let hit = addrs.into_iter().find(|a| match (mac, &a.mac) {
                    (Some(want), Some(have)) => want.eq_ignore_ascii_case(have),
                    _ => true,
                });
                if let Some(a) = hit {
                    return Ok(Some(a.ip));
                }
            }
            // No agent in the guest is normal; lease errors are reported on timeout.
            Err(e) if source == AddressSource::Lease => last_err = Some(e.to_string()),
            Err(_) => {}
        }
    }
    match last_err {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// `Some(())` once something on port 22 sends an SSH identification line.
pub(super) async fn ssh_banner(ip: Ipv4Addr) -> Result<Option<()>, String> {
    let addr = std::net::SocketAddr::from((ip, 22));
    let mut stream = match tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("connecting to {addr}: {e}")),
        Err(_) => return Err(format!("connecting to {addr}: timed out")),
    };
    let mut buf = [0u8; 256];
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), async {
        while !got.contains(&b'\n') && got.len() < 256 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    match read {
        Ok(Ok(())) if got.starts_with(b"SSH-") => Ok(Some(())),
        Ok(Ok(())) => Err(format!("{addr} answered without an SSH banner")),
        Ok(Err(e)) => Err(format!("reading the banner of {addr}: {e}")),
        Err(_) => Err(format!("no SSH banner from {addr} within 3 s")),
    }
}

/// ACPI shutdown, wait up to `grace` for the guest to power off, then destroy. The button is
/// pressed again every few seconds: a guest still booting has no handler yet and drops it.
pub(super) async fn stop_gracefully(
    lv: &Libvirt,
    name: &str,
    grace: Duration,
    ctx: &OpContext,
) -> Result<(), Diagnostics> {
    const REPRESS: Duration = Duration::from_secs(5);
    let t = Instant::now();
    let mut pressed: Option<Instant> = None;
    let off = wait_until(&format!("{name} to power off"), grace, POLL, &ctx.cancel, || {
        let (lv, name) = (lv.clone(), name.to_string());
        let press = pressed.is_none_or(|p| p.elapsed() >= REPRESS);
        if press {
            pressed = Some(Instant::now());
        }
        async move {
            match lv.lookup(&name).await {
                Ok(Some(info)) if is_active(info.state) => {
                    if press {
                        lv.shutdown(&name).await.map_err(|e| e.to_string())?;
                    }
                    Ok(None)
                }
                Ok(_) => Ok(Some(())),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await;
    if off.is_err() {
        log::debug(&format!("{name}: no power-off after {grace:?}; destroying"));
    }
    lv.destroy(name).await.or_diag("Destroying the domain")?;
    log::debug(&format!("{name}: stop_s={:.3} graceful={}", t.elapsed().as_secs_f64(), off.is_ok()));
    Ok(())
}

pub(super) fn shutdown_grace(delete_timeout: Duration) -> Duration {
    delete_timeout.min(MAX_SHUTDOWN_GRACE)
}

pub(super) fn is_active(state: VmState) -> bool {
    matches!(state, VmState::Running | VmState::Paused | VmState::ShuttingDown)
}
