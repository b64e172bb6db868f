//! sidecar: runs untrusted code for AI agents behind a JSON API on a Unix socket.
//!
//! Modules, one concern each:
//! - [`config`] — `languages.toml`.
//! - [`plugins`] — the wasmtime runtime that loads language plugins and asks them for plans.
//! - [`exec`] — running processes natively inside the sandbox, with limits.
//! - [`workspace`] — session directories and path confinement.
//! - [`tools`] — the file tools (read, write, edit, ls, find, grep).
//! - [`api`] — the HTTP API (axum) over a Unix socket and TCP.
//! - [`cli`] — the command line.

pub mod config;
pub mod exec;
pub mod plugins;
pub mod tools;

pub mod api;
pub mod cli;
pub mod runner;
pub mod workspace;
