//! The `mcp-operator` binary itself: subcommands that need no cluster.

use std::process::Command;

use serde::Deserialize;

fn mcp_operator() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mcp-operator"))
}

#[test]
fn crd_prints_the_three_crds_as_one_yaml_stream() {
    let output = mcp_operator().arg("crd").output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let names: Vec<String> = serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            let crd = serde_json::Value::deserialize(doc).unwrap();
            assert_eq!(crd["kind"], "CustomResourceDefinition");
            crd["metadata"]["name"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "mcpservers.mcp-operator.dev",
            "mcppolicies.mcp-operator.dev",
            "mcpbindings.mcp-operator.dev"
        ]
    );
}

#[test]
fn crd_out_dir_writes_one_file_per_crd() {
    let dir = tempfile::tempdir().unwrap();
    let status = mcp_operator()
        .arg("crd")
        .arg("--out-dir")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "mcp-operator.dev_mcpbindings.yaml",
            "mcp-operator.dev_mcppolicies.yaml",
            "mcp-operator.dev_mcpservers.yaml"
        ]
    );
}
