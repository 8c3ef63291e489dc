//! Typed engine errors and the stable codes they map to.
//!
//! Every error has an [`ErrorCode`]: a stable snake_case name with a number that
//! never changes once published (the C header and both bindings carry them).
use std::fmt;
use std::io;
use std::path::Path;

/// Stable error codes. Numbers are part of the ABI: add new ones at the end,
/// never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ErrorCode {
    SnapshotNotFound = 1,
    SandboxNotFound = 2,
    ImageNotFound = 3,
    AlreadyExists = 4,
    SandboxRunning = 5,
    HasChildren = 6,
    IntegrityMismatch = 7,
    InvalidArgument = 8,
    InvalidManifest = 9,
    InvalidArchive = 10,
    Unsupported = 11,
    Io = 12,
    Cancelled = 13,
    Internal = 14,
    Unauthorized = 15,
    RegistryError = 16,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::SnapshotNotFound,
        ErrorCode::SandboxNotFound,
        ErrorCode::ImageNotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::SandboxRunning,
        ErrorCode::HasChildren,
        ErrorCode::IntegrityMismatch,
        ErrorCode::InvalidArgument,
        ErrorCode::InvalidManifest,
        ErrorCode::InvalidArchive,
        ErrorCode::Unsupported,
        ErrorCode::Io,
        ErrorCode::Cancelled,
        ErrorCode::Internal,
        ErrorCode::Unauthorized,
        ErrorCode::RegistryError,
    ];

    /// The snake_case name that appears in JSON error objects.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::SnapshotNotFound => "snapshot_not_found",
            ErrorCode::SandboxNotFound => "sandbox_not_found",
            ErrorCode::ImageNotFound => "image_not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::SandboxRunning => "sandbox_running",
            ErrorCode::HasChildren => "has_children",
            ErrorCode::IntegrityMismatch => "integrity_mismatch",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::InvalidManifest => "invalid_manifest",
            ErrorCode::InvalidArchive => "invalid_archive",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::Io => "io",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::Internal => "internal",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::RegistryError => "registry_error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An engine error. The message says what failed and on what; `code()` says
/// which kind of failure it is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("snapshot not found: {0}")]
    SnapshotNotFound(String),
    #[error("sandbox not found: {0}")]
    SandboxNotFound(String),
    #[error("image not found: {0}")]
    ImageNotFound(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    #[error("sandbox is running: {0}")]
    SandboxRunning(String),
    #[error(
        "snapshot {digest} has {children} indexed child snapshot(s); remove them first or force"
    )]
    HasChildren { digest: String, children: u64 },
    #[error("integrity mismatch for {path}: expected {expected}, found {actual}")]
    IntegrityMismatch {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    #[error("invalid archive: {0}")]
    InvalidArchive(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("operation cancelled")]
    Cancelled,
    #[error("internal error: {0}")]
    Internal(String),
    /// A registry refused the credentials (or their absence) for what was
    /// asked. The message names the registry and repository, never a secret.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// A registry could not be reached, timed out, or answered outside the
    /// distribution protocol.
    #[error("registry error: {0}")]
    Registry(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::SnapshotNotFound(_) => ErrorCode::SnapshotNotFound,
            Error::SandboxNotFound(_) => ErrorCode::SandboxNotFound,
            Error::ImageNotFound(_) => ErrorCode::ImageNotFound,
            Error::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Error::SandboxRunning(_) => ErrorCode::SandboxRunning,
            Error::HasChildren { .. } => ErrorCode::HasChildren,
            Error::IntegrityMismatch { .. } => ErrorCode::IntegrityMismatch,
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::InvalidManifest(_) => ErrorCode::InvalidManifest,
            Error::InvalidArchive(_) => ErrorCode::InvalidArchive,
            Error::Unsupported(_) => ErrorCode::Unsupported,
            Error::Io { .. } => ErrorCode::Io,
            Error::Cancelled => ErrorCode::Cancelled,
            Error::Internal(_) => ErrorCode::Internal,
            Error::Unauthorized(_) => ErrorCode::Unauthorized,
            Error::Registry(_) => ErrorCode::RegistryError,
        }
    }

    /// An I/O error with what was being done and on which path.
    pub fn io(what: &str, path: &Path, source: io::Error) -> Error {
        Error::Io {
            context: format!("{what} {}", path.display()),
            source,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Io {
            context: "index database".to_string(),
            source: io::Error::other(e),
        }
    }
}

/// Attach a path and an action to an `io::Result`.
pub trait IoContext<T> {
    fn ctx(self, what: &str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, what: &str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(what, path, e))
    }
}
