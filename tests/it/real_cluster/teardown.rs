//! The control plane's teardown: when the test binary is gone — here killed with SIGKILL,
//! so no destructor, atexit hook or signal handler of ours runs — the keeper stops every
//! process of the group (one that ignores SIGTERM too) and removes the directory.
//!
//! The test runs this binary again as a child, with only `keeper_child` selected: the
//! child starts a `ProcessGroup` (as the control plane does) with two processes, prints
//! their pids, and waits to be killed.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::ProcessGroup;

const CHILD_ENV: &str = "MCP_TEARDOWN_CHILD";

/// Not a test on its own (ignored, and a no-op without `MCP_TEARDOWN_CHILD`): the child
/// half of `killed_test_binary_leaves_no_process_and_no_directory`.
#[test]
#[ignore = "run by killed_test_binary_leaves_no_process_and_no_directory"]
fn keeper_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("mcp-teardown-")
        .tempdir()
        .expect("temp dir")
        .keep();
    let mut group = ProcessGroup::start(&dir, &dir).expect("keeper");
    let mut plain = Command::new("sleep");
    plain.arg("600");
    let mut stubborn = Command::new("sh");
    stubborn.args(["-c", "trap '' TERM; sleep 600 & wait; sleep 600"]);
    let a = group.spawn("plain", plain).expect("spawn");
    let b = group.spawn("stubborn", stubborn).expect("spawn");
    println!("teardown-child: {a} {b} {}", dir.display());
    std::thread::sleep(Duration::from_secs(600));
}

/// Whether `pid` is a live process (a zombie waiting for its reaper is not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// The processes in process group `pgid`, by scanning /proc.
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                let fields: Vec<&str> = stat
                    .rsplit_once(") ")
                    .map(|(_, rest)| rest.split(' ').collect())
                    .unwrap_or_default();
                // state ppid pgrp: the group is field 3 after the command.
                fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid)
                    && fields.first() != Some(&"Z")
            })
        })
        .collect()
}

fn pgid_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split(' ').nth(2)?.parse().ok()
}

#[test]
fn killed_test_binary_leaves_no_process_and_no_directory() {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "real_cluster::teardown::keeper_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("test binary runs");
    let stdout = child.stdout.take().expect("stdout");
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("teardown-child: "))
        .expect("the child prints its pids");
    let fields: Vec<&str> = line["teardown-child: ".len()..].split(' ').collect();
    let pids: Vec<u32> = fields[..2]
        .iter()
        .map(|p| p.parse().expect("pid"))
        .collect();
    let dir = PathBuf::from(fields[2]);
    let pgid = pgid_of(pids[0]).expect("the process runs");
    assert!(pids.iter().all(|p| alive(*p)), "both processes run");
    assert!(dir.is_dir());

    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    // Polled until all is gone; what is left is named by the assertions below.
    let _ = crate::support::eventually::poll_blocking(Duration::from_secs(20), || {
        !(pids.iter().any(|p| alive(*p)) || !group_members(pgid).is_empty() || dir.exists())
    });
    let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "still running after 20 s: {left:?}");
    assert_eq!(
        group_members(pgid),
        Vec::<u32>::new(),
        "group {pgid} not empty"
    );
    assert!(!Path::new(&dir).exists(), "{} not removed", dir.display());
}
