//! What `alto init` writes: a starter project in each format, the same content
//! in all four.

use super::format::Format;

/// The main config file of a new project.
pub fn main_file(format: Format, project: &str) -> String {
    let text = match format {
        Format::Yaml => YAML,
        Format::Toml => TOML,
        Format::Json => JSON,
        Format::Kdl => KDL,
    };
    text.replace("{project}", project)
}

/// `alto.local.<ext>`: this machine's overrides, kept out of version control.
pub fn local_file(format: Format) -> &'static str {
    match format {
        Format::Yaml => {
            "# Settings for this machine only (not committed). Same sections as alto.yaml.\ndefault: {}\n"
        }
        Format::Toml => {
            "# Settings for this machine only (not committed). Same sections as alto.toml.\n[default]\n"
        }
        Format::Json => "{\n  \"default\": {}\n}\n",
        Format::Kdl => {
            "// Settings for this machine only (not committed). Same sections as alto.kdl.\ndefault {}\n"
        }
    }
}

pub const DOTENV: &str = "# Variables for {env[NAME]} in the config and for plugins; real environment variables win.\n# ALTO_ENV=dev\n";

/// Sample data for the starter tap, so the quick start runs a real pipeline.
pub const SAMPLE_DATA: &str = "{\"id\": 1, \"kind\": \"signup\", \"at\": \"2026-01-01T10:00:00Z\"}\n{\"id\": 2, \"kind\": \"login\", \"at\": \"2026-01-01T10:05:00Z\"}\n{\"id\": 3, \"kind\": \"purchase\", \"at\": \"2026-01-01T10:09:00Z\"}\n";

pub const GITIGNORE_LINES: [&str; 4] = [".alto/", ".env", "alto.local.*", "alto.secrets.*"];

const YAML: &str = r#"# alto project. `default` applies to every environment; other sections
# (dev, prod, ...) are layered over it when ALTO_ENV (or --env) names them.
default:
  project_name: {project}
  load_path: raw
  # Exported to every plugin.
  environment:
    ALTO_PROJECT: {project}
  taps:
    tap-jsonl:
      pip_url: tap-jsonl==0.3.1
      load_path: example
      capabilities: [catalog, discover, state]
      select: ["*.*"]
      config:
        # A JSONL file that alto init writes; point it at your own data.
        path: data/events.jsonl
        stream_name: events
  targets:
    target-jsonl:
      pip_url: target-jsonl==0.1.4
      config:
        # {this.load_path} is the load_path of the tap whose data is loaded.
        destination_path: "@format output/{this.load_path}"
        do_timestamp_file: false
prod:
  load_path: warehouse
"#;

const TOML: &str = r#"# alto project. [default] applies to every environment; other sections
# (dev, prod, ...) are layered over it when ALTO_ENV (or --env) names them.
[default]
project_name = "{project}"
load_path = "raw"

# Exported to every plugin.
[default.environment]
ALTO_PROJECT = "{project}"

[default.taps.tap-jsonl]
pip_url = "tap-jsonl==0.3.1"
load_path = "example"
capabilities = ["catalog", "discover", "state"]
select = ["*.*"]
# A JSONL file that alto init writes; point it at your own data.
config.path = "data/events.jsonl"
config.stream_name = "events"

[default.targets.target-jsonl]
pip_url = "target-jsonl==0.1.4"
# {this.load_path} is the load_path of the tap whose data is loaded.
config.destination_path = "@format output/{this.load_path}"
config.do_timestamp_file = false

[prod]
load_path = "warehouse"
"#;

const JSON: &str = r#"{
  "default": {
    "project_name": "{project}",
    "load_path": "raw",
    "environment": {"ALTO_PROJECT": "{project}"},
    "taps": {
      "tap-jsonl": {
        "pip_url": "tap-jsonl==0.3.1",
        "load_path": "example",
        "capabilities": ["catalog", "discover", "state"],
        "select": ["*.*"],
        "config": {"path": "data/events.jsonl", "stream_name": "events"}
      }
    },
    "targets": {
      "target-jsonl": {
        "pip_url": "target-jsonl==0.1.4",
        "config": {
          "destination_path": "@format output/{this.load_path}",
          "do_timestamp_file": false
        }
      }
    }
  },
  "prod": {"load_path": "warehouse"}
}
"#;

const KDL: &str = r#"// alto project. `default` applies to every environment; other sections
// (dev, prod, ...) are layered over it when ALTO_ENV (or --env) names them.
// A node's name is a key; one argument is a value, several are a list,
// properties and children are a map.
default {
    project_name "{project}"
    load_path "raw"
    // Exported to every plugin.
    environment ALTO_PROJECT="{project}"
    taps {
        tap-jsonl {
            pip_url "tap-jsonl==0.3.1"
            load_path "example"
            capabilities "catalog" "discover" "state"
            select {
                - "*.*"
            }
            // A JSONL file that alto init writes; point it at your own data.
            config path="data/events.jsonl" stream_name="events"
        }
    }
    targets {
        target-jsonl {
            pip_url "target-jsonl==0.1.4"
            config {
                // {this.load_path} is the load_path of the tap whose data is loaded.
                destination_path "@format output/{this.load_path}"
                do_timestamp_file #false
            }
        }
    }
}
prod {
    load_path "warehouse"
}
"#;
