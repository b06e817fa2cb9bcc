//! How container commands run on this machine. Images are not pulled, so `npx`, `uvx`,
//! `python` and `node` are the host's — resolved, when the pinned peers are installed
//! (`make peers` → `.peers/`), to those peers so nothing is downloaded at run time:
//! - containers without a `workingDir` start in the peers folder, where `npx <pkg>@<ver>`
//!   finds `node_modules/<pkg>` at that version and runs it offline;
//! - `PATH` starts with a shim folder, then `.peers/node_modules/.bin` and
//!   `.peers/venv/bin`; the `uvx` shim runs `uvx <pkg>@<ver>` from the peers venv when
//!   that version is installed there, and the real `uvx` otherwise;
//! - `NODE_OPTIONS` preloads [`BIND_PRELOAD`], which makes Node servers listen on the
//!   pod's loopback address instead of all interfaces, so two pods can use one port;
//! - npm keeps reading the developer's `~/.npmrc` (registry, proxy) although the
//!   examples point `HOME` at a scratch volume.

use std::path::{Path, PathBuf};

use super::runner::process::HostEnv;

/// Node preload: servers asking for all interfaces or loopback listen on the pod's
/// address (`MCP_OPERATOR_DEV_POD_IP`).
pub const BIND_PRELOAD: &str = r#"// mcp-operator dev: Node servers listen on the pod's own loopback address.
'use strict';
const net = require('net');
const ip = process.env.MCP_OPERATOR_DEV_POD_IP;
const local = (h) => h === undefined || h === null || h === '' || h === '0.0.0.0' || h === '::' || h === '127.0.0.1' || h === 'localhost' || h === '::1';
if (ip) {
  const listen = net.Server.prototype.listen;
  net.Server.prototype.listen = function (...args) {
    const first = args[0];
    if (first !== null && typeof first === 'object' && 'port' in first) {
      if (local(first.host)) args[0] = { ...first, host: ip };
    } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
      const rest = args.slice(1);
      if (typeof rest[0] === 'string' || rest[0] === undefined || rest[0] === null) {
        if (!local(rest[0])) return listen.apply(this, args);
        rest.shift();
      }
      args = [Number(first), ip, ...rest];
    }
    return listen.apply(this, args);
  };
}
"#;

/// `uvx` shim; `@VENV@` is replaced by the peers venv.
const UVX_SHIM: &str = r#"#!/bin/sh
# mcp-operator dev: `uvx PKG[@VER|==VER] ARGS` runs PKG from the pinned peers venv when that
# version is installed there; otherwise the real uvx (further down PATH).
venv='@VENV@'
spec="$1"
case "$spec" in
  -*|'') ;;
  *)
    name="${spec%%@*}"; name="${name%%==*}"
    ver=""
    case "$spec" in *@*) ver="${spec#*@}" ;; *==*) ver="${spec#*==}" ;; esac
    dist=$(printf '%s' "$name" | tr '-' '_')
    if [ -x "$venv/bin/$name" ]; then
      if [ -z "$ver" ] || ls -d "$venv"/lib/python*/site-packages/"$dist-$ver.dist-info" >/dev/null 2>&1; then
        shift
        exec "$venv/bin/$name" "$@"
      fi
    fi
    ;;
esac
self_dir=$(cd "$(dirname "$0")" && pwd)
old_ifs=$IFS; IFS=:
for d in $PATH; do
  [ "$d" = "$self_dir" ] && continue
  if [ -x "$d/uvx" ]; then IFS=$old_ifs; exec "$d/uvx" "$@"; fi
done
echo "uvx: $spec is not installed in $venv and uv is not on PATH: run make peers, or install uv (https://docs.astral.sh/uv/)" >&2
exit 127
"#;

/// The peers folder to use: `explicit`, else `$MCP_OPERATOR_PEERS`, else `./.peers`;
/// None when it does not exist.
pub fn peers_dir(explicit: Option<&Path>) -> Option<PathBuf> {
    let candidate = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("MCP_OPERATOR_PEERS").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(".peers"));
    candidate
        .is_dir()
        .then(|| std::fs::canonicalize(&candidate).unwrap_or(candidate))
}

/// Writes the shims and the preload under `root` and returns the host environment of
/// containers.
pub fn prepare(root: &Path, peers: Option<&Path>) -> std::io::Result<HostEnv> {
    let shims = root.join("shims");
    std::fs::create_dir_all(&shims)?;
    let preload = root.join("bind-pod-address.cjs");
    std::fs::write(&preload, BIND_PRELOAD)?;
    let mut path_prefix = vec![shims.clone()];
    if let Some(peers) = peers {
        let uvx = shims.join("uvx");
        let venv = peers.join("venv");
        std::fs::write(&uvx, UVX_SHIM.replace("@VENV@", &venv.to_string_lossy()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&uvx, std::fs::Permissions::from_mode(0o755))?;
        }
        path_prefix.push(peers.join("node_modules").join(".bin"));
        path_prefix.push(venv.join("bin"));
    }
    let mut defaults = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        let npmrc = Path::new(&home).join(".npmrc");
        if npmrc.is_file() && std::env::var_os("NPM_CONFIG_USERCONFIG").is_none() {
            defaults.push((
                "NPM_CONFIG_USERCONFIG".to_owned(),
                npmrc.to_string_lossy().into_owned(),
            ));
        }
    }
    defaults.push(("npm_config_update_notifier".to_owned(), "false".to_owned()));
    Ok(HostEnv {
        path_prefix,
        working_dir: peers.map(Path::to_path_buf),
        extra: vec![(
            "NODE_OPTIONS".to_owned(),
            format!("--require={}", preload.display()),
        )],
        defaults,
    })
}
