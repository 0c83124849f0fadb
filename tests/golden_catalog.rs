//! The original alto's recorded catalog renders (fixtures/golden/catalog_*),
//! replayed through `alto::singer::catalog`. Catalogs are compared on what
//! matters (fixtures/golden/README.md): which streams remain, their schema
//! properties (nested too), each metadata entry's `selected` flag and the
//! root metadata's replication settings. Where the original is wrong, the
//! expected value is alto's and the reason is written beside it.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use alto::singer::catalog::{Rules, apply, apply_select};
use serde_json::{Map, Value, json};

/// Select-only or select-then-metadata.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    AfterSelect,
    Catalog,
}

/// What alto must produce instead of the original for one case, in both
/// phases: a JSON merge patch (RFC 7386) over the original's summary (see
/// `summary`): a stream set to `null` is left out by alto, a `selected` flag
/// set to `null` is a metadata entry alto prunes. Where the original raised,
/// the patch is alto's whole result. `*_warnings` are fragments of alto's
/// warnings, one per warning, in order.
struct Divergence {
    patch: Value,
    select_warnings: &'static [&'static str],
    catalog_warnings: &'static [&'static str],
}

fn diverges(patch: Value) -> Divergence {
    Divergence {
        patch,
        select_warnings: &[],
        catalog_warnings: &[],
    }
}

fn divergences() -> BTreeMap<&'static str, Divergence> {
    let mut d = BTreeMap::new();
    // A stream no select rule matches is left out, even when its root
    // metadata says selected-by-default (the original keeps it, schema empty).
    for (case, streams) in [
        ("catalog_case_sensitive", &["users", "repositories"][..]),
        (
            "catalog_hubspot_nested_property_named_properties",
            &["deals"],
        ),
        ("catalog_metadata_pruned_stream", &["repositories"]),
        ("catalog_order_negation_first", &["repositories"]),
        ("catalog_order_reselect_after_negation", &["repositories"]),
        ("catalog_stream_star", &["repositories"]),
        ("catalog_stream_without_dot", &["repositories"]),
    ] {
        let patch: Map<String, Value> = streams
            .iter()
            .map(|id| (id.to_string(), Value::Null))
            .collect();
        d.insert(case, diverges(Value::Object(patch)));
    }
    // Automatic fields (`id`, `updated_at`) are kept in a selected stream; the
    // original stops at the first selected field and loses those after it.
    d.insert(
        "catalog_glob_question_mark",
        diverges(json!({
            "repositories": null,
            "issues": {"properties": ["id", "title", "updated_at"], "selected": {"updated_at": true}},
        })),
    );
    d.insert(
        "catalog_two_fields",
        diverges(json!({
            "repositories": null,
            "issues": {"properties": ["id", "title", "updated_at"], "selected": {"updated_at": true}},
            "users": {"properties": ["id", "login", "updated_at"], "selected": {"updated_at": true}},
        })),
    );
    d.insert(
        "catalog_single_field_only",
        diverges(json!({
            "repositories": null,
            "users": {"properties": ["id", "login", "updated_at"], "selected": {"id": true, "updated_at": true}},
        })),
    );
    d.insert(
        "catalog_ordering_field_b",
        diverges(json!({
            "root_first": {"properties": ["b", "pk", "ts"], "selected": {"ts": true}},
            "root_last": {"properties": ["b", "pk", "ts"], "selected": {"ts": true}},
            "no_root": {"properties": ["b", "pk", "ts"], "selected": {"ts": true}},
        })),
    );
    // Negating automatic fields does not drop them, wherever the root is.
    let all_fields = json!(["a", "b", "pk", "ts"]);
    d.insert(
        "catalog_ordering_field_a_negate_pk",
        diverges(json!({
            "root_first": {"properties": all_fields, "selected": {"pk": true, "ts": true}},
            "root_last": {"properties": all_fields, "selected": {"ts": true}},
            "no_root": {"properties": all_fields, "selected": {"ts": true}},
        })),
    );
    let users_all = json!([
        "address",
        "address.city",
        "address.geo",
        "address.geo.lat",
        "address.geo.lng",
        "address.street",
        "avatar_url",
        "company",
        "created_at",
        "email",
        "html_url",
        "id",
        "login",
        "updated_at"
    ]);
    d.insert(
        "catalog_negate_automatic_field",
        diverges(json!({
            "repositories": null,
            "users": {"properties": users_all, "selected": {"id": true, "updated_at": true}},
        })),
    );
    // Deselecting `address` deselects (so prunes) its children's metadata too.
    d.insert(
        "catalog_negate_nested_parent",
        diverges(json!({
            "repositories": null,
            "users": {"selected": {
                "address.city": null, "address.geo": null, "address.geo.lat": null,
                "address.geo.lng": null, "address.street": null,
            }},
        })),
    );
    // An object with every property left out is left out itself, metadata
    // included (the original drops it from the schema but marks it selected).
    d.insert(
        "catalog_negate_all_nested_children",
        diverges(json!({"repositories": null, "users": {"selected": {"address": null}}})),
    );
    d.insert(
        "catalog_nested_prune_first_level_children",
        diverges(json!({"profiles": {"selected": {"prefs": null}}})),
    );
    // `users.address.city` addresses the nested property (the original
    // matches nothing and keeps an empty `users`); `id` and `updated_at` are
    // automatic, `address` holds `city`.
    d.insert(
        "catalog_nested_short_form_no_match",
        diverges(json!({
            "repositories": null,
            "users": {
                "properties": ["address", "address.city", "id", "updated_at"],
                "selected": {"address": true, "address.city": true, "id": true, "updated_at": true},
            },
        })),
    );
    // The rules overwrite the discovered flags: pre-selected `amount` and
    // `customers.email` go, and so does the unmatched `customers` stream;
    // `id` is automatic.
    d.insert(
        "catalog_stripe_events_automatic_root",
        diverges(json!({
            "charges": {"properties": ["created", "id"], "selected": {"amount": null}},
            "customers": null,
            "events": {"properties": ["id", "type"], "selected": {"id": true}},
        })),
    );
    // Same, and `legacy_field` is `unsupported`: never selected. `events` is
    // matched by no rule (its root `automatic` inclusion does not select it).
    d.insert(
        "catalog_stripe_preselected",
        diverges(json!({
            "charges": {
                "properties": ["amount", "created", "description", "id", "metadata", "receipt_url"],
                "selected": {"legacy_field": null},
            },
            "customers": {"properties": ["id"], "selected": {"email": null}},
            "events": null,
        })),
    );
    // Deselect strategy: an unmatched stream is deselected along with all its
    // fields (the original selects the `repositories` root and
    // `pull_requests.id`); automatic `issues.updated_at` stays selected.
    d.insert(
        "catalog_deselect_strategy_github",
        diverges(json!({
            "repositories": {"selected": {"": false}},
            "pull_requests": {"selected": {"": false, "id": false}},
            "issues": {"selected": {"updated_at": true}},
        })),
    );
    // The `*` rule makes `repositories` and `pull_requests` INCREMENTAL on
    // `updated_at`, which they lack: alto says so (the original writes it
    // silently).
    d.insert(
        "catalog_metadata_override_order",
        Divergence {
            patch: json!({}),
            select_warnings: &[],
            catalog_warnings: &[
                "`repositories`: the replication key `updated_at`",
                "`pull_requests`: the replication key `updated_at`",
            ],
        },
    );
    // The original crashed on these; alto goes on.
    // The replication key `updated_at` is automatic, so it is kept anyway
    // (the original prunes it, then fails re-reading the catalog).
    d.insert(
        "catalog_error_incremental_key_pruned",
        diverges(json!({
            "repositories": null,
            "users": {
                "properties": ["id", "login", "updated_at"],
                "selected": {"": true, "id": true, "login": true, "updated_at": true},
            },
        })),
    );
    // `users` is matched by no rule, so it is left out with its key.
    d.insert(
        "catalog_error_incremental_key_pruned_by_omission",
        diverges(json!({
            "users": null,
            "repositories": {
                "properties": [
                    "clone_url", "full_name", "html_url", "id", "name", "owner", "owner.id",
                    "owner.login", "stargazers_count", "topics"
                ],
                "selected": {
                    "": true, "clone_url": true, "full_name": true, "html_url": true, "id": true,
                    "name": true, "owner": true, "stargazers_count": true, "topics": true,
                },
            },
        })),
    );
    // A replication key missing from the schema is a warning, not an error.
    let t1 = json!({"t1": {
        "properties": ["id"],
        "selected": {"": true},
    }});
    d.insert(
        "catalog_error_bad_replication_key",
        Divergence {
            patch: t1.clone(),
            select_warnings: &["`t1`: the replication key `not_a_column`"],
            catalog_warnings: &["`t1`: the replication key `not_a_column`"],
        },
    );
    // Unknown stream keys (`is_view`) pass through; see `unknown_stream_keys_pass_through`.
    d.insert("catalog_error_unknown_stream_key", diverges(t1));
    d
}

/// A catalog reduced to what the comparison is about.
fn summary(catalog: &Value) -> Value {
    let mut streams = Map::new();
    for stream in catalog["streams"].as_array().expect("streams") {
        let id = stream["tap_stream_id"].as_str().expect("tap_stream_id");
        let mut properties = Vec::new();
        property_paths(&stream["schema"], "", &mut properties);
        properties.sort();
        let mut selected = BTreeMap::new();
        let mut root = &Value::Null;
        for entry in stream["metadata"].as_array().into_iter().flatten() {
            let crumb: Vec<&str> = entry["breadcrumb"]
                .as_array()
                .expect("breadcrumb")
                .iter()
                .map(|part| part.as_str().expect("breadcrumb part"))
                .collect();
            if crumb.is_empty() {
                root = &entry["metadata"];
            }
            selected.insert(field_key(&crumb), entry["metadata"]["selected"].clone());
        }
        let mut summary = json!({"properties": properties, "selected": selected});
        // Absent settings are left out, so that a merge patch can state them.
        for setting in ["replication-method", "replication-key"] {
            if !root[setting].is_null() {
                summary[setting] = root[setting].clone();
            }
        }
        streams.insert(id.to_string(), summary);
    }
    Value::Object(streams)
}

fn property_paths(schema: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Some(properties) = schema["properties"].as_object() {
        for (name, subschema) in properties {
            let path = format!("{prefix}{name}");
            property_paths(subschema, &format!("{path}."), out);
            out.push(path);
        }
    }
}

/// `["properties", "a", "properties", "b"]` → `a.b`; the root is `""`.
fn field_key(crumb: &[&str]) -> String {
    let canonical =
        crumb.len().is_multiple_of(2) && crumb.chunks(2).all(|pair| pair[0] == "properties");
    if canonical {
        crumb
            .chunks(2)
            .map(|pair| pair[1])
            .collect::<Vec<_>>()
            .join(".")
    } else {
        crumb.join("/")
    }
}

/// The stream ids of both summaries.
fn stream_ids(expected: &Value, actual: &Value) -> Vec<String> {
    let mut ids: Vec<String> = [expected, actual]
        .iter()
        .filter_map(|summary| summary.as_object())
        .flat_map(|streams| streams.keys().cloned())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn read(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(serde_json::from_str(&text).expect("fixture JSON"))
}

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

fn check(case: &str, divergences: &BTreeMap<&str, Divergence>, failures: &mut Vec<String>) {
    let dir = common::fixtures().join("golden").join(case);
    let base = read(&dir.join("base_catalog.json")).expect("base_catalog.json");
    let rules = Rules::from_json(&read(&dir.join("rules.json")).expect("rules.json"))
        .expect("rules.json shape");
    let divergence = divergences.get(case);
    for phase in [Phase::AfterSelect, Phase::Catalog] {
        let file = match phase {
            Phase::AfterSelect => "expected_after_select.json",
            Phase::Catalog => "expected_catalog.json",
        };
        let mut expected = read(&dir.join(file))
            .map(|catalog| summary(&catalog))
            .unwrap_or_else(|| json!({}));
        let mut expected_warnings: &[&str] = &[];
        if let Some(divergence) = divergence {
            merge_patch(&mut expected, &divergence.patch);
            expected_warnings = match phase {
                Phase::AfterSelect => divergence.select_warnings,
                Phase::Catalog => divergence.catalog_warnings,
            };
        } else if !dir.join(file).exists() {
            failures.push(format!(
                "{case}: the original failed ({file} missing) and no alto expectation is written"
            ));
            continue;
        }
        let applied = match phase {
            Phase::AfterSelect => apply_select(&base, &rules.select, rules.strategy),
            Phase::Catalog => apply(&base, &rules),
        };
        let applied = match applied {
            Ok(applied) => applied,
            Err(error) => {
                failures.push(format!("{case} {phase:?}: error {error}"));
                continue;
            }
        };
        let actual = summary(&applied.catalog);
        for id in stream_ids(&expected, &actual) {
            let (want, got) = (&expected[&id], &actual[&id]);
            if want != got {
                failures.push(format!(
                    "{case} {phase:?} stream `{id}`:\n  expected {want}\n  got      {got}"
                ));
            }
        }
        let warnings_match = applied.warnings.len() == expected_warnings.len()
            && applied
                .warnings
                .iter()
                .zip(expected_warnings)
                .all(|(warning, fragment)| warning.contains(fragment));
        if !warnings_match {
            failures.push(format!(
                "{case} {phase:?}: warnings {:?}, expected {expected_warnings:?}",
                applied.warnings
            ));
        }
    }
}

#[test]
fn golden_catalog_cases() {
    let divergences = divergences();
    let mut cases: Vec<String> = std::fs::read_dir(common::fixtures().join("golden"))
        .expect("fixtures/golden")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("catalog_"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 38, "only {} catalog cases", cases.len());
    for case in divergences.keys() {
        assert!(
            cases.iter().any(|name| name == case),
            "no fixture for {case}"
        );
    }
    let mut failures = Vec::new();
    for case in &cases {
        check(case, &divergences, &mut failures);
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The original raised on a stream key its model did not know; alto passes
/// such keys through untouched.
#[test]
fn unknown_stream_keys_pass_through() {
    let dir = common::fixtures()
        .join("golden")
        .join("catalog_error_unknown_stream_key");
    let base = read(&dir.join("base_catalog.json")).expect("base_catalog.json");
    let rules = Rules::from_json(&read(&dir.join("rules.json")).expect("rules.json"))
        .expect("rules.json shape");
    let applied = apply(&base, &rules).expect("applies");
    assert_eq!(applied.catalog["streams"][0]["is_view"], json!(false));
    assert!(applied.warnings.is_empty(), "{:?}", applied.warnings);
}
