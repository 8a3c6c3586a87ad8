//! sluice: a GitOps agent for Kubernetes. The binary is a thin shell over this library.

pub mod api;
pub mod apply;
pub mod build;
pub mod canary;
pub mod cli;
pub mod kustomization;
pub mod loadtester;
pub mod runtime;
pub mod source;
