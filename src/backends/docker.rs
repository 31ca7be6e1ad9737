//! Docker containers through bollard.
