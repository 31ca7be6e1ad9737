//! `terraform-provider-lab-libvirt`: the provider's libvirt helper. The provider starts it (from
//! its own directory) on the first `lab_vm` call that needs libvirt and speaks JSON lines to it
//! on stdin/stdout; see src/backends/libvirt/mod.rs for why libvirt lives in a process of its own.

use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    if std::io::stdin().is_terminal() {
        eprintln!(
            "This is the libvirt helper of terraform-provider-lab. The provider starts it when it needs \
             libvirt; it is not meant to be run by hand."
        );
        return ExitCode::FAILURE;
    }
    match terraform_provider_lab::backends::libvirt::host::serve(std::io::stdin().lock(), std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("terraform-provider-lab-libvirt: {e}");
            ExitCode::FAILURE
        }
    }
}
