//! Shared lifecycle helpers for all resources: create-with-rollback, wait-with-deadline,
//! ownership labels. One copy here instead of three in the resources.
