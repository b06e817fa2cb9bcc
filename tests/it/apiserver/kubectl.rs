//! The real kubectl (the pinned one from `make peers`) against the server.

use super::*;

/// The kubectl the repository pins (`make peers` installs it into `.peers/bin`). A missing
/// kubectl fails the test: `make test` installs it, so its absence is a broken setup.
fn kubectl() -> std::path::PathBuf {
    let peers = std::env::var_os("MCP_OPERATOR_PEERS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".peers"));
    let pinned = peers.join("bin/kubectl");
    assert!(
        pinned.is_file(),
        "{} is missing: run `make peers`",
        pinned.display()
    );
    pinned
}

async fn run_kubectl(
    kubectl: &std::path::Path,
    kubeconfig: &std::path::Path,
    args: &[&str],
) -> String {
    let output = tokio::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .await
        .expect("kubectl runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kubectl {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// The real kubectl works against the server: server-side apply of the CRDs and the
/// examples, then `kubectl get mcpservers`.
#[tokio::test]
async fn kubectl_applies_the_examples_and_lists_them() {
    let kubectl = kubectl();
    let (server, _client) = start(ApiServerOptions::default()).await;
    let config = tempfile::NamedTempFile::new().unwrap();
    server.write_kubeconfig(config.path()).unwrap();
    let applied = run_kubectl(
        &kubectl,
        config.path(),
        &["apply", "--server-side", "-f", "crds/"],
    )
    .await;
    assert!(
        applied.contains("mcpservers.mcp-operator.dev serverside-applied"),
        "{applied}"
    );
    let applied = run_kubectl(
        &kubectl,
        config.path(),
        &["apply", "--server-side", "-f", "examples/"],
    )
    .await;
    assert!(
        applied.contains("mcpserver.mcp-operator.dev/everything serverside-applied"),
        "{applied}"
    );
    let listed = run_kubectl(&kubectl, config.path(), &["get", "mcpservers"]).await;
    let header = listed.lines().next().unwrap_or_default();
    assert!(
        header.split_whitespace().eq([
            "NAME",
            "TRANSPORT",
            "READY",
            "TOOLS",
            "PHASE",
            "LAST",
            "PROBE",
            "AGE"
        ]),
        "{listed}"
    );
    // Status columns are empty (no controller ran); AGE is whatever second the clock is
    // in, so only its form is checked (an exact "0s" failed when a second boundary fell
    // between apply and get).
    let seconds_old = |age: &str| {
        age.strip_suffix('s')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    assert!(
        listed.lines().any(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            matches!(fields[..], ["everything", "Stdio", age] if seconds_old(age))
        }),
        "{listed}"
    );
    // `mcp` is the CRDs' category: all three kinds are listed.
    let category = run_kubectl(&kubectl, config.path(), &["get", "mcp"]).await;
    assert!(
        category.contains("mcpserver.mcp-operator.dev/memory")
            && category.contains("mcpbinding.mcp-operator.dev/"),
        "{category}"
    );
    let described = run_kubectl(
        &kubectl,
        config.path(),
        &["describe", "mcpserver", "everything"],
    )
    .await;
    assert!(
        described.contains("Name:") && described.contains("everything"),
        "{described}"
    );
    let deleted = run_kubectl(&kubectl, config.path(), &["delete", "mcpserver", "memory"]).await;
    assert!(deleted.contains("deleted"), "{deleted}");
    let listed = run_kubectl(
        &kubectl,
        config.path(),
        &["get", "mcpservers", "-o", "name"],
    )
    .await;
    assert!(!listed.contains("memory"), "{listed}");
}
