//! The data dir and the secrets in it (the development signing key, the
//! cursor key, the users file): the folder is created private to its owner
//! (0700), secrets are written 0600 and whole. A folder or secret that
//! another user owns or could have written, a secret that is a symbolic
//! link, and an empty secret are refused rather than trusted: in a shared
//! location another user could otherwise plant a signing key and mint
//! tokens.

use std::io::{Error, ErrorKind, Write};
use std::path::Path;

/// Creates `dir` (and missing parents) readable by its owner only. A folder
/// that exists already is kept as it is if this user owns it and no one
/// else may write to it; otherwise it is refused.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    trusted(dir, &std::fs::metadata(dir)?, "chmod 700")
}

/// Refuses what another user owns or may write: `fix` is the chmod that
/// would make a folder or file of one's own acceptable.
fn trusted(path: &Path, metadata: &std::fs::Metadata, fix: &str) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let path = path.display();
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if metadata.uid() != me {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("{path} belongs to another user (uid {}), so it is not used", metadata.uid()),
            ));
        }
        if metadata.mode() & 0o022 != 0 {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("{path} can be written by other users, so it is not used (fix: {fix} {path})"),
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, metadata, fix);
    Ok(())
}

/// Reads a secret: a plain file (not a symbolic link) of this user's that
/// no one else may write, and not empty.
pub fn read_secret(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    // Opening does not follow a link, so what is checked is what is read.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
    let file = options.open(path).map_err(|error| {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            Error::new(
                ErrorKind::PermissionDenied,
                format!("{} is a symbolic link, so it is not used (a secret must be a plain file)", path.display()),
            )
        } else {
            error
        }
    })?;
    trusted(path, &file.metadata()?, "chmod 600")?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut &file, &mut bytes)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        let path = path.display();
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("{path} is empty, so it is not used (remove it and a new one is made)"),
        ));
    }
    Ok(bytes)
}

/// Writes a secret readable by its owner only, whole or not at all: into a
/// temporary file, then linked into place unless a file is already there (the
/// first complete file wins when two processes create it at once).
pub fn publish_secret(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension(format!("tmp-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
    let written = open_private(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let linked = written.and_then(|()| match std::fs::hard_link(&temporary, path) {
        Err(error) if error.kind() == ErrorKind::AlreadyExists => Ok(()),
        other => other,
    });
    let _ = std::fs::remove_file(&temporary);
    linked
}

/// A new file, readable and writable by its owner only.
pub fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_folder_and_secrets_are_private_and_a_shared_secret_is_refused() {
        let root = std::env::temp_dir().join(format!("items-data-dir-{}", uuid::Uuid::new_v4().simple()));
        let dir = root.join("nested");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let secret = dir.join("cursor.key");
        publish_secret(&secret, b"first").unwrap();
        publish_secret(&secret, b"second").unwrap();
        assert_eq!(mode(&secret), 0o600);
        assert_eq!(read_secret(&secret).unwrap(), b"first", "the first complete file wins");

        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o666)).unwrap();
        let refused = read_secret(&secret).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::PermissionDenied);
        assert!(refused.to_string().contains("chmod 600"), "{refused}");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(read_secret(&secret).is_ok(), "readable by the group is the owner's choice");
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// Security review findings 8 and 9: a planted or empty secret, and a
    /// folder others may write, are refused.
    #[test]
    fn links_empty_secrets_and_shared_folders_are_refused() {
        let root = std::env::temp_dir().join(format!("items-data-dir-{}", uuid::Uuid::new_v4().simple()));
        create_private_dir(&root).unwrap();
        let planted = root.join("planted.key");
        publish_secret(&planted, b"someone else's key").unwrap();
        let link = root.join("cursor.key");
        std::os::unix::fs::symlink(&planted, &link).unwrap();
        let refused = read_secret(&link).unwrap_err();
        assert!(refused.to_string().contains("symbolic link"), "{refused}");

        let empty = root.join("machine-client.secret");
        publish_secret(&empty, b"\n").unwrap();
        let refused = read_secret(&empty).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::InvalidData);
        assert!(refused.to_string().contains("is empty"), "{refused}");

        let shared = root.join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let refused = create_private_dir(&shared).unwrap_err();
        assert!(refused.to_string().contains("chmod 700"), "{refused}");

        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // As root (CI): a file another user owns is refused.
            let theirs = root.join("theirs.key");
            publish_secret(&theirs, b"a key").unwrap();
            std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
            let refused = read_secret(&theirs).unwrap_err();
            assert!(refused.to_string().contains("belongs to another user"), "{refused}");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}
