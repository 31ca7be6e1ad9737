# A gateway is imported by its container name (lab_gateway `name`).
terraform import lab_gateway.edge os101-edge
