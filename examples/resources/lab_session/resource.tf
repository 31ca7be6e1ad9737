resource "lab_session" "ada" {
  student = "ada@example.edu"
  ttl     = "4h"
  labels  = { course = "os-101" }
}

output "ada_url" {
  value = lab_session.ada.url # https://lab-<id>.<provider domain>
}
