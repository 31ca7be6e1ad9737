//! `terraform-provider-lab`: started by Terraform (go-plugin handshake) or by hand with `-debug`.

fn main() {
    eprintln!("terraform-provider-lab: skeleton");
}
