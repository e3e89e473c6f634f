//! Opening a file a user named (a JUnit report, a manifest), refusing
//! anything that is not a regular file: a FIFO would block the reader
//! forever, a device could be endless.

use std::fs::File;
use std::path::Path;

/// Why [`open`] refused.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Io(std::io::Error),
    /// What the path is instead ("FIFO (named pipe)", "directory", ...).
    #[error("it is a {0}, not a regular file")]
    NotAFile(&'static str),
}

/// Opens `path` for reading if it is a regular file. Opened non-blocking
/// first, so that a FIFO is not waited on before it can be refused
/// (regular files ignore the flag).
pub fn open(path: &Path) -> Result<File, OpenError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(OpenError::Io)?;
    let kind = file.metadata().map_err(OpenError::Io)?.file_type();
    if kind.is_file() {
        Ok(file)
    } else {
        Err(OpenError::NotAFile(describe_file_type(kind)))
    }
}

/// What a non-regular file is.
fn describe_file_type(kind: std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        return "directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "FIFO (named pipe)";
        }
        if kind.is_socket() {
            return "socket";
        }
        if kind.is_char_device() {
            return "character device";
        }
        if kind.is_block_device() {
            return "block device";
        }
    }
    "special file"
}
