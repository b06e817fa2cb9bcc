//! Admission of the shipped manifests: every custom resource in `examples/` and
//! `config/samples/` passes the generated schema and its CEL rules, and every fixture in
//! `tests/fixtures/invalid/` is refused with the message it names.

use std::path::{Path, PathBuf};

use mcp_operator::admission::Admission;
use serde::Deserialize;
use serde_json::Value;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every YAML document of `path` (multi-document files allowed), skipping empty ones.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    files
}

/// Admits every custom resource of our group in `dir`; returns how many were checked.
fn admit_all_in(dir: &Path) -> usize {
    let admission = Admission::for_own_kinds();
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in yaml_files(dir) {
        for doc in documents(&file) {
            let api_version = doc
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !api_version.starts_with("mcp-operator.dev/") {
                continue;
            }
            checked += 1;
            if let Err(err) = admission.admit(&doc, None) {
                failures.push(format!("{}: {err}", file.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "manifests refused at admission:\n{}",
        failures.join("\n")
    );
    checked
}

#[test]
fn every_example_is_admitted() {
    let checked = admit_all_in(&repo_root().join("examples"));
    // server-everything stdio/HTTP/SSE, memory, filesystem, remote, uvx, policy, binding.
    assert!(
        checked >= 9,
        "expected at least 9 custom resources in examples/, found {checked}"
    );
}

#[test]
fn every_sample_is_admitted() {
    let checked = admit_all_in(&repo_root().join("config/samples"));
    assert!(checked >= 1, "config/samples holds no custom resource");
}

#[test]
fn examples_cover_every_kind_and_transport() {
    let mut seen = std::collections::BTreeSet::new();
    for file in yaml_files(&repo_root().join("examples")) {
        for doc in documents(&file) {
            let kind = doc
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let transport = doc
                .pointer("/spec/transport")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let place = if doc.pointer("/spec/remote").is_some() {
                "remote"
            } else {
                "container"
            };
            seen.insert(format!("{kind}/{transport}/{place}"));
        }
    }
    for wanted in [
        "McpServer/Stdio/container",
        "McpServer/StreamableHttp/container",
        "McpServer/Sse/container",
        "McpServer/StreamableHttp/remote",
        "McpPolicy//container",
        "McpBinding//container",
    ] {
        assert!(
            seen.contains(wanted),
            "examples/ has no {wanted}; seen: {seen:?}"
        );
    }
}

/// The `# expect: …` lines at the top of a fixture.
fn expectations(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|line| line.strip_prefix("# expect: "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_invalid_fixture_is_refused_with_its_message() {
    let admission = Admission::for_own_kinds();
    let files = yaml_files(&repo_root().join("tests/fixtures/invalid"));
    assert!(
        files.len() >= 30,
        "expected a fixture per admission rule, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let expected = expectations(file);
        assert!(
            !expected.is_empty(),
            "{}: no `# expect:` line",
            file.display()
        );
        let docs = documents(file);
        assert_eq!(
            docs.len(),
            1,
            "{}: one document per fixture",
            file.display()
        );
        match admission.admit(&docs[0], None) {
            Ok(_) => failures.push(format!("{}: admitted, expected refusal", file.display())),
            Err(err) => {
                let text = err.to_string();
                for wanted in &expected {
                    if !text.contains(wanted.as_str()) {
                        failures.push(format!(
                            "{}:\n  expected: {wanted}\n  got:      {text}",
                            file.display()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures misbehaved:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
