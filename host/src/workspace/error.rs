//! The error type shared by the workspace primitives and the file tools.

use std::io;

/// What went wrong, coarsely: decides the HTTP status.
///
/// The original sidecar answered every validation and file error with 400, and
/// clients rely on that, so [`ToolErrorKind::status`] maps `NotFound` and
/// `Forbidden` to 400 too. Endpoints with other conventions (for example
/// `GET /files/{path}`: 404 when missing, 403 on escape) can match on the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolErrorKind {
    /// Invalid request: bad field, bad path, bad pattern, unusable file.
    BadRequest,
    /// The path does not exist.
    NotFound,
    /// The path leaves the session directory, goes through a symlink, or
    /// permission was denied.
    Forbidden,
    /// A fault of the server itself.
    Internal,
}

impl ToolErrorKind {
    /// The status the file tools answer with (400 for everything but internal faults).
    pub fn status(self) -> u16 {
        match self {
            ToolErrorKind::Internal => 500,
            _ => 400,
        }
    }
}

/// An error with a message meant for the client (`{"ok": false, "error": message}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ToolError {
    pub message: String,
    pub kind: ToolErrorKind,
}

impl ToolError {
    pub fn new(kind: ToolErrorKind, message: impl Into<String>) -> Self {
        ToolError {
            message: message.into(),
            kind,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ToolErrorKind::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ToolErrorKind::NotFound, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ToolErrorKind::Forbidden, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ToolErrorKind::Internal, message)
    }

    /// The HTTP status for this error (see [`ToolErrorKind::status`]).
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// Turns an I/O error on `path` (as the client wrote it) into a clear message.
    pub fn from_io(err: &io::Error, path: &str) -> Self {
        let shown = if path.is_empty() { "." } else { path };
        match err.raw_os_error() {
            Some(libc::ENOENT) => Self::not_found(format!("No such file or directory: {shown}")),
            Some(libc::ELOOP) => Self::forbidden(format!(
                "Refusing to follow a symbolic link: {shown} (symlinks are never followed in the workspace)"
            )),
            Some(libc::EXDEV) => Self::forbidden(format!("Path escapes the workspace: {shown}")),
            Some(libc::EACCES) | Some(libc::EPERM) => {
                Self::forbidden(format!("Permission denied: {shown}"))
            }
            Some(libc::ENOTDIR) => Self::bad_request(format!("Not a directory: {shown}")),
            Some(libc::EISDIR) => Self::bad_request(format!("Is a directory: {shown}")),
            Some(libc::ENAMETOOLONG) => Self::bad_request(format!("File name too long: {shown}")),
            Some(libc::ENOSPC) => Self::bad_request(format!("No space left on device: {shown}")),
            Some(libc::EDQUOT) => Self::bad_request(format!("Disk quota exceeded: {shown}")),
            Some(libc::EROFS) => Self::bad_request(format!("Read-only file system: {shown}")),
            _ => Self::bad_request(format!("{shown}: {err}")),
        }
    }
}
