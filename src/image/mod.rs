//! Image automation: scanning registries (`registry`), choosing tags (`policy`, pure), editing
//! YAML byte for byte (`setters`, pure), and the controllers of ImageRepository, ImagePolicy and
//! ImageUpdateAutomation. The submodules say which of them do I/O.

pub mod access;
pub mod automation;
pub mod policy;
pub mod policy_controller;
pub mod reference;
pub mod registry;
pub mod repository;
pub mod setters;
pub mod status;
pub mod tags;
