# A session is imported by its id (the 8 characters after the hostname prefix).
terraform import lab_session.ada k3x9q2m7
