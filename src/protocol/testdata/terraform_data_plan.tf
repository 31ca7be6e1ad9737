resource "terraform_data" "probe" {
  input = {
    half  = 1.5
    big   = 1e20
    huge  = 123456789012345678901234567890
    neg   = -7
    tenth = 0.1
    list  = ["a", "b"]
    flag  = true
  }
}
