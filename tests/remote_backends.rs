//! One remote-store suite, run against every backend alto supports: a
//! directory, S3 (moto), GCS (the XML API fake in `tests/support/`) and
//! Azure Blob (Azurite). Two machines (two checkouts of one project, two
//! HOMEs, two local stores) share the remote: one builds and the other
//! substitutes, tampered objects are refused, a state commit that would
//! overwrite another writer's fails, the pipeline lock holds across them, a
//! reservoir ingested on one replays on the other, and gc and verify work
//! on the bucket. The servers are started here and stopped when dropped.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Azurite, GcsFake, Machine, Moto, Project, plugin_project};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, path::Path as ObjectPath};
use serde_json::Value;

/// A dash in the name: object_store's GCS client sends it as `%2D`.
const BUCKET: &str = "alto-suite";

enum Server {
    Directory(tempfile::TempDir),
    S3(Moto),
    Gcs(GcsFake),
    Azure(Azurite),
}

impl Server {
    fn directory() -> Server {
        Server::Directory(tempfile::tempdir().unwrap())
    }

    fn s3() -> Server {
        let moto = Moto::start();
        moto.create_bucket(BUCKET);
        Server::S3(moto)
    }

    fn gcs() -> Server {
        let gcs = GcsFake::start();
        gcs.create_bucket(BUCKET);
        Server::Gcs(gcs)
    }

    fn azure() -> Server {
        let azurite = Azurite::start();
        azurite.create_container(BUCKET);
        Server::Azure(azurite)
    }

    /// The remote's lines of the config's `default` section.
    fn config(&self) -> String {
        match self {
            Server::Directory(dir) => format!(
                "  filesystem: file\n  bucket: {}\n  bucket_path: alto\n",
                dir.path().display()
            ),
            Server::S3(moto) => moto.config(BUCKET),
            Server::Gcs(gcs) => gcs.config(BUCKET),
            Server::Azure(azurite) => azurite.config(BUCKET),
        }
    }

    /// The bucket itself, for what no alto command does: tampering and
    /// planting objects.
    fn bucket(&self) -> Arc<dyn ObjectStore> {
        match self {
            Server::Directory(dir) => {
                Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap())
            }
            Server::S3(moto) => Arc::new(
                object_store::aws::AmazonS3Builder::new()
                    .with_endpoint(format!("http://127.0.0.1:{}", moto.port))
                    .with_allow_http(true)
                    .with_region("us-east-1")
                    .with_access_key_id("test")
                    .with_secret_access_key("test")
                    .with_bucket_name(BUCKET)
                    .build()
                    .unwrap(),
            ),
            Server::Gcs(gcs) => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::new()
                    .with_bucket_name(BUCKET)
                    .with_base_url(&gcs.url())
                    .with_service_account_key(GcsFake::KEY)
                    .with_client_options(object_store::ClientOptions::new().with_allow_http(true))
                    .build()
                    .unwrap(),
            ),
            Server::Azure(azurite) => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::new()
                    .with_account(Azurite::ACCOUNT)
                    .with_access_key(Azurite::KEY)
                    .with_endpoint(azurite.endpoint())
                    .with_allow_http(true)
                    .with_container_name(BUCKET)
                    .build()
                    .unwrap(),
            ),
        }
    }
}

/// Runs `f` on the bucket with a small runtime of its own.
fn on_bucket<T>(
    server: &Server,
    f: impl AsyncFnOnce(Arc<dyn ObjectStore>) -> object_store::Result<T>,
) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(f(server.bucket())).unwrap()
}

fn flip_remote_byte(server: &Server, rel: &str) {
    let path = ObjectPath::from(format!("alto/{rel}"));
    on_bucket(server, async move |b| {
        let mut bytes = b.get(&path).await?.bytes().await?.to_vec();
        let i = bytes.len() / 2;
        bytes[i] ^= 0x55;
        b.put(&path, PutPayload::from(bytes)).await.map(|_| ())
    });
}

/// The name the remote record of `key` gives its content (`<key>.<hex>`).
fn remote_content_name(server: &Server, key: &str) -> String {
    let path = ObjectPath::from(format!("alto/.store/v1/meta/{key}.json"));
    let record = on_bucket(server, async move |b| {
        Ok(b.get(&path).await?.bytes().await?.to_vec())
    });
    let record: serde_json::Value = serde_json::from_slice(&record).unwrap();
    record["content"].as_str().unwrap_or(key).to_string()
}

fn remote_exists(server: &Server, rel: &str) -> bool {
    let path = ObjectPath::from(format!("alto/{rel}"));
    on_bucket(server, async move |b| match b.head(&path).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    })
}

const CONFIG: &str = "default:\n  project_name: suite\n  taps:\n    tap-fixture:\n      pip_url: ./plugins/tap-fixture\n      capabilities: [catalog, state, discover]\n      select: ['users.*']\n      config:\n        rows: 5\n  targets:\n    target-fixture:\n      pip_url: ./plugins/target-fixture\n      config:\n        destination: out\n";

/// The fixture plugins, built once for the whole suite (and kept between
/// runs, like the rest of the suite's shared cache): each backend's first
/// machine starts with them and publishes them instead of running pex.
fn built_plugins() -> PathBuf {
    static ONCE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("remote-backends-cache");
        let shared = common::shared_cache();
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["tools", "pex-root"] {
            let link = dir.join(name);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(shared.join(name), &link).unwrap();
            }
        }
        let p = plugin_project(CONFIG);
        let out = p
            .alto()
            .env("ALTO_CACHE_DIR", &dir)
            .args(["--json", "build", "--offline"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
    .clone()
}

/// A machine whose local store already holds the fixture plugins.
fn machine_with_plugins() -> Machine {
    let m = Machine::new(true);
    let from = built_plugins().join("store/v1/objects");
    common::copy_dir(&from, &m.objects());
    m
}

fn statuses(summary: &Value) -> Vec<String> {
    summary["derivations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap().to_string())
        .collect()
}

fn key_of(p: &Project, m: &Machine, plugin: &str) -> String {
    let dry = p.json_on(m, &["build", "--dry-run", "--offline"]);
    dry.as_array()
        .unwrap()
        .iter()
        .find(|d| d["plugins"].as_array().unwrap().iter().any(|n| n == plugin))
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string()
}

fn users_bookmark(p: &Project, m: &Machine) -> i64 {
    p.json_on(m, &["state", "show", "tap-fixture:target-fixture"])["bookmarks"]["users"]
        ["updated_at"]
        .as_i64()
        .unwrap_or(0)
}

fn ids(path: &Path) -> Vec<i64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

/// Polls `done` every 50 ms until it holds, failing after `limit`.
fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn suite(server: Server) {
    let config = format!("{CONFIG}{}", server.config());
    // Two machines: two checkouts of the project, two HOMEs, two local stores.
    let a = plugin_project(&config);
    let b = plugin_project(&config);
    let ma = machine_with_plugins();
    let mb = Machine::new(false);

    // Built (here: already in A's store) on A, published; B substitutes
    // without ever running pex.
    let published = a.json_on(&ma, &["build"]);
    assert_eq!(statuses(&published), vec!["local", "local"], "{published}");
    let fetched = b.json_on(&mb, &["build"]);
    assert_eq!(fetched["substituted"], 2, "{fetched}");
    assert!(!mb.has_pex(), "machine B ran pex");

    // A runs the pipeline; B sees its state through the remote.
    let (code, _, err) = a.run_on(&ma, &["tap-fixture:target-fixture"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(ids(&a.path().join("out/users.jsonl")), vec![1, 2, 3, 4, 5]);
    assert_eq!(users_bookmark(&b, &mb), 5);

    // The pipeline lock across two HOMEs, and a state commit that would
    // overwrite another writer's: A runs for 15 s at least; B cannot take
    // the pipeline (`state set` needs its lock), then overwrites the state
    // behind A's back; A's next commit refuses to overwrite it, and the run
    // fails (when its plugins are done: alto lets them finish).
    let log = a.path().join("long-run.log");
    let mut long = a.spawn_on(
        &ma,
        &["tap-fixture:target-fixture"],
        &[
            ("ALTO_TAPS__TAP_FIXTURE__CONFIG__ROWS", "1500"),
            ("ALTO_TAPS__TAP_FIXTURE__CONFIG__SLEEP", "0.01"),
            ("ALTO_STATE_COMMIT_MS", "100"),
        ],
        &log,
    );
    wait_for("A's first state commit", Duration::from_secs(60), || {
        users_bookmark(&b, &mb) > 5
    });
    let theirs = b.path().join("theirs.json");
    std::fs::write(
        &theirs,
        r#"{"bookmarks": {"users": {"updated_at": 99999}}}"#,
    )
    .unwrap();
    let (code, _, err) = b.run_on(
        &mb,
        &[
            "state",
            "set",
            "tap-fixture:target-fixture",
            theirs.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is already running on"), "{err}");
    let (code, _, err) = b.run_on(
        &mb,
        &[
            "fs",
            "push",
            "--yes",
            theirs.to_str().unwrap(),
            "state/dev/tap-fixture-to-target-fixture.json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = long.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = long.kill();
            panic!("the run never noticed the state changed under it");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("changed while this run held it"), "{err}");
    assert_eq!(users_bookmark(&b, &mb), 99999, "B's state was overwritten");
    // A released its lock as it stopped: B gets the pipeline now.
    let (code, _, err) = b.run_on(
        &mb,
        &[
            "state",
            "set",
            "tap-fixture:target-fixture",
            theirs.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");

    // Tampered objects are refused by a third machine, reported by verify,
    // and repaired from A's intact copy.
    let tap_key = key_of(&a, &ma, "tap-fixture");
    let verified = a.json_on(&ma, &["store", "verify", "--remote"]);
    assert_eq!(
        verified["objects"].as_array().unwrap().len(),
        2,
        "{verified}"
    );
    let content = remote_content_name(&server, &tap_key);
    flip_remote_byte(&server, &format!(".store/v1/data/{content}"));
    let mc = Machine::new(false);
    let (code, _, err) = b.run_on(&mc, &["build"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("does not match its metadata"), "{err}");
    assert!(!mc.objects().join(format!("{tap_key}.meta.json")).exists());
    let (code, _, err) = a.run_on(&ma, &["store", "verify", "--remote"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&tap_key), "{err}");
    a.json_on(&ma, &["store", "verify", "--remote", "--repair"]);
    assert_eq!(a.run_on(&ma, &["store", "verify", "--remote"]).0, 0);
    // The third machine kept the intact target it fetched; now the tap too.
    let fetched = b.json_on(&mc, &["build"]);
    assert_eq!(
        statuses(&fetched),
        vec!["substituted", "local"],
        "{fetched}"
    );

    // gc on the bucket removes what nothing refers to, and only that.
    let stray = "0123456789abcdef0123456789abcdef";
    let meta = format!(
        r#"{{"format": "alto-object/v1", "key": "{stray}", "kind": "plugin", "derivation": {{}}, "blake3": "", "size": 1, "created": "2020-01-01T00:00:00Z", "builder": {{"alto": "0", "host": "h"}}}}"#
    );
    on_bucket(&server, async move |bucket| {
        bucket
            .put(
                &ObjectPath::from(format!("alto/.store/v1/data/{stray}")),
                PutPayload::from_static(b"x"),
            )
            .await?;
        bucket
            .put(
                &ObjectPath::from(format!("alto/.store/v1/meta/{stray}.json")),
                PutPayload::from(meta.into_bytes()),
            )
            .await
            .map(|_| ())
    });
    let done = a.json_on(&ma, &["gc", "--remote", "--older-than", "0"]);
    let removed: Vec<&str> = done["removed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["where"].as_str() != Some("local"))
        .filter_map(|r| r["key"].as_str())
        .collect();
    assert_eq!(removed, vec![stray], "{done}");
    assert!(!remote_exists(
        &server,
        &format!(".store/v1/meta/{stray}.json")
    ));
    assert!(!remote_exists(&server, &format!(".store/v1/data/{stray}")));
    assert!(remote_exists(
        &server,
        &format!(".store/v1/meta/{tap_key}.json")
    ));
    assert!(remote_exists(
        &server,
        "suite/state/dev/tap-fixture-to-target-fixture.json"
    ));

    // A reservoir ingested on A replays into the target on B.
    let (code, _, err) = a.run_on(&ma, &["tap-fixture:reservoir"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = b.run_on(&mb, &["reservoir:tap-fixture-target-fixture"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(ids(&b.path().join("out/users.jsonl")), vec![1, 2, 3, 4, 5]);
    // Nothing new: nothing replayed twice.
    let (code, _, err) = b.run_on(&mb, &["reservoir:tap-fixture-target-fixture"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(ids(&b.path().join("out/users.jsonl")).len(), 5);
    assert_eq!(b.run_on(&mb, &["store", "verify", "--remote"]).0, 0);
}

#[test]
fn a_directory_remote() {
    suite(Server::directory());
}

#[test]
fn an_s3_remote_on_moto() {
    suite(Server::s3());
}

#[test]
fn a_gcs_remote_on_the_xml_api_fake() {
    suite(Server::gcs());
}

#[test]
fn an_azure_remote_on_azurite() {
    suite(Server::azure());
}

/// Pushes a file with `config` (plus `env`) and lists it back: the settings
/// reached a server that took them.
fn push_and_list(config: &str, env: &[(&str, &str)]) {
    let p = Project::new(&[
        (
            "alto.yaml",
            &format!("default:\n  project_name: names\n{config}"),
        ),
        ("note.txt", "hello\n"),
    ]);
    let run = |args: &[&str]| {
        let out = p
            .alto()
            .envs(env.iter().copied())
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "alto {args:?} with\n{config}\nfailed:\n{err}"
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["fs", "push", "--yes", "note.txt", "notes/note.txt"]);
    let listed = run(&["fs", "ls", "notes"]);
    assert!(listed.contains("note.txt"), "{listed}");
}

/// Each way the original's users (gcsfs, adlfs) and the clouds' tools name
/// credentials, beyond the suite's own (`project`/`token` file/`endpoint_url`
/// on GCS, `connection_string` on Azure).
#[test]
fn the_settings_users_of_the_original_have() {
    let azurite = Azurite::start();
    azurite.create_container("names");
    // adlfs's account_name/account_key, with object_store's endpoint keys
    // for an emulator (in Azure, leave them out or set `account_host`).
    push_and_list(
        &format!(
            "  filesystem: azure\n  bucket: names\n  azure_settings:\n    account_name: {}\n    account_key: {}\n    endpoint: {}\n    allow_http: true\n",
            Azurite::ACCOUNT,
            Azurite::KEY,
            azurite.endpoint()
        ),
        &[],
    );
    // Nothing but the environment variable Azure's tools read.
    push_and_list(
        "  filesystem: azure\n  bucket: names\n",
        &[(
            "AZURE_STORAGE_CONNECTION_STRING",
            &azurite.connection_string(),
        )],
    );

    let gcs = GcsFake::start();
    gcs.create_bucket("names");
    let token = gcs.token_file();
    // The key file from the environment (object_store's variable).
    push_and_list(
        &format!(
            "  filesystem: gcs\n  bucket: names\n  gcs_settings:\n    endpoint_url: {}\n",
            gcs.url()
        ),
        &[("GOOGLE_SERVICE_ACCOUNT", token.to_str().unwrap())],
    );
    // gcsfs's `token` given as the key itself, through `storage_options`.
    push_and_list(
        &format!(
            "  filesystem: gs\n  bucket: gs://names\n  storage_options:\n    project: alto-tests\n    endpoint_url: {}\n    token: {}\n",
            gcs.url(),
            GcsFake::KEY
        ),
        &[],
    );
}
