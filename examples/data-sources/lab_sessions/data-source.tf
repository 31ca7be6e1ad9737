data "lab_sessions" "live" {}

output "live_sessions" {
  value = [for s in data.lab_sessions.live.sessions : s.hostname]
}
