//! Running untrusted processes natively, inside the sandbox, with limits.
//!
//! - [`sandbox`]: detects at start-up which protections work here and reports them.
//! - [`process`]: runs one process: limits, output capture, timeout, kill-all, reaping.
//! - [`limiter`]: bounds simultaneous executions, with a bounded queue.
//! - [`output`]: incremental UTF-8 decoding and capped output buffers.
//! - `cgroup`, `spawn`: per-execution cgroups, and starting the child (its set-up
//!   before exec).
//! - `uid_pool`, `janitor`: without cgroups, a dedicated uid per execution, and the
//!   sweep that kills everything running as it; `gid_pool`: with them, a gid per
//!   execution, so that executions of one uid cannot look into each other.
//! - `private_tmp`, `writers`: a pool of mount namespaces giving each execution its own
//!   /tmp, /var/tmp and /dev/shm, and telling which execution wrote which workspace file.
//! - [`background`]: clean-up after an execution, off the request's critical path;
//!   `tree`: removing the directory trees code leaves there, without recursion.

pub mod background;
mod cgroup;
mod gid_pool;
mod janitor;
pub mod limiter;
pub mod output;
mod private_tmp;
pub mod process;
pub mod sandbox;
mod spawn;
pub(crate) mod tree;
mod uid_pool;
mod writers;

#[cfg(test)]
mod tests;

pub use gid_pool::GidLease;
pub use limiter::{Limiter, Permit};
pub use output::{OutputChunk, Stream};
pub use private_tmp::TmpNs;
pub use process::{run, ProcessOutcome, ProcessSpec, DEFAULT_OUTPUT_CAP};
pub use sandbox::{Protection, Sandbox, SandboxSettings};
pub use spawn::DEFAULT_PATH;

/// Why an execution could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The program (argv[0]) is not on the spec's `PATH`: a toolchain is missing.
    #[error("program not found: {0}")]
    NotFound(String),
    /// The program is where the sidecar finds it but the execution cannot: under a
    /// directory that executions get a private copy of (see exec/private_tmp.rs).
    #[error("program {program} is at {}, which executions do not see", path.display())]
    Hidden {
        program: String,
        path: std::path::PathBuf,
    },
    /// Too many executions running and waiting: try again later.
    #[error("too many executions running and queued")]
    Busy,
    /// The spec itself is unusable (empty argv, NUL bytes, missing working directory).
    #[error("invalid execution request: {0}")]
    InvalidSpec(String),
    /// The sandbox could not be set up for this execution.
    #[error("sandbox failure: {0}")]
    Sandbox(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
