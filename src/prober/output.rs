//! Rendering probe results for people and scripts: a table (default), JSON, YAML, and the
//! `pinnedTools:` snippet for committing reviewed tool hashes into a manifest.

use std::fmt::Write as _;

use super::call::CallOutcome;
use super::inventory::ToolInventory;
use super::run::ProbeReport;

/// `-o` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Server line, capabilities, then NAME / SHA256 (12) / DESCRIPTION.
    #[default]
    Table,
    /// The full report as JSON.
    Json,
    /// The full report as YAML.
    Yaml,
}

/// Width of the DESCRIPTION column in the table.
const DESCRIPTION_WIDTH: usize = 72;

/// The report in `format`. Table output of a failed probe is empty (the error goes to stderr).
pub fn render(report: &ProbeReport, format: OutputFormat) -> Result<String, String> {
    match format {
        OutputFormat::Json => serde_json::to_string_pretty(report)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        OutputFormat::Yaml => serde_yaml::to_string(report).map_err(|e| e.to_string()),
        OutputFormat::Table => Ok(report
            .inventory()
            .map(|inv| table(inv, report))
            .unwrap_or_default()),
    }
}

/// Like [`render`], with the results of `probe --call` (a `calls` list in JSON and YAML, a
/// CALLS section in the table).
pub fn render_with_calls(
    report: &ProbeReport,
    calls: Option<&[CallOutcome]>,
    format: OutputFormat,
) -> Result<String, String> {
    let Some(calls) = calls else {
        return render(report, format);
    };
    match format {
        OutputFormat::Table => {
            let mut out = render(report, format)?;
            let _ = writeln!(out, "\nCALLS");
            for c in calls {
                let verdict = match (&c.error, c.is_error) {
                    (Some(e), _) => format!("failed: {e}"),
                    (None, Some(true)) => "isError".to_owned(),
                    (None, _) => "ok".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "{}  {verdict}  {}",
                    c.name,
                    one_line(&c.text, DESCRIPTION_WIDTH)
                );
            }
            Ok(out)
        }
        OutputFormat::Json | OutputFormat::Yaml => {
            let mut value = serde_json::to_value(report).map_err(|e| e.to_string())?;
            value["calls"] = serde_json::to_value(calls).map_err(|e| e.to_string())?;
            if format == OutputFormat::Json {
                serde_json::to_string_pretty(&value)
                    .map(|s| s + "\n")
                    .map_err(|e| e.to_string())
            } else {
                serde_yaml::to_string(&value).map_err(|e| e.to_string())
            }
        }
    }
}

fn table(inv: &ToolInventory, report: &ProbeReport) -> String {
    let mut out = String::new();
    let si = &inv.server_info;
    let era = match si.era {
        Some(crate::api::server_status::ProtocolEra::Modern) => ", modern era",
        Some(crate::api::server_status::ProtocolEra::Legacy) => ", legacy era",
        None => "",
    };
    let _ = writeln!(
        out,
        "Server:        {} {} (protocol {}{era})",
        si.name, si.version, si.protocol_version
    );
    if !si.supported_versions.is_empty() {
        let _ = writeln!(out, "Supports:      {}", si.supported_versions.join(", "));
    }
    let c = &inv.capabilities;
    let caps: Vec<&str> = [
        (c.tools, "tools"),
        (c.resources, "resources"),
        (c.prompts, "prompts"),
        (c.logging, "logging"),
        (c.completions, "completions"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    let caps = if caps.is_empty() {
        "none".to_owned()
    } else {
        caps.join(", ")
    };
    let _ = writeln!(out, "Capabilities:  {caps}");
    let _ = writeln!(
        out,
        "Counts:        {} tools, {} resources, {} prompts",
        inv.tool_count, inv.resource_count, inv.prompt_count
    );
    let _ = writeln!(out, "Tools digest:  {}", inv.tools_digest);
    let _ = writeln!(
        out,
        "Probe:         {} ms, {} attempt{}",
        report.latency_ms,
        report.attempts,
        if report.attempts == 1 { "" } else { "s" }
    );
    if inv.tools.is_empty() {
        return out;
    }
    let name_w = inv
        .tools
        .iter()
        .map(|t| t.name.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(out, "\n{:<name_w$}  {:<12}  DESCRIPTION", "NAME", "SHA256");
    for t in &inv.tools {
        let hash: String = t.sha256.chars().take(12).collect();
        let _ = writeln!(
            out,
            "{:<name_w$}  {:<12}  {}",
            t.name,
            hash,
            one_line(&t.description, DESCRIPTION_WIDTH)
        );
    }
    if inv.tools_truncated {
        let _ = writeln!(
            out,
            "… {} more tools not shown (status keeps 128)",
            inv.tool_count as usize - inv.tools.len()
        );
    }
    out
}

/// `text` on one line, cut to `width` characters with an ellipsis.
fn one_line(text: &str, width: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= width {
        flat
    } else {
        let cut: String = flat.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// `pinnedTools:` YAML for `spec.pinnedTools`, one flow mapping per kept tool.
pub fn pins(inv: &ToolInventory) -> String {
    let mut out = String::from("pinnedTools:\n");
    for t in &inv.tools {
        // JSON string syntax is valid YAML and quotes any name safely.
        let name = serde_json::Value::from(t.name.as_str());
        if t.name_truncated {
            // Pins hold names of at most 128 characters: this tool cannot be pinned.
            let _ = writeln!(
                out,
                "  # not pinnable, name longer than 128 characters: {name}"
            );
            continue;
        }
        let _ = writeln!(out, "  - {{name: {name}, sha256: {}}}", t.sha256);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prober::inventory::{ServerCapabilities, ServerInfo};
    use crate::prober::run::ProbeOutcome;
    use serde_json::json;

    fn report() -> ProbeReport {
        let tools = [
            json!({"name": "echo", "description": "Echoes back\nthe input", "inputSchema": {}}),
            json!({"name": "a:b", "description": "x".repeat(100), "inputSchema": {}}),
        ];
        let inventory = ToolInventory::from_tools(
            ServerInfo {
                name: "srv".into(),
                version: "1.0".into(),
                protocol_version: "2025-11-25".into(),
                instructions: String::new(),
                era: Some(crate::api::server_status::ProtocolEra::Legacy),
                supported_versions: Vec::new(),
            },
            ServerCapabilities {
                tools: true,
                prompts: true,
                ..Default::default()
            },
            &tools,
            0,
            2,
        );
        ProbeReport {
            target: "http://h/mcp".into(),
            attempts: 1,
            latency_ms: 5,
            outcome: ProbeOutcome::Succeeded { inventory },
        }
    }

    #[test]
    fn table_lists_server_caps_and_tools() {
        let t = render(&report(), OutputFormat::Table).unwrap();
        assert!(
            t.contains("srv 1.0 (protocol 2025-11-25, legacy era)"),
            "{t}"
        );
        assert!(t.contains("Capabilities:  tools, prompts"), "{t}");
        assert!(t.contains("Echoes back the input"), "{t}");
        assert!(
            t.lines().any(|l| l.starts_with("a:b ") && l.ends_with('…')),
            "{t}"
        );
    }

    #[test]
    fn json_yaml_and_pins_parse_back() {
        let r = report();
        let j: serde_json::Value =
            serde_json::from_str(&render(&r, OutputFormat::Json).unwrap()).unwrap();
        assert_eq!(j["inventory"]["toolCount"], 2);
        let y: serde_yaml::Value =
            serde_yaml::from_str(&render(&r, OutputFormat::Yaml).unwrap()).unwrap();
        assert_eq!(y["result"], "Succeeded");
        let p: serde_yaml::Value = serde_yaml::from_str(&pins(r.inventory().unwrap())).unwrap();
        assert_eq!(p["pinnedTools"][0]["name"], "a:b");
        assert_eq!(p["pinnedTools"][1]["sha256"].as_str().unwrap().len(), 64);
    }
}
