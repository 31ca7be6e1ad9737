//! The libvirt backend against the rig's real libvirtd (no mocks): define, start, lookup by name
//! and UUID, DHCP lease, graceful shutdown, undefine; idempotent destroy/undefine. Fails with the
//! reason when the rig is not up (`acceptance-tests/rig.sh up`).
//!
//! Run: `cargo test --test libvirt_backend` (the libvirt socket is reachable from the host; no
//! traffic goes to the guest).

#[path = "support/rig.rs"]
mod rig;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use terraform_provider_lab::backends::domain_xml::{DirectBoot, DomainSpec, DomainType, LabMetadata};
use terraform_provider_lab::backends::libvirt::{AddressSource, Libvirt, VmState};
use terraform_provider_lab::backends::qcow2;

struct Names {
    name: String,
    overlay: PathBuf,
}

async fn cleanup(lv: &Libvirt, n: &Names) {
    let _ = lv.destroy(&n.name).await;
    let _ = lv.undefine(&n.name).await;
    let _ = qcow2::delete(&n.overlay).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn define_start_lease_shutdown_undefine() {
    let env = rig::rig_vars();
    let var = |k: &str| env.get(k).cloned().unwrap_or_else(|| panic!("rig.env does not export {k}"));
    let helper = std::path::Path::new(env!("CARGO_BIN_EXE_terraform-provider-lab-libvirt"));
    let lv = Libvirt::connect_with(helper, &var("LAB_LIBVIRT_URI")).await.expect("connect to the rig's libvirtd");
    let suffix: u32 = rand::random::<u32>() % 100_000;
    let names = Names {
        name: format!("vmtest-backend-{suffix}"),
        overlay: PathBuf::from(var("LAB_CACHE")).join(format!("vms/vmtest-backend-{suffix}.qcow2")),
    };
    let body = {
        let (lv, env) = (lv.clone(), env.clone());
        let (name, overlay) = (names.name.clone(), names.overlay.clone());
        tokio::spawn(async move { scenario(&lv, &env, &name, &overlay).await })
    };
    let result = body.await;
    cleanup(&lv, &names).await;
    assert!(lv.lookup(&names.name).await.unwrap().is_none(), "domain left behind");
    assert!(!names.overlay.exists(), "overlay left behind");
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn scenario(lv: &Libvirt, env: &HashMap<String, String>, name: &str, overlay: &std::path::Path) {
    let var = |k: &str| env[k].clone();
    let host = lv.host_info().await.unwrap();
    assert!(host.cpus >= 1 && host.free_memory_bytes > 0 && host.total_memory_kib > 0, "{host:?}");
    // "Free" for a new guest counts the page cache the kernel gives back (libvirtd shares this
    // kernel): near /proc/meminfo's MemAvailable, never just MemFree's few hundred MiB.
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib = |key: &str| -> u64 {
        let line = meminfo.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("{key} in /proc/meminfo"));
        line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap()
    };
    let (free_kib, available_kib) = (host.available_memory_bytes / 1024, kib("MemAvailable:"));
    assert!(
        free_kib >= available_kib * 8 / 10 && free_kib <= kib("MemTotal:"),
        "libvirt's free memory {free_kib} KiB is far from MemAvailable {available_kib} KiB"
    );
    assert!(lv.network_exists(&var("LAB_NETWORK")).await.unwrap());
    assert!(!lv.network_exists("vmtest-no-such-network").await.unwrap());

    let t = Instant::now();
    qcow2::create_overlay(std::path::Path::new(&var("LAB_BASE_IMAGE")), overlay, None).await.unwrap();
    eprintln!("overlay_create_s={:.3}", t.elapsed().as_secs_f64());

    let mut spec = DomainSpec::new(name, overlay.to_path_buf(), &var("LAB_NETWORK"));
    spec.domain_type = DomainType::Qemu;
    spec.memory_mib = 512;
    spec.vcpus = 1;
    // A fresh MAC per run: dnsmasq keeps leases, and an old lease for a reused MAC would be
    // reported before the guest has even booted.
    let b: [u8; 3] = rand::random();
    let mac = format!("52:54:00:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2]);
    spec.mac = Some(mac.clone());
    spec.boot = Some(DirectBoot {
        kernel: var("LAB_KERNEL").into(),
        initrd: Some(var("LAB_INITRD").into()),
        cmdline: Some(format!("{} lab.hostname={name}", var("LAB_CMDLINE"))),
    });
    spec.metadata = LabMetadata { base_image: Some(var("LAB_BASE_IMAGE")), ..Default::default() };

    let t0 = Instant::now();
    let uuid = lv.define(spec.to_xml().unwrap()).await.unwrap();
    let by_name = lv.lookup(name).await.unwrap().expect("defined domain found by name");
    assert_eq!(by_name.state, VmState::ShutOff);
    assert_eq!(by_name.summary.uuid, uuid);
    assert_eq!(by_name.summary.memory_kib, 512 * 1024);
    assert!(by_name.summary.isolated, "isolated port missing: {:?}", by_name.summary);
    assert_eq!(by_name.summary.metadata.base_image.as_deref(), Some(var("LAB_BASE_IMAGE").as_str()));
    let by_uuid = lv.lookup_uuid(&uuid).await.unwrap().expect("found by UUID");
    assert_eq!(by_uuid.summary.name, name);

    lv.start(name).await.unwrap();
    eprintln!("define_start_s={:.3}", t0.elapsed().as_secs_f64());
    assert_eq!(lv.lookup(name).await.unwrap().unwrap().state, VmState::Running);
    lv.set_autostart(name, true).await.unwrap();
    assert!(lv.lookup(name).await.unwrap().unwrap().autostart);
    lv.set_autostart(name, false).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(240);
    let ip = loop {
        let addrs = lv.addresses(name, AddressSource::Lease).await.unwrap();
        if let Some(a) = addrs.first() {
            assert_eq!(a.mac.as_deref(), Some(mac.as_str()));
            break a.ip;
        }
        assert!(Instant::now() < deadline, "no DHCP lease for {name} within 240 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("boot_to_ip_s={:.3} ip={ip}", t0.elapsed().as_secs_f64());
    let prefix = var("LAB_NETWORK_CIDR");
    let prefix = prefix.rsplit_once('.').map(|(p, _)| p).unwrap_or_default();
    assert!(ip.to_string().starts_with(prefix), "{ip} not in {}", var("LAB_NETWORK_CIDR"));
    // No agent in this guest: the agent source reports an error rather than hanging.
    let t = Instant::now();
    assert!(lv.addresses(name, AddressSource::Agent).await.is_err());
    assert!(t.elapsed() < Duration::from_secs(10), "agent query took {:?}", t.elapsed());

    // ACPI shutdown: the lab image powers off on the power button once its acpid runs (just
    // after the lease), so the button is pressed again every 3 s, as the provider does.
    let t = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut pressed = Instant::now() - Duration::from_secs(10);
    while lv.lookup(name).await.unwrap().unwrap().state != VmState::ShutOff {
        assert!(Instant::now() < deadline, "{name} ignored the ACPI shutdown for 90 s");
        if pressed.elapsed() >= Duration::from_secs(3) {
            lv.shutdown(name).await.unwrap();
            pressed = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("acpi_shutdown_s={:.3}", t.elapsed().as_secs_f64());
    lv.shutdown(name).await.expect("shutdown of a stopped domain is a no-op");
    lv.destroy(name).await.expect("destroy of a stopped domain is a no-op");

    lv.undefine(name).await.unwrap();
    assert!(lv.lookup(name).await.unwrap().is_none());
    assert!(lv.lookup_uuid(&uuid).await.unwrap().is_none());
    lv.undefine(name).await.expect("undefine is idempotent");
    lv.destroy(name).await.expect("destroy of a missing domain is a no-op");
    assert!(lv.start(name).await.is_err(), "starting a missing domain must fail");
}
