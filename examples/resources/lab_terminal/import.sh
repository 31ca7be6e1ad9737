# A terminal is imported by its container name (lab_terminal `name`).
terraform import lab_terminal.ada lab-k3x9q2m7
