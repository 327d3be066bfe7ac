//! Development users of the local Hosted UI: `users.json` in the data dir,
//! passwords stored as Argon2id PHC strings (never in clear).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use serde::{Deserialize, Serialize};

use crate::auth::dev_idp::dev_subject;

pub const USERS_FILE: &str = "users.json";
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 1024;
pub const MAX_USERNAME_CHARS: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("cannot read or write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid users file: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
    #[error("invalid username: {0}")]
    InvalidUsername(&'static str),
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters and at most {MAX_PASSWORD_BYTES} bytes")]
    InvalidPassword,
    #[error("the user {0} already exists")]
    Exists(String),
    #[error("there is no user {0}")]
    NotFound(String),
    #[error("cannot hash the password")]
    Hash,
}

/// One development user, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DevUser {
    pub username: String,
    /// The Cognito-style user id put in tokens' `sub`: stable per username.
    pub sub: String,
    /// Argon2id PHC string (`$argon2id$v=19$…`).
    pub password_hash: String,
    pub created_at: String,
    /// Cognito-style groups, put in the user's access tokens (`cognito:groups`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct UsersFile {
    users: Vec<DevUser>,
}

/// The users file of a data dir. Read on every sign-in, so users added while
/// `items serve` runs can sign in at once.
#[derive(Debug, Clone)]
pub struct UserStore {
    path: PathBuf,
}

impl UserStore {
    pub fn in_dir(data_dir: &Path) -> Self {
        Self { path: data_dir.join(USERS_FILE) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every user; none when the file does not exist yet.
    pub fn list(&self) -> Result<Vec<DevUser>, UserError> {
        Ok(self.read()?.users)
    }

    /// Adds a user (or replaces its password with `replace`).
    pub fn add(&self, username: &str, password: &str, replace: bool) -> Result<DevUser, UserError> {
        validate_username(username)?;
        let password_hash = hash_password(password)?;
        let mut file = self.read()?;
        let existing = file.users.iter().position(|u| u.username == username);
        if existing.is_some() && !replace {
            return Err(UserError::Exists(username.to_owned()));
        }
        let user = DevUser {
            username: username.to_owned(),
            sub: dev_subject(username),
            password_hash,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            groups: existing.map(|index| file.users[index].groups.clone()).unwrap_or_default(),
        };
        match existing {
            Some(index) => file.users[index] = user.clone(),
            None => file.users.push(user.clone()),
        }
        self.write(&file)?;
        Ok(user)
    }

    /// Puts the user in exactly these groups.
    pub fn set_groups(&self, username: &str, groups: &[String]) -> Result<DevUser, UserError> {
        let mut file = self.read()?;
        let user = file
            .users
            .iter_mut()
            .find(|u| u.username == username)
            .ok_or_else(|| UserError::NotFound(username.to_owned()))?;
        user.groups = groups.to_vec();
        let user = user.clone();
        self.write(&file)?;
        Ok(user)
    }

    pub fn remove(&self, username: &str) -> Result<(), UserError> {
        let mut file = self.read()?;
        let before = file.users.len();
        file.users.retain(|u| u.username != username);
        if file.users.len() == before {
            return Err(UserError::NotFound(username.to_owned()));
        }
        self.write(&file)
    }

    /// The user whose name and password these are. Slow on purpose (Argon2id),
    /// and as slow for an unknown name as for a wrong password: run it off the
    /// async executor.
    pub fn authenticate(&self, username: &str, password: &str) -> Result<Option<DevUser>, UserError> {
        let users = self.list()?;
        match users.into_iter().find(|u| u.username == username) {
            Some(user) => Ok(verify_password(password, &user.password_hash).then_some(user)),
            None => {
                // Same work as a wrong password, so timing does not tell which names exist.
                let _ = verify_password(password, dummy_hash());
                Ok(None)
            }
        }
    }

    fn read(&self) -> Result<UsersFile, UserError> {
        match crate::data_dir::read_secret(&self.path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| UserError::Corrupt { path: self.path.clone(), source })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(UsersFile::default()),
            Err(source) => Err(UserError::Io { path: self.path.clone(), source }),
        }
    }

    /// Replaces the file whole (temporary file, then rename), readable by its owner only.
    fn write(&self, file: &UsersFile) -> Result<(), UserError> {
        use std::io::Write;
        let io = |source| UserError::Io { path: self.path.clone(), source };
        if let Some(dir) = self.path.parent() {
            crate::data_dir::create_private_dir(dir).map_err(io)?;
        }
        let mut bytes =
            serde_json::to_vec_pretty(file).map_err(|source| UserError::Corrupt { path: self.path.clone(), source })?;
        bytes.push(b'\n');
        let temporary = self.path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        let written = crate::data_dir::open_private(&temporary).and_then(|mut out| {
            out.write_all(&bytes)?;
            out.sync_all()
        });
        let renamed = written.and_then(|()| std::fs::rename(&temporary, &self.path));
        if renamed.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        renamed.map_err(io)
    }
}

/// Cognito-like usernames: 1 to 128 characters, no spaces or control characters.
pub fn validate_username(username: &str) -> Result<(), UserError> {
    if username.is_empty() {
        return Err(UserError::InvalidUsername("it is empty"));
    }
    if username.chars().count() > MAX_USERNAME_CHARS {
        return Err(UserError::InvalidUsername("it is longer than 128 characters"));
    }
    if username.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UserError::InvalidUsername("it contains spaces or control characters"));
    }
    Ok(())
}

/// An Argon2id PHC string for `password`, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, UserError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(UserError::InvalidPassword);
    }
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| UserError::Hash)?;
    let hash = Argon2::default().hash_password_with_salt(password.as_bytes(), &salt).map_err(|_| UserError::Hash)?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `hash` (false for a malformed hash).
pub fn verify_password(password: &str, hash: &str) -> bool {
    password.len() <= MAX_PASSWORD_BYTES && Argon2::default().verify_password(password.as_bytes(), hash).is_ok()
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not the password of anyone").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store() -> (UserStore, PathBuf) {
        let dir = std::env::temp_dir().join(format!("items-users-{}", uuid::Uuid::new_v4().simple()));
        (UserStore::in_dir(&dir), dir)
    }

    #[test]
    fn hash_round_trip_and_salting() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password("", &hash));
        assert!(!verify_password("correct horse battery", "not a hash"));
        assert_ne!(hash, hash_password("correct horse battery").unwrap(), "a fresh salt each time");
    }

    #[test]
    fn weak_or_huge_passwords_are_refused() {
        assert!(matches!(hash_password("short"), Err(UserError::InvalidPassword)));
        assert!(matches!(hash_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)), Err(UserError::InvalidPassword)));
    }

    #[test]
    fn usernames_are_checked() {
        assert!(validate_username("alice@example.com").is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username("a b").is_err());
        assert!(validate_username("a\u{7}").is_err());
        assert!(validate_username(&"a".repeat(129)).is_err());
    }

    #[test]
    fn add_list_authenticate_remove() {
        let (store, dir) = temp_store();
        assert!(store.list().unwrap().is_empty(), "no file means no users");
        let alice = store.add("alice", "correct horse battery", false).unwrap();
        assert_eq!(alice.sub, dev_subject("alice"));
        assert!(matches!(store.add("alice", "another password", false), Err(UserError::Exists(_))));
        store.add("bob", "bob's long password", false).unwrap();

        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(!text.contains("correct horse battery"), "no clear-text password on disk");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(store.path()).unwrap().permissions().mode() & 0o777, 0o600);
        }

        assert_eq!(store.authenticate("alice", "correct horse battery").unwrap(), Some(alice));
        assert_eq!(store.authenticate("alice", "bob's long password").unwrap(), None);
        assert_eq!(store.authenticate("carol", "correct horse battery").unwrap(), None);

        store.add("alice", "a new password", true).unwrap();
        assert!(store.authenticate("alice", "a new password").unwrap().is_some());
        assert!(store.authenticate("alice", "correct horse battery").unwrap().is_none());

        store.remove("bob").unwrap();
        assert!(matches!(store.remove("bob"), Err(UserError::NotFound(_))));
        let names: Vec<String> = store.list().unwrap().into_iter().map(|u| u.username).collect();
        assert_eq!(names, ["alice"]);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary files left");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_an_empty_list() {
        let (store, dir) = temp_store();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(store.path(), "{not json").unwrap();
        assert!(matches!(store.list(), Err(UserError::Corrupt { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
