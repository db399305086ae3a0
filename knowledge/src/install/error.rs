//! The installer's error: one message that carries its causes ("reading x.whl: not a zip
//! file"), built the way `anyhow`'s context would be, without the dependency.

use std::fmt::Display;

/// Why installing a model failed, with what was being done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallError {
    message: String,
}

impl InstallError {
    /// An error saying `message`.
    pub fn msg(message: impl Into<String>) -> Self {
        InstallError {
            message: message.into(),
        }
    }
}

impl Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InstallError {}

macro_rules! from_display {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for InstallError {
            fn from(e: $t) -> Self {
                InstallError::msg(e.to_string())
            }
        }
    )*};
}

from_display!(
    std::io::Error,
    serde_json::Error,
    zip::result::ZipError,
    safetensors::SafeTensorError,
    std::str::Utf8Error,
    std::string::FromUtf8Error,
    std::num::TryFromIntError,
);

/// The installer's results.
pub type Result<T, E = InstallError> = std::result::Result<T, E>;

/// Adds what was being done to an error, as `what: cause`.
pub trait Context<T> {
    /// With a fixed description.
    fn context(self, what: impl Display) -> Result<T>;
    /// With a description made only on failure.
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Display) -> Result<T> {
        self.map_err(|e| InstallError::msg(format!("{what}: {e}")))
    }
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| InstallError::msg(format!("{}: {e}", what())))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl Display) -> Result<T> {
        self.ok_or_else(|| InstallError::msg(what.to_string()))
    }
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.ok_or_else(|| InstallError::msg(what().to_string()))
    }
}

/// Returns an [`InstallError`] made like `format!`.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::install::error::InstallError::msg(format!($($arg)*)))
    };
}

/// [`bail!`]s unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            $crate::install::error::bail!($($arg)*);
        }
    };
}

pub(crate) use {bail, ensure};
