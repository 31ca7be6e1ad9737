//! `terraform-provider-lab`: started by Terraform (go-plugin handshake) or by hand with `-debug`.

use std::process::ExitCode;

use terraform_provider_lab::protocol::dispatch::erase_provider;
use terraform_provider_lab::protocol::{handshake, log};
use terraform_provider_lab::provider::LabProvider;

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    log::install_panic_hook();
    let debug = std::env::args().skip(1).any(|a| a == "-debug" || a == "--debug");
    // Check the environment before starting anything: run by hand, say so and leave.
    let env = if debug {
        None
    } else {
        match handshake::read_env(|k| std::env::var(k).ok()) {
            Ok(env) => Some(env),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
    };
    // One thread: the provider's work is waiting (on Terraform, daemons, guests), not computing.
    // A work-stealing pool spent a third of the provider's CPU parking and waking its workers
    // (plan of 1000 sessions: 0.11 s of CPU with two workers, 0.07 s with one; bench/).
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => {
            log::trace(&format!("runtime up after {:?}", started.elapsed()));
            rt
        }
        Err(e) => {
            eprintln!("terraform-provider-lab: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let provider = erase_provider(LabProvider::new());
    log::trace(&format!("provider built after {:?}", started.elapsed()));
    let result = runtime.block_on(async move {
        match env {
            Some(env) => handshake::serve_terraform(provider, env).await,
            None => handshake::serve_debug(provider).await,
        }
    });
    // Blocking-pool work (tokio::fs on a hung mount, say) must not keep the process alive after shutdown.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error(&e.to_string());
            eprintln!("terraform-provider-lab: {e}");
            ExitCode::FAILURE
        }
    }
}
