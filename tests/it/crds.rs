//! The generated CRDs: the committed copies match the code (drift), the schemas are
//! structural, and names, printer columns and subresources are what docs/api.md promises.

use std::path::PathBuf;

use mcp_operator::{admission::check_structural_schema, api::crd};

#[test]
fn committed_crds_match_the_code() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let expected = crd::rendered_files().unwrap();
    let mut drift = Vec::new();
    for dir in crd::CRD_DIRS {
        for (name, contents) in &expected {
            let path = root.join(dir).join(name);
            match std::fs::read_to_string(&path) {
                Ok(on_disk) if &on_disk == contents => {}
                Ok(_) => drift.push(format!("{} differs from the code", path.display())),
                Err(e) => drift.push(format!("{}: {e}", path.display())),
            }
        }
        let count = std::fs::read_dir(root.join(dir))
            .map(|d| d.count())
            .unwrap_or(0);
        if count != expected.len() {
            drift.push(format!(
                "{dir} holds {count} files, expected {}",
                expected.len()
            ));
        }
    }
    assert!(
        drift.is_empty(),
        "CRDs out of date — run `make manifests`:\n{}",
        drift.join("\n")
    );
}

#[test]
fn every_crd_schema_is_structural() {
    for crd in crd::all() {
        for version in &crd.spec.versions {
            let schema = version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .unwrap();
            let problems = check_structural_schema(&serde_json::to_value(schema).unwrap());
            assert!(
                problems.is_empty(),
                "{} {} is not structural:\n{}",
                crd.spec.names.kind,
                version.name,
                problems.join("\n")
            );
        }
    }
}

#[test]
fn names_columns_and_subresources_follow_the_api() {
    let expected = [
        (
            "McpServer",
            "mcpservers",
            "mcpsrv",
            vec![
                "Transport",
                "Ready",
                "Tools",
                "Phase",
                "Last Probe",
                "Era",
                "URL",
                "Age",
            ],
        ),
        (
            "McpPolicy",
            "mcppolicies",
            "mcppol",
            vec!["Targets", "Pinning", "Audit", "Accepted", "Age"],
        ),
        (
            "McpBinding",
            "mcpbindings",
            "mcpbind",
            vec!["Servers", "Secret", "Ready", "Age"],
        ),
    ];
    for (crd, (kind, plural, short, columns)) in crd::all().iter().zip(expected) {
        let names = &crd.spec.names;
        assert_eq!(names.kind, kind);
        assert_eq!(names.plural, plural);
        assert_eq!(names.short_names.as_deref(), Some(&[short.to_owned()][..]));
        assert_eq!(names.categories.as_deref(), Some(&["mcp".to_owned()][..]));
        assert_eq!(crd.spec.group, "mcp-operator.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.served && version.storage);
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{kind} has no status subresource"
        );
        let got: Vec<&str> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(got, columns, "{kind} printer columns");
    }
    let server = &crd::all()[0];
    let url = server.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .find(|c| c.name == "URL")
        .unwrap();
    assert_eq!(url.priority, Some(1), "URL shows only with -o wide");
    let era = server.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .find(|c| c.name == "Era")
        .unwrap();
    assert_eq!(era.priority, Some(1), "Era shows only with -o wide");
    assert_eq!(era.json_path, ".status.serverInfo.era");
}
