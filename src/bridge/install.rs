//! `mcp-operator install-bridge DIR`: the init container of Stdio server pods copies the
//! running (static) binary into DIR, an emptyDir shared with the server container, which
//! then runs `DIR/mcp-operator bridge -- <command>`. The copy is written to a temporary
//! name and renamed, so a restarted init container never leaves a half-written binary.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// File name of the installed binary.
pub const BINARY_NAME: &str = "mcp-operator";

/// Copies the running executable into `dir`.
pub fn run(dir: &Path) -> anyhow::Result<()> {
    let source = std::env::current_exe().context("locating the running executable")?;
    let target = install(&source, dir)
        .with_context(|| format!("installing {} into {}", source.display(), dir.display()))?;
    println!("installed {}", target.display());
    Ok(())
}

/// Copies `source` to `dir/mcp-operator` with mode 0755 (atomic rename); returns the path.
pub fn install(source: &Path, dir: &Path) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let target = dir.join(BINARY_NAME);
    let temp = dir.join(format!(".{BINARY_NAME}.{}.tmp", std::process::id()));
    let result = (|| {
        fs::copy(source, &temp)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(&temp, fs::Permissions::from_mode(0o755))?;
        }
        fs::File::open(&temp)?.sync_all()?;
        fs::rename(&temp, &target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map(|()| target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_executable_and_replaces_an_old_copy() {
        let src_dir = tempfile::tempdir().unwrap();
        let source = src_dir.path().join("bin");
        fs::write(&source, b"new binary").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("nested");
        fs::create_dir_all(&bin).unwrap();
        fs::write(bin.join(BINARY_NAME), b"old").unwrap();
        let target = install(&source, &bin).unwrap();
        assert_eq!(target, bin.join(BINARY_NAME));
        assert_eq!(fs::read(&target).unwrap(), b"new binary");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&target).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o755);
        }
        let leftovers: Vec<_> = fs::read_dir(&bin).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn missing_source_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(install(&dir.path().join("absent"), dir.path()).is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
