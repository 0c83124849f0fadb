//! The remote's settings as the original's users write them (fsspec's
//! `s3fs`/`gcsfs`/`adlfs` names in `<filesystem>_settings`,
//! `filesystem_kwargs`, `storage_options`, and the usual environment
//! variables), turned into object_store's configuration keys.

use serde_json::{Map, Value};

use super::StoreError;

/// fsspec-style names for object_store's keys, for every backend.
fn alias<'a>(fs: &str, key: &'a str) -> &'a str {
    match (fs, key) {
        (_, "key" | "aws_access_key_id") => "access_key_id",
        (_, "secret" | "aws_secret_access_key") => "secret_access_key",
        // gcsfs's `endpoint_url` is where the API is served.
        ("gcs", "endpoint_url" | "endpoint") => "base_url",
        (_, "endpoint_url") => "endpoint",
        (_, "region_name") => "region",
        (_, other) => other,
    }
}

/// fsspec options that have no object_store counterpart and change nothing
/// about where objects live: accepted and ignored (gcsfs's `project` only
/// matters for creating and listing buckets).
const IGNORED_FSSPEC: [&str; 8] = [
    "project",
    "requester_pays",
    "consistency",
    "cache_timeout",
    "skip_instance_cache",
    "use_listings_cache",
    "auto_mkdir",
    "default_fill_cache",
];

/// The backend's options as (object_store key, value) pairs, in the order
/// they apply: for `fs` (`file`, `s3`, `gcs`, `azure`), from the settings
/// maps in order, after what the environment says that object_store does not
/// read itself (`AZURE_STORAGE_CONNECTION_STRING`).
pub fn backend_options(
    fs: &str,
    maps: &[(String, Map<String, Value>)],
) -> Result<Vec<(String, String)>, StoreError> {
    let fs = match fs {
        "gs" => "gcs",
        "az" | "adls" | "abfs" => "azure",
        other => other,
    };
    let mut out = Vec::new();
    if fs == "azure"
        && !maps
            .iter()
            .any(|(_, m)| m.contains_key("connection_string"))
        && let Ok(cs) = std::env::var("AZURE_STORAGE_CONNECTION_STRING")
        && !cs.trim().is_empty()
    {
        out.extend(azure_connection_string(
            &cs,
            "AZURE_STORAGE_CONNECTION_STRING",
        )?);
    }
    for (_, m) in maps {
        pairs(fs, m, &mut out)?;
    }
    Ok(out)
}

/// Flattens one map; fsspec's nested `client_kwargs` is read as part of it.
fn pairs(
    fs: &str,
    map: &Map<String, Value>,
    out: &mut Vec<(String, String)>,
) -> Result<(), StoreError> {
    for (k, v) in map {
        if IGNORED_FSSPEC.contains(&k.as_str()) {
            tracing::debug!("remote setting `{k}` has no meaning for alto; ignored");
            continue;
        }
        match (fs, k.as_str(), v) {
            (_, "client_kwargs" | "config_kwargs", Value::Object(inner)) => pairs(fs, inner, out)?,
            (_, _, Value::Null) => {}
            ("gcs", "token", v) => out.extend(gcs_token(v)?),
            ("azure", "connection_string", Value::String(s)) => {
                out.extend(azure_connection_string(s, "connection_string")?)
            }
            // adlfs: the account's host, instead of `<account>.blob.core.windows.net`.
            ("azure", "account_host", Value::String(host)) => {
                out.push(("endpoint".into(), format!("https://{host}")))
            }
            (_, _, Value::String(s)) => {
                let key = alias(fs, k);
                if fs == "gcs" && key == "base_url" && s.starts_with("http://") {
                    // A local or test server: plain HTTP is what was asked for.
                    out.push(("allow_http".into(), "true".into()));
                }
                out.push((key.to_string(), s.clone()))
            }
            (_, _, other) => out.push((alias(fs, k).to_string(), other.to_string())),
        }
    }
    Ok(())
}

fn setting(key: &str, message: &str, help: &str) -> StoreError {
    StoreError::Setting {
        key: key.to_string(),
        message: message.to_string(),
        help: Some(help.to_string()),
    }
}

/// gcsfs's `token`: a credentials file (a service account's key, or
/// `gcloud auth application-default login`'s file), the key itself as a
/// map, or a word naming where credentials come from.
fn gcs_token(token: &Value) -> Result<Vec<(String, String)>, StoreError> {
    const HELP: &str = "set `token` to a credentials file, or leave it out to use \
                        GOOGLE_APPLICATION_CREDENTIALS or gcloud's default credentials";
    match token {
        // Google's default chain, which object_store follows when nothing is set.
        Value::String(s) if matches!(s.as_str(), "" | "google_default" | "cache" | "cloud") => {
            Ok(Vec::new())
        }
        Value::String(s) if s == "anon" || s == "browser" => Err(setting(
            "token",
            &format!("`token: {s}` cannot write to a bucket, and alto writes to its remote"),
            HELP,
        )),
        Value::String(path) => {
            let expanded = match path.strip_prefix("~/") {
                Some(rest) => std::env::var_os("HOME")
                    .map(|h| std::path::Path::new(&h).join(rest))
                    .unwrap_or_else(|| path.into()),
                None => path.into(),
            };
            let text = std::fs::read_to_string(&expanded).map_err(|e| {
                setting(
                    "token",
                    &format!(
                        "cannot read the credentials file {}: {e}",
                        expanded.display()
                    ),
                    HELP,
                )
            })?;
            let kind = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_string));
            let path = expanded.to_string_lossy().into_owned();
            // A user's login is read as application default credentials; a
            // service account's key as such (it may also name a test server).
            Ok(vec![match kind.as_deref() {
                Some("authorized_user") => ("application_credentials".into(), path),
                _ => ("service_account_path".into(), path),
            }])
        }
        Value::Object(m) if m.get("type").and_then(Value::as_str) != Some("authorized_user") => {
            Ok(vec![(
                "service_account_key".into(),
                Value::Object(m.clone()).to_string(),
            )])
        }
        _ => Err(setting(
            "token",
            "expected a credentials file, a service account key, or google_default",
            HELP,
        )),
    }
}

/// An Azure Storage connection string (`AccountName=...;AccountKey=...;
/// BlobEndpoint=...`), as adlfs and Azure's tools take it. Never echoed: it
/// holds the account key.
fn azure_connection_string(cs: &str, place: &str) -> Result<Vec<(String, String)>, StoreError> {
    const HELP: &str = "copy the connection string from the storage account's \"Access keys\" page: \
                        `DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...;EndpointSuffix=core.windows.net`";
    let mut fields = std::collections::HashMap::new();
    for (i, item) in cs.split(';').map(str::trim).enumerate() {
        if item.is_empty() {
            continue;
        }
        let Some((k, v)) = item.split_once('=') else {
            return Err(setting(
                place,
                &format!("part {} of the connection string has no `=`", i + 1),
                HELP,
            ));
        };
        fields.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let mut out = Vec::new();
    if fields
        .get("usedevelopmentstorage")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        out.push(("use_emulator".into(), "true".into()));
    }
    if let Some(account) = fields.get("accountname") {
        out.push(("account_name".into(), account.clone()));
    }
    if let Some(key) = fields.get("accountkey") {
        out.push(("access_key".into(), key.clone()));
    }
    if let Some(sas) = fields.get("sharedaccesssignature") {
        out.push(("sas_key".into(), sas.clone()));
    }
    let endpoint = match (fields.get("blobendpoint"), fields.get("endpointsuffix")) {
        (Some(e), _) => Some(e.trim_end_matches('/').to_string()),
        (None, Some(suffix)) => {
            let Some(account) = fields.get("accountname") else {
                return Err(setting(
                    place,
                    "the connection string has `EndpointSuffix` but no `AccountName`",
                    HELP,
                ));
            };
            let protocol = fields
                .get("defaultendpointsprotocol")
                .map(String::as_str)
                .unwrap_or("https");
            Some(format!("{protocol}://{account}.blob.{suffix}"))
        }
        (None, None) => None,
    };
    if let Some(e) = endpoint {
        if e.starts_with("http://") {
            out.push(("allow_http".into(), "true".into()));
        }
        out.push(("endpoint".into(), e));
    }
    if out.is_empty() {
        return Err(setting(
            place,
            "the connection string names no account, key or endpoint",
            HELP,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(json: &str) -> Vec<(String, Map<String, Value>)> {
        vec![(
            "settings".into(),
            serde_json::from_str::<Map<String, Value>>(json).unwrap(),
        )]
    }

    fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn an_azure_connection_string_becomes_account_key_and_endpoint() {
        let azurite = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;";
        let p = backend_options(
            "azure",
            &map(&format!(r#"{{"connection_string": "{azurite}"}}"#)),
        )
        .unwrap();
        assert_eq!(get(&p, "account_name"), Some("devstoreaccount1"));
        assert_eq!(get(&p, "access_key"), Some("a2V5"));
        assert_eq!(
            get(&p, "endpoint"),
            Some("http://127.0.0.1:10000/devstoreaccount1")
        );
        assert_eq!(get(&p, "allow_http"), Some("true"));

        let cloud = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net";
        let p = backend_options(
            "az",
            &map(&format!(r#"{{"connection_string": "{cloud}"}}"#)),
        )
        .unwrap();
        assert_eq!(
            get(&p, "endpoint"),
            Some("https://acct.blob.core.windows.net")
        );
        assert_eq!(get(&p, "allow_http"), None);
    }

    #[test]
    fn a_bad_connection_string_is_named_but_never_shown() {
        let e = backend_options(
            "azure",
            &map(r#"{"connection_string": "AccountName=a;TopSecretKeyMaterial"}"#),
        )
        .unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(shown.contains("connection_string"), "{shown}");
        assert!(shown.contains("part 2"), "{shown}");
        assert!(!shown.contains("TopSecret"), "{shown}");
    }

    #[test]
    fn adlfs_and_gcsfs_names_reach_object_store_keys() {
        let p = backend_options(
            "azure",
            &map(r#"{"account_name": "acct", "account_key": "a2V5", "account_host": "acct.blob.example.net"}"#),
        )
        .unwrap();
        assert_eq!(get(&p, "account_name"), Some("acct"));
        assert_eq!(get(&p, "account_key"), Some("a2V5"));
        assert_eq!(get(&p, "endpoint"), Some("https://acct.blob.example.net"));

        let dir = tempfile::tempdir().unwrap();
        let sa = dir.path().join("sa.json");
        std::fs::write(&sa, r#"{"type": "service_account", "private_key": ""}"#).unwrap();
        let user = dir.path().join("adc.json");
        std::fs::write(&user, r#"{"type": "authorized_user"}"#).unwrap();
        let p = backend_options(
            "gcs",
            &map(&format!(
                r#"{{"project": "p", "token": "{}", "endpoint_url": "http://127.0.0.1:9"}}"#,
                sa.display()
            )),
        )
        .unwrap();
        assert_eq!(get(&p, "service_account_path"), sa.to_str());
        assert_eq!(get(&p, "base_url"), Some("http://127.0.0.1:9"));
        assert_eq!(get(&p, "allow_http"), Some("true"));
        assert_eq!(get(&p, "project"), None);
        let p =
            backend_options("gs", &map(&format!(r#"{{"token": "{}"}}"#, user.display()))).unwrap();
        assert_eq!(get(&p, "application_credentials"), user.to_str());
        assert!(
            backend_options("gcs", &map(r#"{"token": "google_default"}"#))
                .unwrap()
                .is_empty()
        );
        let e = backend_options("gcs", &map(r#"{"token": "anon"}"#)).unwrap_err();
        assert!(e.to_string().contains("cannot write"), "{e}");
        let p = backend_options(
            "gcs",
            &map(r#"{"token": {"type": "service_account", "client_email": "x"}}"#),
        )
        .unwrap();
        assert!(get(&p, "service_account_key").is_some_and(|k| k.contains("client_email")));
    }
}
