//! Authentication (`quiver serve --auth`): Milvus's user:password scheme over argon2id hashes.
//!
//! - Every RPC carries the `authorization` metadata: base64 of `user:password` (pymilvus sends
//!   base64 of its `token`, or of `user:password`). A raw `user:password` is accepted too.
//! - Failures are answered as Milvus answers them, with the gRPC status UNAUTHENTICATED (not a
//!   `common.Status`, which the SDKs would retry): "missing authorization in header", "invalid
//!   token format", or "auth check failure, please check username and password are correct".
//!   Connect is checked like every other RPC.
//! - Passwords are stored through the engine's user API as argon2id PHC strings
//!   (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`, the OWASP-recommended default parameters),
//!   so they are durable and never kept in clear.
//! - argon2 is deliberately slow (tens of milliseconds), so a verified header is cached for
//!   [`CACHE_TTL`], keyed by a keyed BLAKE2s hash of the header (the cache holds no password).
//!   Updating or deleting a user drops that user's entries at once. Wrong passwords are never
//!   cached; at most [`max_concurrent_verifications`] argon2 runs (19 MiB each) happen at once,
//!   so a flood of bad credentials queues instead of exhausting memory.
//! - The `root` user is created on the first start with auth on ([`ensure_root`]), with the
//!   password given by `--root-password` (Milvus's default is `Milvus`); afterwards the password
//!   changes only through UpdateCredential.
//! - There are no roles: every authenticated user may do everything (RBAC is not implemented).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use blake2::{Blake2s256, Digest};
use quiver_core::{Error, Result};
use quiver_engine::Engine;

/// The superuser Milvus creates, and its default password.
pub const ROOT_USER: &str = "root";
pub const DEFAULT_ROOT_PASSWORD: &str = "Milvus";
/// Milvus's limits for user names and passwords.
pub const MAX_USERNAME_LEN: usize = 32;
pub const MIN_PASSWORD_LEN: usize = 6;
pub const MAX_PASSWORD_LEN: usize = 256;
/// How long a verified `authorization` header is trusted without running argon2 again.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
const CACHE_MAX: usize = 1024;

/// Hash a password into an argon2id PHC string (random 16-byte salt).
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("hashing a password: {e}")))
}

/// Whether `password` matches a stored PHC string (anything unparsable never matches).
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Milvus's user name rule: a letter, then letters, digits or underscores, at most 32 in all.
pub fn check_username(name: &str) -> std::result::Result<(), String> {
    let why = if name.is_empty() {
        "the user name must not be empty".to_string()
    } else if name.chars().count() > MAX_USERNAME_LEN {
        format!("the length of a user name must be at most {MAX_USERNAME_LEN} characters")
    } else if !name.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
        "the first character of a user name must be a letter".to_string()
    } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        "a user name can only contain letters, digits and underscores".to_string()
    } else {
        return Ok(());
    };
    Err(format!(
        "invalid user name {name:?}, {why}: invalid parameter"
    ))
}

/// Milvus's password rule: 6 to 256 bytes.
pub fn check_password(password: &str) -> std::result::Result<(), String> {
    let n = password.len();
    if (MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&n) {
        Ok(())
    } else {
        Err(format!(
            "invalid password length: out of range {MIN_PASSWORD_LEN} <= value <= \
             {MAX_PASSWORD_LEN} (got {n}): invalid parameter"
        ))
    }
}

/// A password field of a credential request (base64 of the UTF-8 password).
pub fn decode_password(b64: &str) -> std::result::Result<String, String> {
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| "invalid password: it must be base64 of a UTF-8 string".to_string())
}

/// Create `root` with `password` unless it exists. Returns whether it was created.
pub fn ensure_root(engine: &Engine, password: &str) -> Result<bool> {
    if engine.user_password_hash(ROOT_USER).is_some() {
        return Ok(false);
    }
    check_password(password).map_err(Error::InvalidArgument)?;
    match engine.create_user(ROOT_USER, &hash_password(password)?) {
        Ok(()) => Ok(true),
        Err(Error::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Why a request was not authenticated (the message Milvus sends with UNAUTHENTICATED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    BadFormat,
    WrongCredentials,
}

impl AuthError {
    pub fn message(self) -> &'static str {
        match self {
            AuthError::Missing => "missing authorization in header",
            AuthError::BadFormat => "invalid token format",
            AuthError::WrongCredentials => {
                "auth check failure, please check username and password are correct"
            }
        }
    }
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl From<AuthError> for tonic::Status {
    fn from(e: AuthError) -> tonic::Status {
        tonic::Status::unauthenticated(e.message())
    }
}

/// `user:password` from an `authorization` value (base64, or raw when it is not base64).
pub fn parse_authorization(value: &str) -> std::result::Result<(String, String), AuthError> {
    let value = value.trim();
    let raw = match base64::engine::general_purpose::STANDARD.decode(value) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|_| AuthError::BadFormat)?,
        Err(_) if value.contains(':') => value.to_string(),
        Err(_) => return Err(AuthError::BadFormat),
    };
    match raw.split_once(':') {
        Some((user, password)) => Ok((user.to_string(), password.to_string())),
        // Milvus treats a token without ':' as an API key; Quiver has none.
        None => Err(AuthError::WrongCredentials),
    }
}

struct Cached {
    user: String,
    at: Instant,
}

/// How many password verifications may run at once: one per core (at least two).
pub fn max_concurrent_verifications() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

/// The credential checker of a server started with `--auth`.
pub struct Auth {
    engine: Arc<Engine>,
    /// Key of the header hash, random per process.
    key: [u8; 32],
    cache: Mutex<HashMap<[u8; 32], Cached>>,
    verifications: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

impl Auth {
    pub fn new(engine: Arc<Engine>) -> Auth {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        Auth {
            engine,
            key,
            cache: Mutex::new(HashMap::new()),
            verifications: tokio::sync::Semaphore::new(max_concurrent_verifications()),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Cached>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cache_key(&self, header: &str) -> [u8; 32] {
        let mut h = Blake2s256::new();
        h.update(self.key);
        h.update(header.as_bytes());
        h.finalize().into()
    }

    /// The user a header was verified for within [`CACHE_TTL`], if any.
    pub fn cached(&self, header: &str) -> Option<String> {
        let key = self.cache_key(header);
        let mut cache = self.cache();
        match cache.get(&key) {
            Some(c) if c.at.elapsed() < CACHE_TTL => Some(c.user.clone()),
            Some(_) => {
                cache.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Verify an `authorization` value (runs argon2 on a cache miss: call it on a blocking
    /// thread). Returns the user name.
    pub fn verify(&self, header: &str) -> std::result::Result<String, AuthError> {
        if let Some(user) = self.cached(header) {
            return Ok(user);
        }
        let (user, password) = parse_authorization(header)?;
        let ok = self
            .engine
            .user_password_hash(&user)
            .is_some_and(|phc| verify_password(&password, &phc));
        if !ok {
            return Err(AuthError::WrongCredentials);
        }
        let mut cache = self.cache();
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, c| c.at.elapsed() < CACHE_TTL);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(
            self.cache_key(header),
            Cached {
                user: user.clone(),
                at: Instant::now(),
            },
        );
        Ok(user)
    }

    /// Check a gRPC request's metadata; the error is Milvus's UNAUTHENTICATED status.
    pub async fn authenticate(
        self: &Arc<Self>,
        metadata: &tonic::metadata::MetadataMap,
    ) -> std::result::Result<String, tonic::Status> {
        let header = metadata
            .get("authorization")
            .ok_or(AuthError::Missing)?
            .to_str()
            .map_err(|_| AuthError::BadFormat)?
            .to_string();
        if let Some(user) = self.cached(&header) {
            return Ok(user);
        }
        let _slot = self
            .verifications
            .acquire()
            .await
            .map_err(|_| tonic::Status::unavailable("shutting down"))?;
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || me.verify(&header))
            .await
            .map_err(|e| tonic::Status::internal(format!("verifying credentials: {e}")))?
            .map_err(tonic::Status::from)
    }

    /// Forget every cached verification of `user` (its password changed or it was deleted).
    pub fn forget_user(&self, user: &str) {
        self.cache().retain(|_, c| c.user != user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn hashes_verify_and_are_salted() {
        let a = hash_password("Milvus").unwrap();
        let b = hash_password("Milvus").unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b);
        assert!(verify_password("Milvus", &a));
        assert!(!verify_password("milvus", &a));
        assert!(!verify_password("Milvus", "not a phc string"));
    }

    #[test]
    fn names_and_passwords_follow_milvus() {
        for ok in ["root", "a", "user_1", "A2345678901234567890123456789012"] {
            assert!(check_username(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "0",
            "n@me",
            "h h",
            "_x",
            "A23456789012345678901234567890123",
        ] {
            assert!(check_username(bad).is_err(), "{bad:?}");
        }
        assert!(check_password("123456").is_ok());
        for bad in ["", "0", "p@ss", "1+1=2"] {
            let e = check_password(bad).unwrap_err();
            assert!(e.contains("invalid password"), "{e}");
        }
        assert!(check_password(&"x".repeat(257)).is_err());
        assert_eq!(decode_password(&b64("secret")).unwrap(), "secret");
        assert!(decode_password("%%%").is_err());
    }

    #[test]
    fn authorization_values() {
        assert_eq!(
            parse_authorization(&b64("root:Milvus")).unwrap(),
            ("root".to_string(), "Milvus".to_string())
        );
        assert_eq!(
            parse_authorization(&b64("u:p:q")).unwrap(),
            ("u".to_string(), "p:q".to_string())
        );
        assert_eq!(
            parse_authorization("root:Milvus").unwrap(),
            ("root".to_string(), "Milvus".to_string())
        );
        assert_eq!(parse_authorization("???"), Err(AuthError::BadFormat));
        assert_eq!(
            parse_authorization(&b64("apikey")),
            Err(AuthError::WrongCredentials)
        );
    }

    #[test]
    fn verification_is_cached_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let opts = quiver_engine::EngineOptions {
            sync: false,
            ..Default::default()
        };
        let engine = Arc::new(Engine::open(dir.path(), opts).unwrap());
        assert!(ensure_root(&engine, "Milvus").unwrap());
        assert!(!ensure_root(&engine, "other1").unwrap());
        let auth = Auth::new(Arc::clone(&engine));
        let good = b64("root:Milvus");
        assert_eq!(auth.cached(&good), None);
        assert_eq!(auth.verify(&good).unwrap(), "root");
        assert_eq!(auth.cached(&good).as_deref(), Some("root"));
        assert_eq!(
            auth.verify(&b64("root:milvus")),
            Err(AuthError::WrongCredentials)
        );
        assert_eq!(
            auth.verify(&b64("nobody:Milvus")),
            Err(AuthError::WrongCredentials)
        );
        engine
            .update_user(ROOT_USER, &hash_password("changed").unwrap())
            .unwrap();
        auth.forget_user(ROOT_USER);
        assert_eq!(auth.cached(&good), None);
        assert_eq!(auth.verify(&good), Err(AuthError::WrongCredentials));
        assert_eq!(auth.verify(&b64("root:changed")).unwrap(), "root");
    }
}
