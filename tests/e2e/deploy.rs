//! The files in `deploy/` as an operator's own tools read them: `promtool check config`,
//! `promtool check rules` and `promtool test rules` (Debian's `prometheus` package), and
//! `systemd-analyze verify` on the unit (`systemd`). A missing tool fails the test and names
//! the package to install (`.ci/run` installs both); nothing is skipped. Plus what no tool
//! checks: every alert has a firing and a quiet unit test, the image's bases are pinned, and
//! the build context lets in what the Containerfile copies.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (this test target belongs to crates/runner).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `tool ARGS` in the repository root. A tool that is not installed fails the test, naming the
/// Debian package that has it.
fn run(tool: &str, package: &str, args: &[&str]) -> (Output, String) {
    let out = match Command::new(tool).args(args).current_dir(repo()).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!(
                "{tool} is not installed: apt-get install {package} (Debian's `{package}` package; .ci/run installs it)"
            )
        }
        Err(e) => panic!("cannot run {tool}: {e}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

fn promtool(args: &[&str]) -> String {
    let (out, text) = run("promtool", "prometheus", args);
    assert!(out.status.success(), "promtool {} failed:\n{text}", args.join(" "));
    text
}

/// The alert names of deploy/kri-alerts.yml, in order.
fn alerts() -> Vec<String> {
    read("deploy/kri-alerts.yml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|name| name.trim().to_owned())
        .collect()
}

#[test]
fn prometheus_config_passes_promtool() {
    // Also checks the rule files it loads (kri-alerts.yml).
    let out = promtool(&["check", "config", "deploy/prometheus.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn alert_rules_pass_promtool() {
    let out = promtool(&["check", "rules", "deploy/kri-alerts.yml"]);
    let want = format!("SUCCESS: {} rules found", alerts().len());
    assert!(out.contains(&want), "expected `{want}`:\n{out}");
    assert!(!out.to_lowercase().contains("duplicate"), "{out}");
}

#[test]
fn alert_rules_pass_their_unit_tests() {
    let out = promtool(&["test", "rules", "deploy/kri-alerts.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// Each `alertname: X` in the test file is followed by its `exp_alerts`: `[]` is a case where X
/// must not fire, anything else one where it fires.
#[test]
fn every_alert_has_a_firing_and_a_quiet_unit_test() {
    let tests = read("deploy/kri-alerts.test.yml");
    let mut lines = tests.lines().map(str::trim);
    let (mut firing, mut quiet) = (Vec::new(), Vec::new());
    while let Some(line) = lines.next() {
        if let Some(name) = line.strip_prefix("alertname:").map(str::trim) {
            let exp = lines
                .find(|l| l.starts_with("exp_alerts:"))
                .unwrap_or_else(|| panic!("alertname {name} without exp_alerts"));
            let cases = if exp == "exp_alerts: []" {
                &mut quiet
            } else {
                &mut firing
            };
            cases.push(name.to_owned());
        }
    }
    let alerts = alerts();
    assert!(!alerts.is_empty(), "no `- alert:` in deploy/kri-alerts.yml");
    for alert in &alerts {
        assert!(firing.contains(alert), "no unit test where {alert} fires");
        assert!(quiet.contains(alert), "no unit test where {alert} stays quiet");
    }
    for name in firing.iter().chain(&quiet) {
        assert!(alerts.contains(name), "unit test of an unknown alert {name}");
    }
}

/// `systemd-analyze verify` checks that ExecStart's binary exists, so the unit is verified as
/// installed: unchanged at /etc/systemd/system/kri.service in a scratch root, with the binary
/// just built at /usr/local/bin/kri and a copy of this host's own units (sysinit.target,
/// network-online.target, ...) that it depends on.
#[test]
fn systemd_unit_passes_verify() {
    run("systemd-analyze", "systemd", &["--version"]);
    let unit = read("deploy/kri.service");
    for kept in [
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "ProtectSystem=strict",
        "PrivateDevices=yes",
        "MemoryDenyWriteExecute=yes",
        "SystemCallFilter=@system-service",
        "LimitCORE=0",
        "LimitNOFILE=16384",
        "RestartPreventExitStatus=2",
    ] {
        assert!(unit.lines().any(|l| l == kept), "deploy/kri.service lost `{kept}`");
    }

    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("scratch dir");
    let root = scratch.path();
    let place = |path: &str| {
        let to = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
        to
    };
    std::fs::write(place("/etc/systemd/system/kri.service"), &unit).expect("unit");
    let kri = place("/usr/local/bin/kri");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_kri"), &kri).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_kri"), &kri).expect("copy kri");
    }
    let units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .find(|d| Path::new(d).is_dir())
        .expect("systemd's units (/usr/lib/systemd/system): apt-get install systemd");
    copy_tree(Path::new(units), &place(units));

    let root_arg = format!("--root={}", root.display());
    let (out, text) = run("systemd-analyze", "systemd", &["verify", &root_arg, "kri.service"]);
    // Unknown keys and bad values are warnings: verify still exits 0, so read what it says.
    let about_kri: Vec<&str> = text.lines().filter(|l| l.contains("kri.service")).collect();
    assert!(
        out.status.success() && about_kri.is_empty(),
        "systemd-analyze verify deploy/kri.service ({}):\n{text}",
        out.status
    );
}

/// `from` copied to `to`: folders, files, and symbolic links as links.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().expect("file type");
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).expect("link"), &dst).expect("symlink");
        } else if kind.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        }
    }
}

#[test]
fn container_image_is_pinned_labelled_and_health_checked() {
    let file = read("deploy/Containerfile");
    let froms: Vec<&str> = file.lines().filter_map(|l| l.strip_prefix("FROM ")).collect();
    let [build, runtime] = froms[..] else {
        panic!("two stages expected: {froms:?}")
    };
    // rust:X.Y.Z-CODENAME AS build, then debian:CODENAME-YYYYMMDD-slim
    let (rust, release) = build
        .strip_prefix("rust:")
        .and_then(|b| b.strip_suffix(" AS build"))
        .and_then(|t| t.split_once('-'))
        .unwrap_or_else(|| panic!("builder: {build}"));
    let parts: Vec<&str> = rust.split('.').collect();
    assert!(
        parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
        "the Rust image is pinned to an exact version: {build}"
    );
    let date = runtime
        .strip_prefix(&format!("debian:{release}-"))
        .and_then(|r| r.strip_suffix("-slim"))
        .unwrap_or_else(|| panic!("runtime on the builder's Debian release ({release}), dated: {runtime}"));
    assert!(
        date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()),
        "the Debian image is pinned to a dated snapshot: {runtime}"
    );
    assert!(
        !file.lines().any(|l| l.starts_with("# syntax=")),
        "no unpinned frontend image"
    );

    let version = read("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("the workspace version");
    for line in [
        format!("ARG VERSION={version}"),
        "LABEL org.opencontainers.image.title=\"kri\" \\".to_owned(),
        "org.opencontainers.image.licenses=\"Apache-2.0\" \\".to_owned(),
        "org.opencontainers.image.version=\"${VERSION}\" \\".to_owned(),
        "CMD [\"kri\", \"healthcheck\"]".to_owned(),
    ] {
        assert!(
            file.lines().any(|l| l.trim() == line),
            "deploy/Containerfile lacks `{line}`"
        );
    }
    for label in ["description", "source"] {
        assert!(
            file.contains(&format!("org.opencontainers.image.{label}=")),
            "no {label} label"
        );
    }
}

/// The build context is the repository root: .dockerignore keeps everything out (`*`) but the
/// sources the build stage copies.
#[test]
fn build_context_lets_in_only_what_the_containerfile_copies() {
    let ignore = read(".dockerignore");
    let rules: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(rules.first(), Some(&"*"), "everything is out unless let in");
    let allowed: Vec<&str> = rules
        .iter()
        .filter_map(|r| r.strip_prefix('!'))
        .map(|r| r.trim_end_matches('/'))
        .collect();
    let containerfile = read("deploy/Containerfile");
    let copied: Vec<&str> = containerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .flat_map(|l| {
            let mut words: Vec<&str> = l.split_whitespace().collect();
            words.pop(); // the destination
            words
        })
        .collect();
    for source in &copied {
        assert!(
            allowed.contains(source),
            ".dockerignore keeps out `{source}`, which the Containerfile copies"
        );
    }
    for source in &allowed {
        assert!(
            copied.contains(source),
            ".dockerignore lets in `{source}`, which no COPY needs"
        );
    }
    for out in ["target", ".git"] {
        assert!(!allowed.contains(&out), "{out} is in the build context");
    }
    assert!(rules.contains(&"**/target/"), "no target/ from inside crates/ either");
}
