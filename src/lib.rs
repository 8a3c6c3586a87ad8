//! sluice: a GitOps agent for Kubernetes. The binary is a thin shell over this library.

pub mod api;
pub mod apply;
pub mod build;
pub mod canary;
pub mod cli;
pub mod git;
pub mod image;
pub mod install;
pub mod kustomization;
pub mod loadtester;
pub mod notify;
pub mod runtime;
pub mod semver_range;
pub mod source;
