//! Output files written whole or not at all.

use std::path::Path;

use crate::SimError;

/// Writes `content` to `path` through a temporary file in the same directory and a rename,
/// so a failure never leaves half a file. Any failure is bad input naming `flag` and the
/// path (exit 2).
pub fn write_whole(flag: &str, path: &Path, content: &str) -> Result<(), SimError> {
    let fail = |e: std::io::Error| SimError::BadInput(format!("{flag} {}: {e}", path.display()));
    let name = path
        .file_name()
        .ok_or_else(|| SimError::BadInput(format!("{flag} {}: not a file name", path.display())))?;
    let mut partial_name = std::ffi::OsString::from(".");
    partial_name.push(name);
    partial_name.push(".partial");
    let partial = path.with_file_name(partial_name);
    std::fs::write(&partial, content).map_err(fail)?;
    std::fs::rename(&partial, path).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        fail(e)
    })
}
