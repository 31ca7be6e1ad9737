# The provider block for the bad-input cases: the test writes one `bad.tf` per case (literal
# values, as `terraform validate` sees no variables) and reads `terraform validate -json`.
terraform {
  required_providers {
    lab = { source = "classroom/lab" }
  }
}

provider "lab" {}
