//! Who may use the console: users with argon2id password hashes, sessions behind an
//! HttpOnly cookie, a CSRF token per session, API bearer tokens, and a bound on failed logins
//! per client address.

use std::{
    collections::HashMap,
    io::Write as _,
    net::IpAddr,
    os::unix::fs::OpenOptionsExt as _,
    path::Path,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use argon2::{
    Argon2,
    password_hash::{PasswordHasher as _, PasswordVerifier as _, phc::PasswordHash},
};

use super::config::UiUser;
use crate::{
    outputs::Secret,
    store::{PgStore, now_ns},
};

/// `n` random bytes as lowercase hex, from the OS.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the OS gives random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An argon2id PHC string of `password` (a fresh random salt each time).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing: {e}"))
}

/// The users who may log in.
pub struct Users {
    hashes: HashMap<String, String>,
}

impl Users {
    /// The configured users, each hash checked now (a typo must not lock everyone out
    /// silently).
    pub fn new(users: &[UiUser]) -> anyhow::Result<Users> {
        let mut hashes = HashMap::new();
        for user in users {
            PasswordHash::new(&user.password_hash).map_err(|e| {
                anyhow::anyhow!("ui.users: the password_hash of `{}` is not a PHC string: {e}", user.name)
            })?;
            if hashes.insert(user.name.clone(), user.password_hash.clone()).is_some() {
                bail!("ui.users: `{}` is listed twice", user.name);
            }
        }
        Ok(Users { hashes })
    }

    /// The user `admin` with the hash kept in `file`; when there is none, a new random
    /// password, whose hash only is kept (the file created 0600) and which is returned once
    /// for the operator.
    pub fn admin_from(file: &Path) -> anyhow::Result<(Users, Option<String>)> {
        match std::fs::read_to_string(file) {
            Ok(text) => {
                let hash = text.trim().to_owned();
                let users = Users::new(&[UiUser { name: "admin".into(), password_hash: hash }])
                    .with_context(|| format!("the admin password hash in {}", file.display()))?;
                Ok((users, None))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let password = random_password();
                let hash = hash_password(&password)?;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(file)
                    .with_context(|| format!("creating {}", file.display()))?;
                writeln!(f, "{hash}").with_context(|| format!("writing {}", file.display()))?;
                let users = Users { hashes: HashMap::from([("admin".to_owned(), hash)]) };
                Ok((users, Some(password)))
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
        }
    }

    /// Whether `password` is `name`'s. An unknown user costs the same hash as a known one,
    /// so the time taken does not tell which names exist.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let (hash, known) = match self.hashes.get(name) {
            Some(hash) => (hash.as_str(), true),
            None => (DUMMY.get_or_init(|| hash_password(&random_hex(16)).unwrap_or_default()).as_str(), false),
        };
        let Ok(parsed) = PasswordHash::new(hash) else { return false };
        Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && known
    }
}

/// 24 characters of letters and digits (about 140 bits).
fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the OS gives random bytes");
    bytes.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

/// A logged-in user's session.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: String,
    /// The token every form of the session must carry.
    pub csrf: String,
    expires: Instant,
}

/// Sessions by their cookie's token: held by this process (at most [`MAX_SESSIONS`]), or in
/// the PostgreSQL store that console replicas share, so a login holds on every replica.
pub struct Sessions {
    ttl: Duration,
    held: Held,
}

enum Held {
    Here(Mutex<HashMap<String, Session>>),
    /// Under the SHA-256 of their token, which the database alone sees.
    Shared(PgStore),
}

/// Sessions held at most by one process; a new login past it ends the one closest to
/// expiring.
pub const MAX_SESSIONS: usize = 10_000;

impl Sessions {
    /// Sessions this process holds.
    pub fn new(ttl: Duration) -> Sessions {
        Sessions { ttl, held: Held::Here(Mutex::default()) }
    }

    /// Sessions in `store`, shared with the other consoles on it.
    pub fn shared(ttl: Duration, store: PgStore) -> Sessions {
        Sessions { ttl, held: Held::Shared(store) }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session for `user`; its token.
    pub async fn start(&self, user: &str) -> anyhow::Result<String> {
        let token = random_hex(32);
        let session = Session { user: user.to_owned(), csrf: random_hex(32), expires: Instant::now() + self.ttl };
        match &self.held {
            Held::Here(held) => {
                let now = Instant::now();
                let mut sessions = held.lock().unwrap_or_else(PoisonError::into_inner);
                sessions.retain(|_, s| s.expires > now);
                if sessions.len() >= MAX_SESSIONS
                    && let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.expires).map(|(t, _)| t.clone())
                {
                    sessions.remove(&oldest);
                }
                sessions.insert(token.clone(), session);
            }
            Held::Shared(store) => {
                let (store, token, expires) = (store.clone(), token.clone(), now_ns() + self.ttl.as_nanos() as u64);
                tokio::task::spawn_blocking(move || store.session_start(&token, &session.user, &session.csrf, expires))
                    .await??;
            }
        }
        Ok(token)
    }

    /// The live session of `token` (none when the shared store cannot be read: logged).
    pub async fn get(&self, token: &str) -> Option<Session> {
        match &self.held {
            Held::Here(held) => {
                let mut sessions = held.lock().unwrap_or_else(PoisonError::into_inner);
                match sessions.get(token) {
                    Some(s) if s.expires > Instant::now() => Some(s.clone()),
                    Some(_) => {
                        sessions.remove(token);
                        None
                    }
                    None => None,
                }
            }
            Held::Shared(store) => {
                let (store, token) = (store.clone(), token.to_owned());
                let found = tokio::task::spawn_blocking(move || store.session(&token, now_ns())).await;
                match found.map_err(anyhow::Error::from).and_then(|f| f) {
                    Ok(found) => found.map(|(user, csrf, expires_ns)| Session {
                        user,
                        csrf,
                        expires: Instant::now() + Duration::from_nanos(expires_ns.saturating_sub(now_ns())),
                    }),
                    Err(e) => {
                        log::warn!("ui: reading a session from the store: {e:#}");
                        None
                    }
                }
            }
        }
    }

    pub async fn end(&self, token: &str) {
        match &self.held {
            Held::Here(held) => {
                held.lock().unwrap_or_else(PoisonError::into_inner).remove(token);
            }
            Held::Shared(store) => {
                let (store, token) = (store.clone(), token.to_owned());
                let ended = tokio::task::spawn_blocking(move || store.session_end(&token)).await;
                if let Err(e) = ended.map_err(anyhow::Error::from).and_then(|e| e) {
                    log::warn!("ui: ending a session in the store: {e:#}");
                }
            }
        }
    }
}

/// Failed logins per client address: past `attempts` within `window`, the address waits
/// until the window of its first failure ends. At most [`MAX_CLIENTS`] addresses are
/// tracked; past that, the oldest entry is forgotten.
pub struct LoginLimiter {
    attempts: u32,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

pub const MAX_CLIENTS: usize = 10_000;

impl LoginLimiter {
    pub fn new(attempts: u32, window: Duration) -> LoginLimiter {
        LoginLimiter { attempts, window, failures: Mutex::default() }
    }

    /// How long `client` must wait before trying again, if it must.
    pub fn wait(&self, client: IpAddr) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let (count, since) = failures.get(&client)?;
        let left = self.window.checked_sub(since.elapsed())?;
        (*count >= self.attempts).then_some(left)
    }

    pub fn failed(&self, client: IpAddr) {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        failures.retain(|_, (_, since)| now.duration_since(*since) < self.window);
        if failures.len() >= MAX_CLIENTS
            && !failures.contains_key(&client)
            && let Some(oldest) = failures.iter().min_by_key(|(_, (_, since))| *since).map(|(ip, _)| *ip)
        {
            failures.remove(&oldest);
        }
        let entry = failures.entry(client).or_insert((0, now));
        entry.0 += 1;
    }

    pub fn succeeded(&self, client: IpAddr) {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner).remove(&client);
    }
}

/// API bearer tokens.
pub struct Tokens(Vec<Secret>);

impl Tokens {
    pub fn new(tokens: Vec<Secret>) -> Tokens {
        Tokens(tokens)
    }

    /// Whether `token` is one of them.
    pub fn accepts(&self, token: &str) -> bool {
        self.0.iter().any(|t| t.matches(token.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_against_their_hash_only() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        let users = Users::new(&[UiUser { name: "alice".into(), password_hash: hash }]).unwrap();
        assert!(users.verify("alice", "correct horse"));
        assert!(!users.verify("alice", "correct horse "));
        assert!(!users.verify("bob", "correct horse"));
        assert!(Users::new(&[UiUser { name: "x".into(), password_hash: "plain".into() }]).is_err());
    }

    #[test]
    fn the_first_admin_gets_a_random_password_whose_hash_only_is_kept() {
        let dir = std::env::temp_dir().join(format!("sensor-ui-admin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ui-admin.hash");
        let _ = std::fs::remove_file(&file);
        let (users, password) = Users::admin_from(&file).unwrap();
        let password = password.expect("a new password, once");
        assert_eq!(password.len(), 24);
        assert!(users.verify("admin", &password));
        let kept = std::fs::read_to_string(&file).unwrap();
        assert!(kept.starts_with("$argon2id$") && !kept.contains(&password));
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        let (again, none) = Users::admin_from(&file).unwrap();
        assert!(none.is_none(), "the password is given once");
        assert!(again.verify("admin", &password));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn failed_logins_make_an_address_wait() {
        let limiter = LoginLimiter::new(3, Duration::from_secs(60));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            assert_eq!(limiter.wait(a), None);
            limiter.failed(a);
        }
        assert!(limiter.wait(a).is_some_and(|w| w > Duration::from_secs(50)));
        assert_eq!(limiter.wait(b), None, "another address is not held");
        limiter.succeeded(a);
        assert_eq!(limiter.wait(a), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sessions_end_and_expire_here_and_in_postgresql() {
        let pg = tokio::task::block_in_place(|| crate::store::pg_server::database("sessions"));
        let config = crate::store::StoreConfig::postgres(pg.clone());
        // Each a console replica's connections.
        let store = || tokio::task::block_in_place(|| PgStore::connect(&pg, &config).unwrap());
        let ttl = Duration::from_millis(300);
        for (kind, sessions) in [("here", Sessions::new(ttl)), ("shared", Sessions::shared(ttl, store()))] {
            let token = sessions.start("alice").await.unwrap();
            assert_eq!(token.len(), 64);
            assert_eq!(sessions.get(&token).await.map(|s| s.user), Some("alice".into()), "{kind}");
            assert!(sessions.get("forged").await.is_none(), "{kind}");
            let other = sessions.start("bob").await.unwrap();
            sessions.end(&other).await;
            assert!(sessions.get(&other).await.is_none(), "{kind}: ended");
            tokio::time::sleep(Duration::from_millis(400)).await;
            assert!(sessions.get(&token).await.is_none(), "{kind}: expired");
        }
        // A login on one replica holds on another, and a logout on it ends it everywhere.
        let (one, two) =
            (Sessions::shared(Duration::from_secs(60), store()), Sessions::shared(Duration::from_secs(60), store()));
        let token = one.start("carol").await.unwrap();
        let seen = two.get(&token).await.expect("the other replica knows the session");
        assert_eq!((seen.user.as_str(), seen.csrf), ("carol", one.get(&token).await.unwrap().csrf));
        two.end(&token).await;
        assert!(one.get(&token).await.is_none());
    }
}
