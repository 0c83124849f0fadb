//! HashiCorp Vault, read the way the original's Dynaconf read it: where Vault
//! is and how to log in (`VAULT_*_FOR_DYNACONF`, Vault's own `VAULT_ADDR`,
//! `VAULT_TOKEN`, `VAULT_CACERT`, or a `vault:` section), and a small client
//! for KV v1 and v2 with token or AppRole login. Nothing here contacts Vault
//! until a secret is asked for; each secret is fetched once per process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Map, Value};

use super::error::ConfigError;

/// Where Vault is, how to log in, and where the Vault layer is.
#[derive(Clone, Debug)]
pub struct VaultSettings {
    /// The variable or key that turned the layer on, `None` when it is off.
    pub layer_by: Option<String>,
    pub url: String,
    pub url_from: String,
    pub auth: Auth,
    pub mount: String,
    /// The layer's path: secrets `<path>/default` and `<path>/<env>`.
    pub path: String,
    pub kv_version: u8,
    /// A PEM file of extra CA certificates (`VAULT_CACERT`), added to the
    /// system's roots.
    pub cacert: Option<PathBuf>,
}

/// How alto logs in; each credential remembers the variable or key it came
/// from, so that errors can name it (never its value).
#[derive(Clone)]
pub enum Auth {
    None,
    Token {
        token: String,
        from: String,
    },
    AppRole {
        role_id: String,
        secret_id: String,
        from: String,
    },
}

/// Never prints a credential.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Token { from, .. } => write!(f, "Token(from {from})"),
            Auth::AppRole { from, .. } => write!(f, "AppRole(from {from})"),
        }
    }
}

/// The keys a `vault:` section may hold.
const SECTION_KEYS: [&str; 9] = [
    "enabled",
    "url",
    "token",
    "role_id",
    "secret_id",
    "mount_point",
    "path",
    "kv_version",
    "cacert",
];

impl VaultSettings {
    /// The settings from the `vault:` section (already merged from the
    /// files) and the variables (the process over `.env`): Dynaconf's
    /// variables win over Vault's standard ones, which win over the section.
    pub fn resolve(
        section: Option<&Value>,
        vars: &BTreeMap<String, String>,
        root: &Path,
    ) -> Result<VaultSettings, ConfigError> {
        let empty = Map::new();
        let section = match section {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(_) => return Err(bad("`vault` must be a map of settings".into())),
        };
        for key in section.keys() {
            if !SECTION_KEYS.contains(&key.as_str()) && !key.starts_with('_') {
                super::keys::warn_once(
                    &format!("vault-key:{key}"),
                    &format!(
                        "vault: unknown key `{key}`; alto reads {}",
                        SECTION_KEYS.join(", ")
                    ),
                );
            }
        }
        // The first of the variables, then the section's key: (value, where from).
        let pick = |names: &[&str], key: &str| -> Result<Option<(String, String)>, ConfigError> {
            for n in names {
                if let Some(v) = vars.get(*n).filter(|v| !v.is_empty()) {
                    return Ok(Some((v.clone(), (*n).to_string())));
                }
            }
            match section.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some((s.clone(), format!("vault.{key}")))),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => {
                    Ok(Some((v.to_string(), format!("vault.{key}"))))
                }
                Some(_) => Err(bad(format!("`vault.{key}` must be a string"))),
            }
        };
        let layer_by = match pick(&["VAULT_ENABLED_FOR_DYNACONF"], "enabled")? {
            None => None,
            Some((v, from)) => match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" | "y" => Some(from),
                "false" | "0" | "no" | "off" | "n" | "" => None,
                _ => {
                    return Err(bad(format!(
                        "{from} must be true or false, not `{}`",
                        v.trim()
                    )));
                }
            },
        };
        let (url, url_from) = pick(&["VAULT_URL_FOR_DYNACONF", "VAULT_ADDR"], "url")?
            .unwrap_or_else(|| ("http://localhost:8200".into(), "the default".into()));
        let url = url.trim().trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(bad(format!(
                "{url_from} must be an http:// or https:// URL, not `{url}`"
            )));
        }
        let role = pick(&["VAULT_ROLE_ID_FOR_DYNACONF"], "role_id")?;
        let auth = if let Some((role_id, from)) = role {
            let Some((secret_id, _)) = pick(&["VAULT_SECRET_ID_FOR_DYNACONF"], "secret_id")? else {
                return Err(bad(format!(
                    "{from} is set but no secret id is: set VAULT_SECRET_ID_FOR_DYNACONF (or vault.secret_id) for AppRole login"
                )));
            };
            Auth::AppRole {
                role_id,
                secret_id,
                from,
            }
        } else if let Some((token, from)) =
            pick(&["VAULT_TOKEN_FOR_DYNACONF", "VAULT_TOKEN"], "token")?
        {
            Auth::Token { token, from }
        } else {
            Auth::None
        };
        let (mount, _) = pick(&["VAULT_MOUNT_POINT_FOR_DYNACONF"], "mount_point")?
            .unwrap_or_else(|| ("secret".into(), String::new()));
        let (path, _) = pick(&["VAULT_PATH_FOR_DYNACONF"], "path")?
            .unwrap_or_else(|| ("dynaconf".into(), String::new()));
        let kv_version = match pick(&["VAULT_KV_VERSION_FOR_DYNACONF"], "kv_version")? {
            None => 1,
            Some((v, from)) => match v.trim() {
                "1" => 1,
                "2" => 2,
                other => return Err(bad(format!("{from} must be 1 or 2, not `{other}`"))),
            },
        };
        let cacert = pick(&["VAULT_CACERT"], "cacert")?.map(|(p, _)| root.join(p));
        Ok(VaultSettings {
            layer_by,
            url,
            url_from,
            auth,
            mount: mount.trim_matches('/').to_string(),
            path: path.trim_matches('/').to_string(),
            kv_version,
            cacert,
        })
    }

    /// The token itself, when one is configured: a secret to scrub from logs.
    pub fn secrets(&self) -> Vec<String> {
        match &self.auth {
            Auth::None => Vec::new(),
            Auth::Token { token, .. } => vec![token.clone()],
            Auth::AppRole { secret_id, .. } => vec![secret_id.clone()],
        }
    }
}

fn bad(message: String) -> ConfigError {
    ConfigError::VaultSetting { message }
}

/// A secret as Vault answered: its keys and values, or nothing at that path.
type Secret = Option<Map<String, Value>>;

/// The Vault client of one process: the login and every secret are fetched
/// at most once, when first needed.
pub struct Vault {
    settings: VaultSettings,
    token: OnceLock<String>,
    secrets: Mutex<BTreeMap<String, Secret>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What went wrong talking to Vault, before it is told who needed it.
enum Failure {
    Unreachable(String),
    Denied(u16, String),
    Setting(String),
}

impl Vault {
    pub fn new(settings: VaultSettings) -> Vault {
        Vault {
            settings,
            token: OnceLock::new(),
            secrets: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn settings(&self) -> &VaultSettings {
        &self.settings
    }

    /// The secret at `path` under the mount point, `None` when Vault has
    /// none there. `needed_by` names what asked (a config key, or the
    /// variable that turned the layer on) for the error.
    pub fn secret(&self, path: &str, needed_by: &str) -> Result<Secret, ConfigError> {
        let path = path.trim_matches('/');
        if let Ok(cache) = self.secrets.lock()
            && let Some(s) = cache.get(path)
        {
            return Ok(s.clone());
        }
        let fetched = self
            .fetch(path)
            .map_err(|f| self.error(f, path, needed_by))?;
        if let Ok(mut cache) = self.secrets.lock() {
            cache.insert(path.to_string(), fetched.clone());
        }
        Ok(fetched)
    }

    /// One value of a secret, for `{vault[path#key]}`.
    pub fn value(&self, path: &str, key: &str, needed_by: &str) -> Result<Value, ConfigError> {
        let secret = self.secret(path, needed_by)?;
        let shown = self.shown(path);
        match secret {
            None => Err(ConfigError::VaultMissing {
                message: format!(
                    "`{needed_by}` needs {shown}#{key}, but Vault has no secret {shown}"
                ),
                help: format!(
                    "write it (`vault kv put {shown} {key}=...`), or fix the path in `{{vault[{path}#{key}]}}`; paths are under the mount point `{}`",
                    self.settings.mount
                ),
            }),
            Some(m) => m.get(key).cloned().ok_or_else(|| {
                let mut keys: Vec<&str> = m.keys().map(String::as_str).collect();
                keys.sort();
                ConfigError::VaultMissing {
                    message: format!(
                        "`{needed_by}` needs {shown}#{key}, but that secret has no key `{key}`"
                    ),
                    help: if keys.is_empty() {
                        "the secret has no keys".into()
                    } else {
                        format!("its keys: {}", keys.join(", "))
                    },
                }
            }),
        }
    }

    /// `mount/path`, as `vault kv get` takes it.
    pub fn shown(&self, path: &str) -> String {
        format!("{}/{}", self.settings.mount, path.trim_matches('/'))
    }

    fn error(&self, f: Failure, path: &str, needed_by: &str) -> ConfigError {
        let url = &self.settings.url;
        let shown = self.shown(path);
        match f {
            Failure::Unreachable(cause) => ConfigError::VaultUnreachable {
                message: format!(
                    "`{needed_by}` needs {shown} from Vault at {url} ({}), which cannot be reached: {cause}",
                    self.settings.url_from
                ),
            },
            Failure::Denied(status, what) => ConfigError::VaultDenied {
                message: format!(
                    "`{needed_by}` needs {shown}, and Vault at {url} refused {what} (HTTP {status})"
                ),
            },
            Failure::Setting(message) => ConfigError::VaultSetting {
                message: format!("`{needed_by}` needs {shown} from Vault: {message}"),
            },
        }
    }

    fn fetch(&self, path: &str) -> Result<Secret, Failure> {
        let url = match self.settings.kv_version {
            2 => format!(
                "{}/v1/{}/data/{path}",
                self.settings.url, self.settings.mount
            ),
            _ => format!("{}/v1/{}/{path}", self.settings.url, self.settings.mount),
        };
        let client = self.http()?;
        let token = self.login(&client)?;
        let (status, body) = run(async {
            let r = client
                .get(&url)
                .header("X-Vault-Token", token)
                .send()
                .await?;
            let status = r.status().as_u16();
            Ok((status, r.bytes().await?))
        })?;
        let from = match &self.settings.auth {
            Auth::Token { from, .. } => format!("the token from {from}"),
            Auth::AppRole { from, .. } => format!("the AppRole login of {from}"),
            Auth::None => "the request".into(),
        };
        match status {
            404 => Ok(None),
            401 | 403 => Err(Failure::Denied(status, from)),
            200 => {
                let v: Value = serde_json::from_slice(&body)
                    .map_err(|e| Failure::Unreachable(format!("its answer is not JSON: {e}")))?;
                let data = match self.settings.kv_version {
                    2 => v.get("data").and_then(|d| d.get("data")),
                    _ => v.get("data"),
                };
                match data {
                    Some(Value::Object(m)) => Ok(Some(m.clone())),
                    // KV v2 answers `"data": null` for a deleted version.
                    Some(Value::Null) => Ok(None),
                    _ => Err(Failure::Unreachable(format!(
                        "its answer holds no secret data (is the mount KV version {}?)",
                        self.settings.kv_version
                    ))),
                }
            }
            s => Err(Failure::Unreachable(format!("it answered HTTP {s}"))),
        }
    }

    /// The token to send: the configured one, or an AppRole login's.
    fn login(&self, client: &reqwest::Client) -> Result<String, Failure> {
        if let Some(t) = self.token.get() {
            return Ok(t.clone());
        }
        let token = match &self.settings.auth {
            Auth::None => {
                return Err(Failure::Setting(
                    "no Vault token: set VAULT_TOKEN (or VAULT_TOKEN_FOR_DYNACONF), or AppRole credentials in VAULT_ROLE_ID_FOR_DYNACONF and VAULT_SECRET_ID_FOR_DYNACONF".into(),
                ));
            }
            Auth::Token { token, .. } => token.clone(),
            Auth::AppRole {
                role_id,
                secret_id,
                from,
            } => {
                let url = format!("{}/v1/auth/approle/login", self.settings.url);
                let body = serde_json::json!({"role_id": role_id, "secret_id": secret_id});
                let (status, answer) = run(async {
                    let r = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.to_string())
                        .send()
                        .await?;
                    let status = r.status().as_u16();
                    Ok((status, r.bytes().await?))
                })?;
                if status != 200 {
                    return Err(Failure::Denied(
                        status,
                        format!("the AppRole login of {from}"),
                    ));
                }
                let v: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
                match v
                    .get("auth")
                    .and_then(|a| a.get("client_token"))
                    .and_then(Value::as_str)
                {
                    Some(t) => t.to_string(),
                    None => {
                        return Err(Failure::Unreachable(
                            "its AppRole login answer holds no client token".into(),
                        ));
                    }
                }
            }
        };
        Ok(self.token.get_or_init(|| token).clone())
    }

    /// An HTTP client trusting the system's roots and `VAULT_CACERT`.
    fn http(&self) -> Result<reqwest::Client, Failure> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60));
        if let Some(ca) = &self.settings.cacert {
            let pem = std::fs::read(ca).map_err(|e| {
                Failure::Setting(format!("cannot read VAULT_CACERT {}: {e}", ca.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Failure::Setting(format!(
                    "VAULT_CACERT {} holds no PEM certificate: {e}",
                    ca.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(Failure::Setting(format!(
                    "VAULT_CACERT {} holds no PEM certificate",
                    ca.display()
                )));
            }
            b = b.tls_certs_merge(certs);
        }
        b.build()
            .map_err(|e| Failure::Setting(format!("cannot set up TLS: {}", chain(&e))))
    }
}

/// Runs one request on a small runtime of its own, on a thread of its own
/// so that it works whether or not the caller is inside a runtime.
fn run<T: Send>(
    fut: impl std::future::Future<Output = Result<T, reqwest::Error>> + Send,
) -> Result<T, Failure> {
    std::thread::scope(|s| {
        s.spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Failure::Unreachable(format!("cannot start a runtime: {e}")))?;
            rt.block_on(fut)
                .map_err(|e| Failure::Unreachable(chain(&e)))
        })
        .join()
        .unwrap_or_else(|_| Err(Failure::Unreachable("the request thread failed".into())))
    })
}

/// An error and its causes, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn dynaconf_variables_win_over_vaults_over_the_section() {
        let section = serde_json::json!({"url": "http://file:1", "token": "t-file", "kv_version": 2, "enabled": true});
        let root = Path::new("/p");
        let s = VaultSettings::resolve(Some(&section), &vars(&[]), root).unwrap();
        assert_eq!(s.layer_by.as_deref(), Some("vault.enabled"));
        assert_eq!((s.url.as_str(), s.kv_version), ("http://file:1", 2));
        assert!(matches!(&s.auth, Auth::Token { from, .. } if from == "vault.token"));
        let v = vars(&[
            ("VAULT_ADDR", "http://vault:8200/"),
            ("VAULT_TOKEN", "t-vault"),
            ("VAULT_TOKEN_FOR_DYNACONF", "t-dyn"),
            ("VAULT_ENABLED_FOR_DYNACONF", "false"),
            ("VAULT_CACERT", "ca.pem"),
        ]);
        let s = VaultSettings::resolve(Some(&section), &v, root).unwrap();
        assert_eq!(s.layer_by, None);
        assert_eq!(s.url, "http://vault:8200");
        assert_eq!(s.url_from, "VAULT_ADDR");
        assert!(
            matches!(&s.auth, Auth::Token { token, from } if token == "t-dyn" && from == "VAULT_TOKEN_FOR_DYNACONF")
        );
        assert_eq!(s.cacert.as_deref(), Some(Path::new("/p/ca.pem")));
        assert_eq!(s.secrets(), vec!["t-dyn".to_string()]);
        // Defaults are Dynaconf's.
        let s = VaultSettings::resolve(None, &vars(&[]), root).unwrap();
        assert_eq!(
            (
                s.url.as_str(),
                s.mount.as_str(),
                s.path.as_str(),
                s.kv_version
            ),
            ("http://localhost:8200", "secret", "dynaconf", 1)
        );
        assert!(matches!(s.auth, Auth::None));
        // AppRole wins over a token, and needs its secret id.
        let s = VaultSettings::resolve(
            None,
            &vars(&[
                ("VAULT_ROLE_ID_FOR_DYNACONF", "r"),
                ("VAULT_SECRET_ID_FOR_DYNACONF", "s-id"),
                ("VAULT_TOKEN", "t"),
            ]),
            root,
        )
        .unwrap();
        assert!(matches!(s.auth, Auth::AppRole { .. }));
        assert!(!format!("{s:?}").contains("s-id"), "{s:?}");
        let e = VaultSettings::resolve(None, &vars(&[("VAULT_ROLE_ID_FOR_DYNACONF", "r")]), root)
            .unwrap_err();
        assert!(
            e.to_string().contains("VAULT_SECRET_ID_FOR_DYNACONF"),
            "{e}"
        );
    }

    #[test]
    fn bad_settings_name_their_variable() {
        let root = Path::new("/p");
        for (name, value, needle) in [
            ("VAULT_KV_VERSION_FOR_DYNACONF", "3", "must be 1 or 2"),
            ("VAULT_ENABLED_FOR_DYNACONF", "maybe", "true or false"),
            ("VAULT_ADDR", "vault:8200", "http://"),
        ] {
            let e = VaultSettings::resolve(None, &vars(&[(name, value)]), root).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(name) && text.contains(needle), "{text}");
        }
    }

    #[test]
    fn an_unreachable_vault_names_who_needed_it_and_never_the_token() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let v = vars(&[
            ("VAULT_ADDR", &format!("http://127.0.0.1:{port}")),
            ("VAULT_TOKEN", "s.tok3n"),
        ]);
        let s = VaultSettings::resolve(None, &v, Path::new("/p")).unwrap();
        let e = Vault::new(s).value("pg", "password", "taps.tap-x.config.password");
        let e = e.unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, ConfigError::VaultUnreachable { .. }), "{text}");
        assert!(text.contains("taps.tap-x.config.password"), "{text}");
        assert!(
            text.contains("secret/pg") && text.contains("VAULT_ADDR"),
            "{text}"
        );
        assert!(!text.contains("s.tok3n"), "{text}");
        assert_eq!(e.exit_code(), 1);
    }
}
