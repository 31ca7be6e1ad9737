provider "lab" {
  libvirt_uri = "qemu:///system"
  docker_host = "unix:///var/run/docker.sock"
  domain      = "lab.example.edu"

  dns {
    cloudflare {
      api_token = var.cloudflare_api_token # Zone.DNS:Edit on the zone
      zone_id   = var.cloudflare_zone_id
      tunnel_id = var.cloudflare_tunnel_id
    }
  }
}
