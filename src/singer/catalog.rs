//! The catalog selection rules: a tap's `select` list and `metadata` map
//! applied to its discovered catalog, giving the catalog the tap runs with.
//!
//! Semantics are the original alto's and Meltano's (fnmatch globs on
//! `stream.field`, `!` negates, later rules win, `~` rules are for the PII
//! hasher), except where the original was wrong (`fixtures/golden/README.md`):
//! an unmatched stream is always left out, `automatic` fields are always kept
//! and `unsupported` ones never, the rules overwrite the discovered flags, an
//! INCREMENTAL stream keeps its replication key, and nested properties and
//! dotted stream ids are addressable.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use miette::Diagnostic;
use serde::Serialize;
use serde_json::{Map, Value, json};
use thiserror::Error;

/// What happens to the streams and properties the select rules leave out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    /// Remove them: streams, schema properties and their metadata entries.
    #[default]
    Prune,
    /// Keep them, marked `selected: false`.
    Deselect,
}

impl Strategy {
    /// `prune` or `deselect`, in any case.
    pub fn parse(name: &str) -> Option<Strategy> {
        match name.to_ascii_lowercase().as_str() {
            "prune" => Some(Strategy::Prune),
            "deselect" => Some(Strategy::Deselect),
            _ => None,
        }
    }
}

/// A tap's catalog rules.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rules {
    pub select: Vec<String>,
    /// Stream glob → keys merged into that stream's root metadata, in order.
    pub metadata: Map<String, Value>,
    pub strategy: Strategy,
}

impl Rules {
    /// Reads `{"select": [...], "metadata": {glob: {...}}, "strategy": "prune"|"deselect"}`;
    /// every key is optional.
    pub fn from_json(v: &Value) -> Result<Rules, CatalogError> {
        let object = v
            .as_object()
            .ok_or_else(|| CatalogError::Rules("the rules are not a JSON object".into()))?;
        let mut rules = Rules::default();
        for (key, value) in object {
            match (key.as_str(), value) {
                (_, Value::Null) => {}
                ("select", Value::Array(list)) => {
                    for (index, rule) in list.iter().enumerate() {
                        let rule = rule.as_str().ok_or_else(|| {
                            CatalogError::Rules(format!("select rule #{index} is not a string"))
                        })?;
                        rules.select.push(rule.to_string());
                    }
                }
                ("select", _) => {
                    return Err(CatalogError::Rules("`select` is not a list".into()));
                }
                ("metadata", Value::Object(map)) => {
                    if let Some((glob, _)) = map.iter().find(|(_, payload)| !payload.is_object()) {
                        return Err(CatalogError::MetadataRule {
                            glob: glob.clone(),
                            problem: "is not an object of metadata keys".into(),
                        });
                    }
                    rules.metadata = map.clone();
                }
                ("metadata", _) => {
                    return Err(CatalogError::Rules("`metadata` is not an object".into()));
                }
                ("strategy", Value::String(name)) => {
                    rules.strategy = Strategy::parse(name).ok_or_else(|| {
                        CatalogError::Rules(format!(
                            "unknown strategy `{name}` (expected `prune` or `deselect`)"
                        ))
                    })?;
                }
                ("strategy", _) => {
                    return Err(CatalogError::Rules("`strategy` is not a string".into()));
                }
                (other, _) => {
                    return Err(CatalogError::Rules(format!(
                        "unknown key `{other}` (expected `select`, `metadata` or `strategy`)"
                    )));
                }
            }
        }
        Ok(rules)
    }
}

/// A catalog with the rules applied, and what the user should be told.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    pub catalog: Value,
    pub warnings: Vec<String>,
}

#[derive(Debug, Error, Diagnostic)]
pub enum CatalogError {
    #[error("the catalog {problem}")]
    #[diagnostic(
        code(alto::catalog::shape),
        help("a catalog is the JSON object a tap prints with --discover, with a `streams` list")
    )]
    Catalog { problem: String },

    #[error("catalog stream #{index}: {problem}")]
    #[diagnostic(code(alto::catalog::stream))]
    StreamAt { index: usize, problem: String },

    #[error("catalog stream `{stream}`: {problem}")]
    #[diagnostic(code(alto::catalog::stream))]
    Stream { stream: String, problem: String },

    #[error("catalog stream `{stream}`, metadata entry #{index}: {problem}")]
    #[diagnostic(code(alto::catalog::metadata))]
    Metadata {
        stream: String,
        index: usize,
        problem: String,
    },

    #[error("catalog stream `{stream}`, schema property `{property}`: {problem}")]
    #[diagnostic(code(alto::catalog::schema))]
    Property {
        stream: String,
        property: String,
        problem: String,
    },

    #[error("metadata rule `{glob}` {problem}")]
    #[diagnostic(code(alto::catalog::metadata_rule))]
    MetadataRule { glob: String, problem: String },

    #[error("catalog rules: {0}")]
    #[diagnostic(code(alto::catalog::rules))]
    Rules(String),
}

/// The select rules, then the metadata rules.
pub fn apply(base: &Value, rules: &Rules) -> Result<Applied, CatalogError> {
    let mut plans = plan_streams(base, &SelectRule::parse_list(&rules.select))?;
    let mut catalog = copy_kept(base, &mut plans, rules.strategy);
    let mut warnings = merge_metadata_rules(&mut catalog, &rules.metadata)?;
    // The replication settings are final only once the metadata rules are in.
    keep_replication_keys(&catalog, &mut plans, &mut warnings);
    materialize(&mut catalog, &plans, rules.strategy);
    Ok(Applied { catalog, warnings })
}

/// The select rules alone.
pub fn apply_select(
    base: &Value,
    select: &[String],
    strategy: Strategy,
) -> Result<Applied, CatalogError> {
    let mut plans = plan_streams(base, &SelectRule::parse_list(select))?;
    let mut catalog = copy_kept(base, &mut plans, strategy);
    let mut warnings = Vec::new();
    keep_replication_keys(&catalog, &mut plans, &mut warnings);
    materialize(&mut catalog, &plans, strategy);
    Ok(Applied { catalog, warnings })
}

/// The metadata rules alone: each payload is merged, in order, into the root
/// metadata of the streams its glob matches (`selected` excepted: that is the
/// select rules' business).
pub fn apply_metadata(
    catalog: &Value,
    metadata: &Map<String, Value>,
) -> Result<Applied, CatalogError> {
    // Metadata rules touch only root metadata: the properties are the input's.
    let plans = plan_streams(catalog, &[])?;
    let mut catalog = catalog.clone();
    let mut warnings = merge_metadata_rules(&mut catalog, metadata)?;
    let streams = streams_mut(&mut catalog)?;
    for (stream, plan) in streams.iter_mut().zip(&plans) {
        if explicitly_deselected(stream) {
            continue;
        }
        let Some(key) = incremental_key(stream) else {
            continue;
        };
        match plan.schema_field(&key) {
            None => warnings.push(key_not_in_schema(plan.id, &key)),
            Some(_) => {
                let crumb = json!(["properties", key]);
                let deselected_entry = stream
                    .get_mut("metadata")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                    .filter(|entry| entry.get("breadcrumb") == Some(&crumb))
                    .filter_map(|entry| entry.get_mut("metadata")?.as_object_mut())
                    .find(|md| md.get("selected") == Some(&Value::Bool(false)));
                if let Some(md) = deselected_entry {
                    md.insert("selected".into(), Value::Bool(true));
                    warnings.push(key_kept(plan.id, &key));
                }
            }
        }
    }
    Ok(Applied { catalog, warnings })
}

/// A `~` rule of a select list: hash these fields' values (PII).
#[derive(Clone, Debug, PartialEq)]
pub struct HashRule {
    /// The stream glob: the rule up to its first dot.
    pub stream: String,
    /// The property path after the first dot, split on dots (may hold globs).
    pub field: Vec<String>,
    /// The whole rule without `~`, matched against `stream.field.path`.
    rule: Glob,
    /// Where the rule may split into a stream glob and the rest, so that a
    /// stream id with dots (`analytics.events`) can be named in full.
    stream_globs: Vec<Glob>,
}

/// The `~` hash rules of a select list. A rule without a dot (`~users`)
/// means every field of the stream, as in a select rule.
pub fn hash_rules(select: &[String]) -> Vec<HashRule> {
    select
        .iter()
        .filter_map(|rule| rule.strip_prefix('~'))
        .map(|body| {
            let (stream, field) = match body.split_once('.') {
                Some((stream, field)) => (stream, field.split('.').map(String::from).collect()),
                None => (body, vec!["*".to_string()]),
            };
            let rule = if body.contains('.') {
                Glob::new(body)
            } else {
                Glob::new(&format!("{body}.*"))
            };
            let stream_globs = if body.contains('.') {
                body.match_indices('.')
                    .map(|(at, _)| Glob::new(&body[..at]))
                    .collect()
            } else {
                vec![Glob::new(body)]
            };
            HashRule {
                stream: stream.to_string(),
                field,
                rule,
                stream_globs,
            }
        })
        .collect()
}

impl HashRule {
    /// Whether the rule can apply to some field of `stream`.
    pub fn matches_stream(&self, stream: &str) -> bool {
        self.stream_globs.iter().any(|glob| glob.matches(stream))
    }

    /// Whether the rule hashes the (nested) field `field` of `stream`. As in
    /// the original, the glob is matched against `stream.a.b`, so `*` spans
    /// dots: `~*.email` also hashes `users.contact.email`.
    pub fn matches(&self, stream: &str, field: &[&str]) -> bool {
        let mut crumb = String::with_capacity(stream.len() + 16);
        crumb.push_str(stream);
        for name in field {
            crumb.push('.');
            crumb.push_str(name);
        }
        self.rule.matches(&crumb)
    }

    /// Whether the rule names the field at `crumb` (`stream.a.b`) itself.
    /// A rule covers the field it names and everything below it.
    pub fn names(&self, crumb: &str) -> bool {
        self.rule.matches(crumb)
    }

    /// Whether the rule could name a field below `crumb` (`stream` or
    /// `stream.a`): whether some `crumb.x...` matches it.
    pub fn may_name_below(&self, crumb: &str) -> bool {
        self.rule.matches_some_extension(&format!("{crumb}."))
    }
}

/// Whether a `~` rule covers the (nested) field `field` of `stream`: names
/// it or a field it is in.
pub fn hashed(rules: &[HashRule], stream: &str, field: &[String]) -> bool {
    let mut crumb = stream.to_string();
    field.iter().any(|name| {
        crumb.push('.');
        crumb.push_str(name);
        rules.iter().any(|r| r.names(&crumb))
    })
}

/// What a loader needs of one stream of a runtime catalog: its name, key
/// properties, replication method and key, and its fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StreamInfo {
    pub tap_stream_id: String,
    /// The name in its messages (`stream`, else the id).
    pub stream: String,
    pub key_properties: Vec<String>,
    /// `INCREMENTAL`, `FULL_TABLE` or `LOG_BASED`, as the catalog says
    /// (the stream's metadata first, as taps read it); without one, a stream
    /// with a replication key is INCREMENTAL, else FULL_TABLE.
    pub replication_method: String,
    pub replication_key: Option<String>,
    pub fields: Vec<String>,
}

/// The streams of a runtime catalog, in its order.
pub fn stream_infos(runtime: &Value) -> Vec<StreamInfo> {
    let empty = Vec::new();
    let streams = runtime
        .get("streams")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    streams
        .iter()
        .filter_map(|s| {
            let id = s
                .get("tap_stream_id")
                .or_else(|| s.get("stream"))
                .and_then(Value::as_str)?;
            let root = s
                .get("metadata")
                .and_then(Value::as_array)
                .and_then(|md| {
                    md.iter().find(|m| {
                        m.get("breadcrumb")
                            .and_then(Value::as_array)
                            .is_some_and(|b| b.is_empty())
                    })
                })
                .and_then(|m| m.get("metadata"));
            let md = |key: &str| root.and_then(|r| r.get(key));
            let strings = |v: Option<&Value>| -> Option<Vec<String>> {
                v.and_then(Value::as_array).map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
            };
            let replication_key = md("replication-key")
                .or_else(|| s.get("replication_key"))
                .and_then(Value::as_str)
                .filter(|k| !k.is_empty())
                .map(str::to_string);
            let replication_method = md("replication-method")
                .or_else(|| md("forced-replication-method"))
                .or_else(|| s.get("replication_method"))
                .and_then(Value::as_str)
                .map(str::to_ascii_uppercase)
                .unwrap_or_else(|| {
                    if replication_key.is_some() {
                        "INCREMENTAL".into()
                    } else {
                        "FULL_TABLE".into()
                    }
                });
            Some(StreamInfo {
                tap_stream_id: id.to_string(),
                stream: s
                    .get("stream")
                    .and_then(Value::as_str)
                    .unwrap_or(id)
                    .to_string(),
                key_properties: strings(md("table-key-properties"))
                    .or_else(|| strings(s.get("key_properties")))
                    .unwrap_or_default(),
                replication_method,
                replication_key,
                fields: s
                    .pointer("/schema/properties")
                    .and_then(Value::as_object)
                    .map(|p| p.keys().cloned().collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Whether a select pattern (`users`, `users.email`, `!orders`, `~users.*`)
/// can name something of `stream`.
pub fn pattern_names_stream(pattern: &str, stream: &str) -> bool {
    let body = pattern.trim_start_matches(['!', '~']);
    let glob = Glob::new(body);
    glob.matches(stream) || glob.matches_some_extension(&format!("{stream}."))
}

/// One row of `alto select TAP --list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Selection {
    pub stream: String,
    /// The property path; empty for the stream itself.
    pub field: Vec<String>,
    /// `available`, `automatic` or `unsupported`, as the tap declares it.
    pub inclusion: String,
    pub selected: bool,
    /// Whether a `~` rule hashes its values (it or a field it is in).
    pub hashed: bool,
}

/// Every stream and (nested) property of the catalog, with whether the
/// select rules keep it (what `apply_select` would keep).
pub fn list(base: &Value, select: &[String]) -> Result<Vec<Selection>, CatalogError> {
    let mut plans = plan_streams(base, &SelectRule::parse_list(select))?;
    keep_replication_keys(base, &mut plans, &mut Vec::new());
    let rules = hash_rules(select);
    let mut rows = Vec::new();
    for plan in plans {
        rows.push(Selection {
            stream: plan.id.to_string(),
            field: Vec::new(),
            inclusion: plan.root_inclusion.to_string(),
            selected: plan.selected,
            hashed: false,
        });
        for (index, field) in plan.fields.iter().enumerate() {
            let path = plan.path(index);
            let selected = plan.selected && plan.field_selected[index];
            rows.push(Selection {
                stream: plan.id.to_string(),
                hashed: selected && hashed(&rules, plan.id, &path),
                field: path,
                inclusion: field.inclusion().to_string(),
                selected,
            });
        }
    }
    Ok(rows)
}

/// A compiled fnmatch pattern, as Python's `fnmatch.fnmatchcase`: `*` (any
/// run, dots included), `?` (one character), `[seq]` and `[!seq]` with
/// ranges; everything else, `\` included, is literal. Case-sensitive.
#[derive(Clone, Debug, PartialEq)]
pub struct Glob {
    tokens: Vec<Token>,
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Literal(char),
    AnyChar,
    AnyRun,
    Class {
        negated: bool,
        /// Inclusive ranges; a single character is `(c, c)`, a reversed
        /// range matches nothing.
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Literal(literal) => *literal == c,
            Token::AnyChar => true,
            Token::AnyRun => false,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' => {
                    // Consecutive stars mean the same as one.
                    if tokens.last() != Some(&Token::AnyRun) {
                        tokens.push(Token::AnyRun);
                    }
                    i += 1;
                }
                '?' => {
                    tokens.push(Token::AnyChar);
                    i += 1;
                }
                '[' => match Glob::class(&chars, i + 1) {
                    Some((token, next)) => {
                        tokens.push(token);
                        i = next;
                    }
                    // No closing bracket: a literal `[`, as in fnmatch.
                    None => {
                        tokens.push(Token::Literal('['));
                        i += 1;
                    }
                },
                c => {
                    tokens.push(Token::Literal(c));
                    i += 1;
                }
            }
        }
        Glob { tokens }
    }

    /// The class starting after a `[` at `start`, and the index after its `]`.
    fn class(chars: &[char], start: usize) -> Option<(Token, usize)> {
        let mut i = start;
        let negated = chars.get(i) == Some(&'!');
        if negated {
            i += 1;
        }
        let body_start = i;
        // A `]` right after `[` or `[!` is a member, not the end.
        if chars.get(i) == Some(&']') {
            i += 1;
        }
        while chars.get(i)? != &']' {
            i += 1;
        }
        let body = &chars[body_start..i];
        let mut ranges = Vec::new();
        let mut j = 0;
        while j < body.len() {
            if j + 2 < body.len() && body[j + 1] == '-' {
                ranges.push((body[j], body[j + 2]));
                j += 3;
            } else {
                ranges.push((body[j], body[j]));
                j += 1;
            }
        }
        Some((Token::Class { negated, ranges }, i + 1))
    }

    /// Whether some text that starts with `prefix` and goes on past it
    /// matches (the glob could match something below a crumb).
    pub fn matches_some_extension(&self, prefix: &str) -> bool {
        let n = self.tokens.len();
        // The positions in the pattern reachable after the text so far.
        let close = |live: &mut Vec<bool>| {
            for p in 0..n {
                if live[p] && self.tokens[p] == Token::AnyRun {
                    live[p + 1] = true;
                }
            }
        };
        let mut live = vec![false; n + 1];
        live[0] = true;
        close(&mut live);
        for c in prefix.chars() {
            let mut next = vec![false; n + 1];
            for p in 0..n {
                if live[p] {
                    match &self.tokens[p] {
                        Token::AnyRun => next[p] = true,
                        token if token.matches(c) => next[p + 1] = true,
                        _ => {}
                    }
                }
            }
            close(&mut next);
            live = next;
        }
        // Somewhere short of the pattern's end: more text can follow.
        live[..n].iter().any(|&l| l)
    }

    pub fn matches(&self, text: &str) -> bool {
        let tokens = &self.tokens;
        let mut t = 0;
        let mut p = 0;
        // Where to resume after the last `*`: (token after it, text position).
        let mut resume: Option<(usize, usize)> = None;
        loop {
            let next = text[t..].chars().next();
            match tokens.get(p) {
                Some(Token::AnyRun) => {
                    resume = Some((p + 1, t));
                    p += 1;
                    continue;
                }
                Some(token) => {
                    if let Some(c) = next
                        && token.matches(c)
                    {
                        p += 1;
                        t += c.len_utf8();
                        continue;
                    }
                }
                None if next.is_none() => return true,
                None => {}
            }
            // Mismatch: let the last `*` swallow one more character.
            match resume {
                Some((after_star, from)) => match text[from..].chars().next() {
                    Some(c) => {
                        resume = Some((after_star, from + c.len_utf8()));
                        p = after_star;
                        t = from + c.len_utf8();
                    }
                    None => return false,
                },
                None => return false,
            }
        }
    }
}

/// One select rule, compiled.
struct SelectRule {
    selects: bool,
    /// The rule without `!`.
    text: String,
    /// A rule without a dot is a stream glob for the whole stream.
    whole_stream: Option<Glob>,
    /// (stream glob, field glob) for each dot the rule could split at.
    splits: Vec<(Glob, Glob)>,
}

/// What a select rule addresses in one stream.
enum Target<'r> {
    WholeStream,
    Fields(&'r Glob),
}

impl SelectRule {
    /// The selection rules of a select list: `~` rules are left out, and a
    /// list without any positive rule starts from `*.*`.
    fn parse_list(select: &[String]) -> Vec<SelectRule> {
        let mut rules: Vec<SelectRule> = select
            .iter()
            .filter(|rule| !rule.starts_with('~'))
            .map(|rule| SelectRule::parse(rule))
            .collect();
        if !rules.iter().any(|rule| rule.selects) {
            rules.insert(0, SelectRule::parse("*.*"));
        }
        rules
    }

    fn parse(rule: &str) -> SelectRule {
        let (selects, text) = match rule.strip_prefix('!') {
            Some(rest) => (false, rest),
            None => (true, rule),
        };
        let whole_stream = (!text.contains('.')).then(|| Glob::new(text));
        let splits = text
            .match_indices('.')
            .map(|(at, _)| (Glob::new(&text[..at]), Glob::new(&text[at + 1..])))
            .collect();
        SelectRule {
            selects,
            text: text.to_string(),
            whole_stream,
            splits,
        }
    }

    /// What this rule addresses in the stream `id`. A rule splits at any dot
    /// whose left side matches the id, so `analytics.events.user_id` reaches
    /// `user_id` of the stream `analytics.events`; a rule equal to a dotted
    /// id names the whole stream, as a dot-less rule does.
    fn targets<'r>(&'r self, id: &str, out: &mut Vec<Target<'r>>) {
        out.clear();
        if let Some(glob) = &self.whole_stream {
            if glob.matches(id) {
                out.push(Target::WholeStream);
            }
            return;
        }
        if self.text == id {
            out.push(Target::WholeStream);
            return;
        }
        for (stream, field) in &self.splits {
            if stream.matches(id) {
                out.push(Target::Fields(field));
            }
        }
    }
}

/// A property of a stream: from its schema, or only from a metadata entry.
/// Names are borrowed from the base catalog.
struct Field<'a> {
    name: &'a str,
    parent: Option<usize>,
    children: Vec<usize>,
    in_schema: bool,
    has_entry: bool,
    /// As the tap declares it; none: `available`.
    inclusion: Option<&'a str>,
    /// `a.b`: how Meltano and alto address nested properties.
    dotted: Cow<'a, str>,
    /// `a.properties.b`, for nested properties: the original alto's form
    /// (its breadcrumb minus the first `properties`), still accepted.
    crumb_form: Option<String>,
}

impl Field<'_> {
    fn inclusion(&self) -> &str {
        self.inclusion.unwrap_or("available")
    }
}

/// rustc's FxHash: the keys are the tap's property names, not an
/// adversary's, and SipHash costs a good part of planning a big catalog.
#[derive(Default)]
struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        for &byte in chunks.remainder() {
            self.add(u64::from(byte));
        }
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// What the select rules make of one stream.
struct StreamPlan<'a> {
    id: &'a str,
    root_inclusion: &'a str,
    /// Parents come before their children.
    fields: Vec<Field<'a>>,
    /// (parent, name) → field; no parent: a top-level property.
    by_name: HashMap<(Option<usize>, &'a str), usize, BuildHasherDefault<FxHasher>>,
    selected: bool,
    field_selected: Vec<bool>,
}

/// Where a metadata entry belongs.
enum Crumb {
    Root,
    /// The field, or for a breadcrumb into something that is not a property
    /// (array `items`, say) its nearest property ancestor; `None`: the stream.
    Field(Option<usize>),
}

impl<'a> StreamPlan<'a> {
    fn build(index: usize, stream: &'a Value) -> Result<StreamPlan<'a>, CatalogError> {
        let object = stream.as_object().ok_or_else(|| CatalogError::StreamAt {
            index,
            problem: "is not a JSON object".into(),
        })?;
        let id = stream_id(index, object)?;
        let schema = match object.get("schema") {
            Some(Value::Object(schema)) => schema,
            Some(_) => return Err(stream_error(id, "`schema` is not a JSON object")),
            None => return Err(stream_error(id, "has no `schema`")),
        };
        let mut plan = StreamPlan {
            id,
            root_inclusion: "available",
            fields: Vec::new(),
            by_name: HashMap::default(),
            selected: false,
            field_selected: Vec::new(),
        };
        plan.add_schema(schema, None)?;
        for (entry_index, entry) in metadata_list(id, object)?.iter().enumerate() {
            let Entry { crumb, metadata } = parse_entry(id, entry_index, entry)?;
            let inclusion = metadata
                .and_then(|md| md.get("inclusion"))
                .and_then(Value::as_str);
            if crumb.is_empty() {
                if let Some(inclusion) = inclusion {
                    plan.root_inclusion = inclusion;
                }
            } else if is_canonical(crumb) {
                let mut field = None;
                for pair in crumb.chunks(2) {
                    if let Some(name) = pair[1].as_str() {
                        field = Some(plan.insert(field, name, false));
                    }
                }
                if let Some(field) = field {
                    plan.fields[field].has_entry = true;
                    if inclusion.is_some() {
                        plan.fields[field].inclusion = inclusion;
                    }
                }
            }
            // Other breadcrumbs (into array items, say) follow their
            // property ancestor: see `Crumb`.
        }
        plan.field_selected = vec![false; plan.fields.len()];
        Ok(plan)
    }

    fn add_schema(
        &mut self,
        schema: &'a Map<String, Value>,
        parent: Option<usize>,
    ) -> Result<(), CatalogError> {
        let properties = match (schema.get("properties"), parent) {
            (None | Some(Value::Null), _) => return Ok(()),
            (Some(Value::Object(properties)), _) => properties,
            (Some(_), None) => {
                return Err(stream_error(
                    self.id,
                    "`schema.properties` is not a JSON object",
                ));
            }
            (Some(_), Some(parent)) => {
                return Err(CatalogError::Property {
                    stream: self.id.to_string(),
                    property: self.fields[parent].dotted.to_string(),
                    problem: "its `properties` is not a JSON object".into(),
                });
            }
        };
        for (name, subschema) in properties {
            let field = self.insert(parent, name, true);
            // A property schema that is not an object (`true`) has no
            // nested properties.
            if let Value::Object(subschema) = subschema {
                self.add_schema(subschema, Some(field))?;
            }
        }
        Ok(())
    }

    /// `parent`'s property `name` (no parent: the stream's).
    fn child(&self, parent: Option<usize>, name: &str) -> Option<usize> {
        self.by_name.get(&(parent, name)).copied()
    }

    fn insert(&mut self, parent: Option<usize>, name: &'a str, in_schema: bool) -> usize {
        if let Some(&existing) = self.by_name.get(&(parent, name)) {
            self.fields[existing].in_schema |= in_schema;
            return existing;
        }
        let (dotted, crumb_form) = match parent {
            None => (Cow::Borrowed(name), None),
            Some(parent) => {
                let parent = &self.fields[parent];
                let parent_crumb_form = parent.crumb_form.as_deref().unwrap_or(&parent.dotted);
                (
                    Cow::Owned(format!("{}.{name}", parent.dotted)),
                    Some(format!("{parent_crumb_form}.properties.{name}")),
                )
            }
        };
        let index = self.fields.len();
        self.by_name.insert((parent, name), index);
        self.fields.push(Field {
            name,
            parent,
            children: Vec::new(),
            in_schema,
            has_entry: false,
            inclusion: None,
            dotted,
            crumb_form,
        });
        if let Some(parent) = parent {
            self.fields[parent].children.push(index);
        }
        index
    }

    /// The property names from the top of the schema down to `field`.
    fn path(&self, field: usize) -> Vec<String> {
        let mut path = Vec::new();
        let mut at = Some(field);
        while let Some(index) = at {
            path.push(self.fields[index].name.to_string());
            at = self.fields[index].parent;
        }
        path.reverse();
        path
    }

    /// The top-level schema property `name`.
    fn schema_field(&self, name: &str) -> Option<usize> {
        let index = self.child(None, name)?;
        self.fields[index].in_schema.then_some(index)
    }

    fn crumb<'c>(&self, breadcrumb: impl IntoIterator<Item = &'c str>) -> Crumb {
        let mut parts = breadcrumb.into_iter().peekable();
        if parts.peek().is_none() {
            return Crumb::Root;
        }
        let mut found = None;
        while let (Some("properties"), Some(name)) = (parts.next(), parts.next()) {
            match self.child(found, name) {
                Some(index) => found = Some(index),
                None => break,
            }
        }
        Crumb::Field(found)
    }

    /// Runs the select rules, in order, over the stream.
    fn select(&mut self, rules: &[SelectRule]) {
        let count = self.fields.len();
        let mut state: Vec<Option<bool>> = vec![None; count];
        let mut root: Option<bool> = None;
        let mut targets = Vec::new();
        let mut stack = Vec::new();
        for rule in rules {
            rule.targets(self.id, &mut targets);
            let value = Some(rule.selects);
            for target in &targets {
                let glob = match target {
                    Target::WholeStream => {
                        root = value;
                        state.fill(value);
                        continue;
                    }
                    Target::Fields(glob) => glob,
                };
                if glob.matches("") {
                    root = value;
                }
                for (index, field) in self.fields.iter().enumerate() {
                    let hit = glob.matches(&field.dotted)
                        || field
                            .crumb_form
                            .as_deref()
                            .is_some_and(|form| glob.matches(form));
                    if !hit {
                        continue;
                    }
                    // A rule on an object is a rule on everything inside it.
                    stack.push(index);
                    while let Some(inner) = stack.pop() {
                        state[inner] = value;
                        stack.extend_from_slice(&self.fields[inner].children);
                    }
                }
            }
        }
        // A stream is in when some rule selects it or something in it.
        self.selected = root == Some(true) || state.contains(&Some(true));
        if !self.selected {
            self.field_selected = vec![false; count];
            return;
        }
        let mut selected = vec![false; count];
        // Children come after their parents: walk backwards to see them first.
        for index in (0..count).rev() {
            let field = &self.fields[index];
            selected[index] = match field.inclusion() {
                "unsupported" => false,
                "automatic" => true,
                // An object is kept for what is kept inside it: an object
                // with every property left out would be empty, and a
                // property kept inside needs its object.
                _ if !field.children.is_empty() => {
                    field.children.iter().any(|&child| selected[child])
                }
                _ => state[index] == Some(true),
            };
        }
        // Nothing survives inside an object that is left out (unsupported).
        for index in 0..count {
            if let Some(parent) = self.fields[index].parent
                && !selected[parent]
            {
                selected[index] = false;
            }
        }
        self.field_selected = selected;
    }

    fn keep_subtree(&mut self, index: usize) {
        let mut stack = vec![index];
        while let Some(inner) = stack.pop() {
            self.field_selected[inner] = true;
            stack.extend_from_slice(&self.fields[inner].children);
        }
    }

    fn is_selected(&self, crumb: &Crumb) -> bool {
        match crumb {
            Crumb::Root => self.selected,
            Crumb::Field(None) => self.selected,
            Crumb::Field(Some(index)) => self.selected && self.field_selected[*index],
        }
    }
}

fn plan_streams<'a>(
    catalog: &'a Value,
    rules: &[SelectRule],
) -> Result<Vec<StreamPlan<'a>>, CatalogError> {
    streams(catalog)?
        .iter()
        .enumerate()
        .map(|(index, stream)| {
            let mut plan = StreamPlan::build(index, stream)?;
            plan.select(rules);
            Ok(plan)
        })
        .collect()
}

/// An INCREMENTAL stream needs its replication key: the rules cannot drop it.
fn keep_replication_keys(catalog: &Value, plans: &mut [StreamPlan], warnings: &mut Vec<String>) {
    let Some(Value::Array(streams)) = catalog.get("streams") else {
        return;
    };
    for (stream, plan) in streams.iter().zip(plans.iter_mut()) {
        if !plan.selected {
            continue;
        }
        let Some(key) = incremental_key(stream) else {
            continue;
        };
        match plan.schema_field(&key) {
            None => warnings.push(key_not_in_schema(plan.id, &key)),
            Some(field) if !plan.field_selected[field] => {
                plan.keep_subtree(field);
                warnings.push(key_kept(plan.id, &key));
            }
            Some(_) => {}
        }
    }
}

fn key_not_in_schema(stream: &str, key: &str) -> String {
    format!(
        "stream `{stream}`: the replication key `{key}` of this INCREMENTAL stream \
         is not a property of its schema"
    )
}

fn key_kept(stream: &str, key: &str) -> String {
    format!(
        "stream `{stream}`: the select rules leave out `{key}`, the replication key \
         of this INCREMENTAL stream; it is kept"
    )
}

/// The replication key of an INCREMENTAL stream, from its root metadata or,
/// for legacy catalogs, its stream-level keys.
fn incremental_key(stream: &Value) -> Option<String> {
    let root = root_metadata(stream);
    let setting = |metadata_key: &str, legacy_key: &str| {
        root.and_then(|md| md.get(metadata_key))
            .or_else(|| stream.get(legacy_key))
            .and_then(Value::as_str)
            .filter(|value| !value.is_empty())
    };
    let method = setting("replication-method", "replication_method")
        .or_else(|| setting("forced-replication-method", "forced_replication_method"))?;
    if !method.eq_ignore_ascii_case("INCREMENTAL") {
        return None;
    }
    setting("replication-key", "replication_key").map(String::from)
}

fn root_metadata(stream: &Value) -> Option<&Map<String, Value>> {
    stream
        .get("metadata")?
        .as_array()?
        .iter()
        .find(|entry| {
            entry
                .get("breadcrumb")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
        })?
        .get("metadata")?
        .as_object()
}

/// Whether a catalog already marks this stream as left out.
fn explicitly_deselected(stream: &Value) -> bool {
    let selected = root_metadata(stream)
        .and_then(|md| md.get("selected"))
        .or_else(|| stream.get("selected"));
    selected == Some(&Value::Bool(false))
}

/// The catalog without the streams a prune leaves out, and their plans
/// dropped to match: cloning those streams only to drop them would be most
/// of the work when a few streams of many are selected.
fn copy_kept(base: &Value, plans: &mut Vec<StreamPlan>, strategy: Strategy) -> Value {
    let keep = |plan: &StreamPlan| plan.selected || strategy == Strategy::Deselect;
    let Value::Object(object) = base else {
        return base.clone();
    };
    let mut copy = Map::new();
    for (key, value) in object {
        let value = match value {
            Value::Array(streams) if key == "streams" => Value::Array(
                streams
                    .iter()
                    .zip(plans.iter())
                    .filter(|(_, plan)| keep(plan))
                    .map(|(stream, _)| stream.clone())
                    .collect(),
            ),
            _ => value.clone(),
        };
        copy.insert(key.clone(), value);
    }
    plans.retain(keep);
    Value::Object(copy)
}

/// Writes the plans into the catalog.
fn materialize(catalog: &mut Value, plans: &[StreamPlan], strategy: Strategy) {
    let Some(Value::Array(streams)) = catalog.get_mut("streams") else {
        return;
    };
    for (stream, plan) in streams.iter_mut().zip(plans) {
        let Value::Object(stream) = stream else {
            continue;
        };
        if !plan.selected && strategy == Strategy::Prune {
            continue;
        }
        stream.insert("selected".into(), Value::Bool(plan.selected));
        let metadata = stream
            .entry("metadata")
            .or_insert_with(|| Value::Array(Vec::new()));
        if metadata.is_null() {
            *metadata = Value::Array(Vec::new());
        }
        let Value::Array(entries) = metadata else {
            continue;
        };
        let mut has_root = false;
        let mut keep = Vec::with_capacity(entries.len());
        for entry in entries.iter_mut() {
            let crumb = match entry.get("breadcrumb") {
                Some(Value::Array(crumb)) => plan.crumb(crumb.iter().filter_map(Value::as_str)),
                // Validated by `StreamPlan::build`: never reached.
                _ => Crumb::Root,
            };
            has_root |= matches!(crumb, Crumb::Root);
            let selected = plan.is_selected(&crumb);
            keep.push(selected || strategy == Strategy::Deselect);
            if let Value::Object(entry) = entry {
                let md = entry.entry("metadata").or_insert(Value::Null);
                if md.is_null() {
                    *md = json!({});
                }
                if let Value::Object(md) = md {
                    md.insert("selected".into(), Value::Bool(selected));
                }
            }
        }
        let mut flags = keep.into_iter();
        entries.retain(|_| flags.next().unwrap_or(true));
        if !has_root {
            entries.push(json!({"breadcrumb": [], "metadata": {"selected": plan.selected}}));
        }
        if strategy == Strategy::Deselect && plan.selected {
            // The schema stays whole, so the tap can only learn what is left
            // out from metadata: give every property an entry.
            for (index, field) in plan.fields.iter().enumerate() {
                if field.in_schema && !field.has_entry {
                    let selected = plan.field_selected[index];
                    let path = plan.path(index);
                    let crumb: Vec<&str> =
                        path.iter().flat_map(|name| ["properties", name]).collect();
                    entries.push(json!({"breadcrumb": crumb, "metadata": {"selected": selected}}));
                }
            }
        }
        if strategy == Strategy::Prune
            && let Some(schema) = stream.get_mut("schema")
        {
            prune_schema(schema, plan, None);
        }
    }
    if strategy == Strategy::Prune {
        let mut flags = plans.iter().map(|plan| plan.selected);
        streams.retain(|_| flags.next().unwrap_or(true));
    }
}

fn prune_schema(schema: &mut Value, plan: &StreamPlan, parent: Option<usize>) {
    let Some(Value::Object(properties)) = schema.get_mut("properties") else {
        return;
    };
    properties.retain(|name, _| {
        plan.child(parent, name)
            .is_none_or(|index| plan.field_selected[index])
    });
    for (name, subschema) in properties.iter_mut() {
        if let Some(index) = plan.child(parent, name) {
            prune_schema(subschema, plan, Some(index));
        }
    }
}

/// Merges the metadata rules into the root metadata of the streams they match.
fn merge_metadata_rules(
    catalog: &mut Value,
    rules: &Map<String, Value>,
) -> Result<Vec<String>, CatalogError> {
    let mut warnings = Vec::new();
    for (glob_text, payload) in rules {
        let payload = payload
            .as_object()
            .ok_or_else(|| CatalogError::MetadataRule {
                glob: glob_text.clone(),
                problem: "is not an object of metadata keys".into(),
            })?;
        if payload.contains_key("selected") {
            warnings.push(format!(
                "metadata rule `{glob_text}`: `selected` is ignored; the select rules decide"
            ));
        }
        let glob = Glob::new(glob_text);
        for (index, stream) in streams_mut(catalog)?.iter_mut().enumerate() {
            let object = stream
                .as_object_mut()
                .ok_or_else(|| CatalogError::StreamAt {
                    index,
                    problem: "is not a JSON object".into(),
                })?;
            let id = stream_id(index, object)?;
            if !glob.matches(id) {
                continue;
            }
            let id = id.to_string();
            let root = root_metadata_mut(&id, object)?;
            for (key, value) in payload {
                if key != "selected" {
                    root.insert(key.clone(), value.clone());
                }
            }
            // Legacy taps read the stream-level keys.
            if let Some(method) = payload.get("replication-method") {
                object.insert("replication_method".into(), method.clone());
            }
            if let Some(key) = payload.get("replication-key") {
                object.insert("replication_key".into(), key.clone());
            }
        }
    }
    Ok(warnings)
}

/// The root metadata of a stream, created when the tap gave none.
fn root_metadata_mut<'s>(
    id: &str,
    stream: &'s mut Map<String, Value>,
) -> Result<&'s mut Map<String, Value>, CatalogError> {
    let metadata = stream
        .entry("metadata")
        .or_insert_with(|| Value::Array(Vec::new()));
    if metadata.is_null() {
        *metadata = Value::Array(Vec::new());
    }
    let Value::Array(entries) = metadata else {
        return Err(stream_error(id, "`metadata` is not a list"));
    };
    let position = entries.iter().position(|entry| {
        entry
            .get("breadcrumb")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
    });
    let position = match position {
        Some(position) => position,
        None => {
            entries.push(json!({"breadcrumb": [], "metadata": {}}));
            entries.len() - 1
        }
    };
    let Value::Object(entry) = &mut entries[position] else {
        return Err(CatalogError::Metadata {
            stream: id.to_string(),
            index: position,
            problem: "is not a JSON object".into(),
        });
    };
    let md = entry.entry("metadata").or_insert_with(|| json!({}));
    if md.is_null() {
        *md = json!({});
    }
    match md {
        Value::Object(md) => Ok(md),
        _ => Err(CatalogError::Metadata {
            stream: id.to_string(),
            index: position,
            problem: "its `metadata` is not a JSON object".into(),
        }),
    }
}

fn streams(catalog: &Value) -> Result<&Vec<Value>, CatalogError> {
    let object = catalog.as_object().ok_or_else(|| CatalogError::Catalog {
        problem: "is not a JSON object".into(),
    })?;
    match object.get("streams") {
        Some(Value::Array(streams)) => Ok(streams),
        Some(_) => Err(CatalogError::Catalog {
            problem: "`streams` is not a list".into(),
        }),
        None => Err(CatalogError::Catalog {
            problem: "has no `streams` list".into(),
        }),
    }
}

fn streams_mut(catalog: &mut Value) -> Result<&mut Vec<Value>, CatalogError> {
    streams(catalog)?;
    match catalog.get_mut("streams") {
        Some(Value::Array(streams)) => Ok(streams),
        _ => Err(CatalogError::Catalog {
            problem: "has no `streams` list".into(),
        }),
    }
}

/// `tap_stream_id`, or `stream` for catalogs that only have that.
fn stream_id(index: usize, stream: &Map<String, Value>) -> Result<&str, CatalogError> {
    match (stream.get("tap_stream_id"), stream.get("stream")) {
        (Some(Value::String(id)), _) => Ok(id),
        (Some(_), _) => Err(CatalogError::StreamAt {
            index,
            problem: "`tap_stream_id` is not a string".into(),
        }),
        (None, Some(Value::String(id))) => Ok(id),
        (None, _) => Err(CatalogError::StreamAt {
            index,
            problem: "has no `tap_stream_id` (nor a `stream` name)".into(),
        }),
    }
}

fn metadata_list<'s>(
    id: &str,
    stream: &'s Map<String, Value>,
) -> Result<&'s [Value], CatalogError> {
    match stream.get("metadata") {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(entries)) => Ok(entries),
        Some(_) => Err(stream_error(id, "`metadata` is not a list")),
    }
}

/// A metadata entry, read.
struct Entry<'e> {
    /// Strings only.
    crumb: &'e [Value],
    /// Absent: none.
    metadata: Option<&'e Map<String, Value>>,
}

fn parse_entry<'e>(id: &str, index: usize, entry: &'e Value) -> Result<Entry<'e>, CatalogError> {
    let problem = |problem: &str| CatalogError::Metadata {
        stream: id.to_string(),
        index,
        problem: problem.to_string(),
    };
    let entry = entry
        .as_object()
        .ok_or_else(|| problem("is not a JSON object"))?;
    let crumb = match entry.get("breadcrumb") {
        Some(Value::Array(crumb)) if crumb.iter().all(Value::is_string) => crumb,
        Some(Value::Array(_)) => {
            return Err(problem(
                "its `breadcrumb` holds something other than strings",
            ));
        }
        Some(_) => return Err(problem("its `breadcrumb` is not a list")),
        None => return Err(problem("has no `breadcrumb`")),
    };
    let metadata = match entry.get("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(md)) => Some(md),
        Some(_) => return Err(problem("its `metadata` is not a JSON object")),
    };
    Ok(Entry { crumb, metadata })
}

/// Whether a breadcrumb is `["properties", "a", "properties", "b", ...]`.
fn is_canonical(crumb: &[Value]) -> bool {
    crumb.len().is_multiple_of(2) && crumb.chunks(2).all(|pair| pair[0] == "properties")
}

fn stream_error(id: &str, problem: &str) -> CatalogError {
    CatalogError::Stream {
        stream: id.to_string(),
        problem: problem.to_string(),
    }
}

#[cfg(test)]
mod tests {

    /// A loader's view of a stream: the metadata first, then the stream's
    /// own keys, then the replication key deciding the method.
    #[test]
    fn stream_infos_read_metadata_first() {
        let runtime = json!({"streams": [
            {"tap_stream_id": "users", "stream": "users", "key_properties": ["id"],
             "replication_key": "updated_at", "replication_method": "INCREMENTAL",
             "schema": {"properties": {"id": {}, "updated_at": {}}},
             "metadata": [{"breadcrumb": [], "metadata": {
                 "table-key-properties": ["uid"], "replication-method": "full_table"}}]},
            {"tap_stream_id": "events", "replication_key": "ts",
             "schema": {"properties": {"ts": {}}}},
            {"stream": "plain", "schema": {}}
        ]});
        let infos = stream_infos(&runtime);
        assert_eq!(infos.len(), 3);
        assert_eq!(infos[0].key_properties, vec!["uid"]);
        assert_eq!(infos[0].replication_method, "FULL_TABLE");
        assert_eq!(infos[0].replication_key.as_deref(), Some("updated_at"));
        assert_eq!(infos[0].fields, vec!["id", "updated_at"]);
        assert_eq!(infos[1].stream, "events");
        assert_eq!(infos[1].replication_method, "INCREMENTAL");
        assert!(infos[1].key_properties.is_empty());
        assert_eq!(infos[2].tap_stream_id, "plain");
        assert_eq!(infos[2].replication_method, "FULL_TABLE");
    }

    #[test]
    fn patterns_name_streams_with_or_without_fields() {
        assert!(pattern_names_stream("users", "users"));
        assert!(pattern_names_stream("users.email", "users"));
        assert!(pattern_names_stream("!users.*", "users"));
        assert!(pattern_names_stream("u*", "users"));
        assert!(pattern_names_stream("analytics.events", "analytics.events"));
        assert!(!pattern_names_stream("user", "users"));
        assert!(!pattern_names_stream("orders", "users"));
    }
    use super::Strategy;
    use super::*;
    use proptest::prelude::{Just, any, prop, prop_assert, prop_oneof, proptest};
    use proptest::strategy::Strategy as _;

    fn glob(pattern: &str, text: &str) -> bool {
        Glob::new(pattern).matches(text)
    }

    #[test]
    fn glob_matches_like_fnmatchcase() {
        assert!(glob("*", ""));
        assert!(glob("*.*", "users.email"));
        assert!(glob("*", "analytics.events"));
        assert!(glob("*_url", "address.properties.html_url"));
        assert!(!glob("*_url", "url"));
        assert!(glob("?sers", "users"));
        assert!(!glob("?sers", "sers"));
        assert!(glob("issue?", "issues"));
        assert!(!glob("USERS", "users"));
        assert!(glob("[a-c]x", "bx"));
        assert!(!glob("[a-c]x", "dx"));
        assert!(glob("[!a-c]x", "dx"));
        assert!(!glob("[!a-c]x", "ax"));
        assert!(glob("[]]", "]"));
        assert!(glob("[!]]", "a"));
        assert!(glob("[a-]", "-"));
        assert!(!glob("[z-a]x", "zx") && glob("[!z-a]x", "zx"));
        assert!(glob("[abc", "[abc"));
        assert!(glob("a\\b", "a\\b"));
        assert!(glob("a**b", "ab"));
        assert!(glob("*a*a*a", "aaaa"));
        assert!(!glob("*a*a*a", "aab"));
        assert!(glob("é*", "été"));
        assert!(!glob("", "x"));
        assert!(glob("", ""));
    }

    fn catalog() -> Value {
        json!({"streams": [
            {
                "tap_stream_id": "users",
                "replication_method": "INCREMENTAL",
                "replication_key": "updated_at",
                "schema": {"type": "object", "properties": {
                    "id": {"type": "integer"},
                    "email": {"type": "string"},
                    "address": {"type": "object", "properties": {
                        "city": {"type": "string"},
                        "geo": {"type": "object", "properties": {"lat": {}, "lng": {}}}
                    }},
                    "updated_at": {"type": "string"},
                    "legacy": {"type": "string"}
                }},
                "metadata": [
                    {"breadcrumb": [], "metadata": {"selected-by-default": true, "selected": true}},
                    {"breadcrumb": ["properties", "id"], "metadata": {"inclusion": "automatic"}},
                    {"breadcrumb": ["properties", "email"], "metadata": {"inclusion": "available", "selected": true}},
                    {"breadcrumb": ["properties", "legacy"], "metadata": {"inclusion": "unsupported"}}
                ]
            },
            {
                "tap_stream_id": "analytics.events",
                "schema": {"properties": {"user_id": {}, "ts": {}}},
                "metadata": []
            }
        ]})
    }

    fn select(rules: &[&str]) -> Value {
        let rules: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
        apply_select(&catalog(), &rules, Strategy::Prune)
            .unwrap()
            .catalog
    }

    fn property_paths(catalog: &Value, stream: &str) -> Vec<String> {
        fn walk(schema: &Value, prefix: &str, out: &mut Vec<String>) {
            if let Some(Value::Object(props)) = schema.get("properties") {
                for (name, sub) in props {
                    let path = format!("{prefix}{name}");
                    out.push(path.clone());
                    walk(sub, &format!("{path}."), out);
                }
            }
        }
        let mut out = Vec::new();
        for s in catalog["streams"].as_array().unwrap() {
            if s["tap_stream_id"] == stream {
                walk(&s["schema"], "", &mut out);
            }
        }
        out
    }

    fn stream_ids(catalog: &Value) -> Vec<&str> {
        catalog["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["tap_stream_id"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn nested_fields_are_addressed_with_dots() {
        let out = select(&["users.address.city"]);
        assert_eq!(stream_ids(&out), ["users"]);
        // `address` is kept for `city`; `id` is automatic, `updated_at` the key.
        assert_eq!(
            property_paths(&out, "users"),
            ["id", "address", "address.city", "updated_at"]
        );
        // The original's form, with `properties`, still works.
        let out = select(&["users.*", "!users.address.properties.geo"]);
        assert_eq!(
            property_paths(&out, "users"),
            ["id", "email", "address", "address.city", "updated_at"]
        );
    }

    #[test]
    fn deselecting_an_object_deselects_its_children() {
        let out = apply_select(
            &catalog(),
            &["users.*".into(), "!users.address".into()],
            Strategy::Deselect,
        )
        .unwrap()
        .catalog;
        let users = &out["streams"][0];
        let flags: Vec<(String, bool)> = users["metadata"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["breadcrumb"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|part| part.as_str().unwrap())
                        .collect::<Vec<_>>()
                        .join("/"),
                    e["metadata"]["selected"].as_bool().unwrap(),
                )
            })
            .collect();
        for (crumb, selected) in &flags {
            if crumb.starts_with("properties/address") {
                assert!(!selected, "{crumb} should be deselected");
            }
        }
        assert!(flags.contains(&(
            "properties/address/properties/geo/properties/lat".into(),
            false
        )));
        // And an object whose every property is left out goes too.
        let out = select(&["users.*", "!users.address.*"]);
        assert_eq!(property_paths(&out, "users"), ["id", "email", "updated_at"]);
        // A later rule can bring one back.
        let out = select(&["users.*", "!users.address", "users.address.geo.lat"]);
        assert_eq!(
            property_paths(&out, "users"),
            [
                "id",
                "email",
                "address",
                "address.geo",
                "address.geo.lat",
                "updated_at"
            ]
        );
    }

    #[test]
    fn dotted_stream_ids() {
        let out = select(&["analytics.events.user_id"]);
        assert_eq!(stream_ids(&out), ["analytics.events"]);
        assert_eq!(property_paths(&out, "analytics.events"), ["user_id"]);
        let out = select(&["analytics.events"]);
        assert_eq!(property_paths(&out, "analytics.events"), ["user_id", "ts"]);
        let out = select(&["analytics*"]);
        assert_eq!(stream_ids(&out), ["analytics.events"]);
        let out = select(&["*.*", "!analytics.events.ts"]);
        assert_eq!(property_paths(&out, "analytics.events"), ["user_id"]);
        // The original's reading, stream `analytics` field `events`, finds nothing.
        let out = select(&["analytics.*"]);
        assert_eq!(stream_ids(&out), Vec::<&str>::new());
    }

    #[test]
    fn automatic_and_unsupported_inclusion() {
        let out = select(&["users.*", "!users.id"]);
        assert!(property_paths(&out, "users").contains(&"id".to_string()));
        assert!(!property_paths(&out, "users").contains(&"legacy".to_string()));
        let out = select(&["users.legacy"]);
        assert_eq!(property_paths(&out, "users"), ["id", "updated_at"]);
        let rows = list(&catalog(), &["*.*".into()]).unwrap();
        let legacy = rows.iter().find(|r| r.field == ["legacy"]).unwrap();
        assert_eq!(
            (legacy.inclusion.as_str(), legacy.selected),
            ("unsupported", false)
        );
    }

    #[test]
    fn unmatched_streams_are_dropped_and_base_flags_overwritten() {
        // `users` is selected-by-default and pre-selected: still dropped.
        let out = select(&["analytics.events"]);
        assert_eq!(stream_ids(&out), ["analytics.events"]);
        // `email` was pre-selected; the rules do not select it.
        let out = select(&["users.address"]);
        assert!(!property_paths(&out, "users").contains(&"email".to_string()));
    }

    #[test]
    fn later_rules_win() {
        let out = select(&["users.*", "!users.email", "users.email"]);
        assert!(property_paths(&out, "users").contains(&"email".to_string()));
        let out = select(&["users.email", "!users.*"]);
        assert_eq!(stream_ids(&out), Vec::<&str>::new());
        let out = select(&["!users", "users.email"]);
        assert_eq!(property_paths(&out, "users"), ["id", "email", "updated_at"]);
        // Only negations start from `*.*`; `~` rules do not count.
        let out = select(&["!users", "~*.email"]);
        assert_eq!(stream_ids(&out), ["analytics.events"]);
    }

    #[test]
    fn incremental_replication_key_is_kept() {
        let mut base = catalog();
        base["streams"][0]["metadata"]
            .as_array_mut()
            .unwrap()
            .push(json!({"breadcrumb": ["properties", "updated_at"], "metadata": {"inclusion": "available"}}));
        let applied = apply_select(&base, &["users.email".into()], Strategy::Prune).unwrap();
        assert_eq!(
            property_paths(&applied.catalog, "users"),
            ["id", "email", "updated_at"]
        );
        assert_eq!(applied.warnings.len(), 1, "{:?}", applied.warnings);
        assert!(applied.warnings[0].contains("`updated_at`"));
        // Set by a metadata rule, after selection.
        let rules = Rules {
            select: vec!["users.email".into()],
            metadata: json!({"users": {"replication-key": "address"}})
                .as_object()
                .unwrap()
                .clone(),
            strategy: Strategy::Prune,
        };
        let applied = apply(&base, &rules).unwrap();
        assert!(property_paths(&applied.catalog, "users").contains(&"address.geo.lat".into()));
        assert_eq!(applied.warnings.len(), 1, "{:?}", applied.warnings);
        // A key that is not in the schema: a warning, not an error.
        base["streams"][0]["replication_key"] = json!("nope");
        let applied = apply_select(&base, &["*.*".into()], Strategy::Prune).unwrap();
        assert!(
            applied.warnings[0].contains("not a property"),
            "{:?}",
            applied.warnings
        );
    }

    #[test]
    fn metadata_rules_go_to_the_root_in_order() {
        let mut metadata = Map::new();
        metadata.insert(
            "users".into(),
            json!({"replication-key": "email", "selected": false}),
        );
        metadata.insert(
            "*".into(),
            json!({"replication-method": "FULL_TABLE", "x": 1}),
        );
        let applied = apply_metadata(
            &json!({"streams": [
                {"tap_stream_id": "users", "schema": {}}
            ]}),
            &metadata,
        )
        .unwrap();
        let stream = &applied.catalog["streams"][0];
        assert_eq!(
            stream["metadata"],
            json!([{"breadcrumb": [], "metadata": {"replication-key": "email", "replication-method": "FULL_TABLE", "x": 1}}])
        );
        assert_eq!(stream["replication_method"], "FULL_TABLE");
        assert_eq!(
            applied.warnings.len(),
            1,
            "`selected` is ignored: {:?}",
            applied.warnings
        );
    }

    #[test]
    fn hash_rules_are_parsed_apart() {
        let rules = hash_rules(&[
            "*.*".into(),
            "~users.email".into(),
            "~*.address.*".into(),
            "~analytics.events.user_id".into(),
            "~orders".into(),
        ]);
        assert_eq!(rules.len(), 4);
        assert_eq!(rules[0].stream, "users");
        assert_eq!(rules[0].field, ["email"]);
        assert!(rules[0].matches_stream("users") && !rules[0].matches_stream("user"));
        assert!(rules[0].matches("users", &["email"]));
        assert!(!rules[0].matches("users", &["emails"]));
        assert_eq!(rules[1].field, ["address", "*"]);
        assert!(rules[1].matches("x", &["address", "city"]));
        assert!(rules[2].matches_stream("analytics.events"));
        assert!(rules[2].matches("analytics.events", &["user_id"]));
        assert!(rules[3].matches("orders", &["total"]));
        assert!(!rules[3].matches_stream("orders_archive"));
    }

    #[test]
    fn malformed_catalogs_are_errors_naming_the_stream() {
        let cases = [
            (json!([]), "not a JSON object"),
            (json!({"streams": {}}), "`streams` is not a list"),
            (json!({"streams": [1]}), "stream #0: is not a JSON object"),
            (
                json!({"streams": [{"schema": {}}]}),
                "has no `tap_stream_id`",
            ),
            (
                json!({"streams": [{"tap_stream_id": "a", "schema": []}]}),
                "`a`: `schema` is not",
            ),
            (
                json!({"streams": [{"tap_stream_id": "a", "schema": {}, "metadata": {}}]}),
                "`metadata` is not a list",
            ),
            (
                json!({"streams": [{"tap_stream_id": "a", "schema": {}, "metadata": [{"metadata": {}}]}]}),
                "`a`, metadata entry #0: has no `breadcrumb`",
            ),
            (
                json!({"streams": [{"tap_stream_id": "a", "schema": {"properties": {"o": {"properties": 3}}}}]}),
                "`a`, schema property `o`",
            ),
        ];
        for (catalog, expected) in cases {
            let error = apply(&catalog, &Rules::default()).unwrap_err().to_string();
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        }
        let error = Rules::from_json(&json!({"select": "x"})).unwrap_err();
        assert!(error.to_string().contains("`select` is not a list"));
        let error = Rules::from_json(&json!({"metadata": {"users": 1}})).unwrap_err();
        assert!(error.to_string().contains("metadata rule `users`"));
    }

    #[test]
    fn applies_quickly_to_a_large_catalog() {
        // 300 streams of 20 properties, every fourth an object of 3: 7,500
        // properties with their metadata.
        let streams: Vec<Value> = (0..300)
            .map(|s| {
                let mut properties = Map::new();
                let mut metadata = vec![json!({"breadcrumb": [], "metadata": {}})];
                for f in 0..20 {
                    let name = format!("f{f}_url");
                    let schema = if f % 4 == 0 {
                        let nested: Map<String, Value> = (0..3)
                            .map(|n| (format!("n{n}"), json!({"type": "string"})))
                            .collect();
                        json!({"type": "object", "properties": nested})
                    } else {
                        json!({"type": ["null", "string"]})
                    };
                    properties.insert(name.clone(), schema);
                    metadata.push(json!({
                        "breadcrumb": ["properties", name],
                        "metadata": {"inclusion": "available"}
                    }));
                }
                json!({
                    "tap_stream_id": format!("s{s}"),
                    "schema": {"properties": properties},
                    "metadata": metadata
                })
            })
            .collect();
        let base = json!({ "streams": streams });
        let rules = Rules {
            select: vec![
                "*.*".into(),
                "!*.*_url.n1".into(),
                "!s1*".into(),
                "s1.f1_url".into(),
            ],
            ..Rules::default()
        };
        let applied = apply(&base, &rules).unwrap();
        // Its speed (about 10 ms in a release build) is the benchmarks' to
        // measure; a timed assertion would fail on a loaded machine.
        assert_eq!(
            applied.catalog["streams"].as_array().unwrap().len(),
            300 - 111 + 1
        );
    }

    fn json_ish() -> impl proptest::strategy::Strategy<Value = Value> {
        let key = prop::sample::select(vec![
            "streams",
            "tap_stream_id",
            "stream",
            "schema",
            "properties",
            "metadata",
            "breadcrumb",
            "selected",
            "inclusion",
            "replication-method",
            "replication-key",
            "replication_method",
            "replication_key",
            "a",
            "b.c",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            prop::sample::select(vec![
                "automatic",
                "unsupported",
                "available",
                "INCREMENTAL",
                "a",
                "properties",
                "",
            ])
            .prop_map(|s| Value::String(s.into())),
            (0i64..3).prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..5).prop_map(|pairs| Value::Object(
                    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
            ]
        })
    }

    /// Catalogs of the right shape, so the rules get to run on them.
    fn catalog_ish() -> impl proptest::strategy::Strategy<Value = Value> {
        let name = prop::sample::select(vec!["x", "y", "properties", "a.b", "items"]);
        let schema = Just(json!({"type": "string"})).prop_recursive(3, 24, 4, move |inner| {
            prop::collection::vec((name.clone(), inner), 0..4).prop_map(|props| {
                let props: Map<String, Value> =
                    props.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                json!({"type": "object", "properties": props})
            })
        });
        let crumb = prop::collection::vec(
            prop::sample::select(vec!["properties", "x", "y", "a.b", "items"]),
            0..5,
        );
        let entry = (
            crumb,
            prop::option::of(prop::sample::select(vec![
                "automatic",
                "unsupported",
                "available",
            ])),
            prop::option::of(any::<bool>()),
        )
            .prop_map(|(crumb, inclusion, selected)| {
                let mut md = Map::new();
                if let Some(inclusion) = inclusion {
                    md.insert("inclusion".into(), json!(inclusion));
                }
                if let Some(selected) = selected {
                    md.insert("selected".into(), json!(selected));
                }
                json!({"breadcrumb": crumb, "metadata": md})
            });
        let stream = (
            prop::sample::select(vec!["a", "b", "a.b", "users"]),
            schema,
            prop::collection::vec(entry, 0..6),
            prop::option::of(prop::sample::select(vec!["INCREMENTAL", "FULL_TABLE"])),
            prop::option::of(prop::sample::select(vec!["x", "y", "z"])),
        )
            .prop_map(|(id, schema, metadata, method, key)| {
                json!({"tap_stream_id": id, "schema": schema, "metadata": metadata,
                       "replication_method": method, "replication_key": key})
            });
        prop::collection::vec(stream, 0..4).prop_map(|streams| json!({ "streams": streams }))
    }

    proptest! {
        #[test]
        fn rules_never_panic_on_catalogs(
            catalog in catalog_ish(),
            select in prop::collection::vec("[!~]?[abxy*?.!]{0,7}", 0..5),
            deselect in any::<bool>(),
        ) {
            let strategy = if deselect { Strategy::Deselect } else { Strategy::Prune };
            let applied = apply_select(&catalog, &select, strategy);
            prop_assert!(applied.is_ok(), "{applied:?}");
            let _ = list(&catalog, &select);
        }

        #[test]
        fn apply_never_panics(
            catalog in json_ish(),
            streams in prop::collection::vec(json_ish(), 0..3),
            select in prop::collection::vec("[!~]?[a-c*?.\\[\\]!-]{0,8}", 0..5),
            metadata in prop::collection::vec(("[a-c*?.\\[]{0,4}", json_ish()), 0..3),
            deselect in any::<bool>(),
        ) {
            let rules = Rules {
                select,
                metadata: metadata.into_iter().collect(),
                strategy: if deselect { Strategy::Deselect } else { Strategy::Prune },
            };
            let _ = apply(&catalog, &rules);
            let _ = apply(&json!({ "streams": streams }), &rules);
            let _ = list(&catalog, &rules.select);
            let _ = hash_rules(&rules.select);
        }

        #[test]
        fn glob_star_matches_everything(text in ".{0,12}") {
            prop_assert!(Glob::new("*").matches(&text));
            prop_assert!(Glob::new(&text.replace(['*', '?', '['], "x")).matches(&text.replace(['*', '?', '['], "x")));
        }
    }
}
