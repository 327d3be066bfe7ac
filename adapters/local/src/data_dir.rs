//! The data dir and the secrets in it (the development signing key, the
//! cursor key, the users file): the folder is created private to its owner
//! (0700), secrets are written 0600 and whole, and a secret that other users
//! could have written is refused rather than trusted.

use std::io::{Error, ErrorKind, Write};
use std::path::Path;

/// Creates `dir` (and missing parents) readable by its owner only. A folder
/// that exists already is left as it is.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Reads a secret, refusing one that users other than its owner may write.
pub fn read_secret(path: &Path) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o022 != 0 {
            let path = path.display();
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("{path} can be written by other users, so it is not used (fix: chmod 600 {path})"),
            ));
        }
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut &file, &mut bytes)?;
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
}
