//! Retention (`snapshot::prune`): each rule, their combination, groups,
//! lineage and sandbox references, dry runs, bad input, the bytes freed,
//! and a prune SIGKILLed part-way (with the `testing` feature's fault points).
use crate::support::*;
use microsnap::error::ErrorCode;
use microsnap::progress::{CancelToken, Monitor};
use microsnap::sandbox;
use microsnap::snapshot::{self, parse_duration, GroupBy, KeepReason, PruneOptions, PruneReport};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

/// Sandboxes `a` and `b` (1 MiB of data each in a 16 MiB sparse upper) and
/// their snapshots `a1`, `a2`, `a3`, `b1`, `b2`, made in that order.
fn two_sandboxes() -> TestHome {
    let t = TestHome::new();
    for sb in ["a", "b"] {
        t.sandbox_with(sb, 16 * MIB, &[(MIB, &pattern(MIB as usize, 7))]);
    }
    for (sb, name) in [
        ("a", "a1"),
        ("a", "a2"),
        ("a", "a3"),
        ("b", "b1"),
        ("b", "b2"),
    ] {
        t.snapshot(sb, name);
        // created_at has nanoseconds, but make the order unmistakable.
        std::thread::sleep(Duration::from_millis(5));
    }
    t
}

fn labelled(t: &TestHome, sandbox: &str, name: &str, labels: &[(&str, &str)]) {
    let opts = snapshot::CreateOptions {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..named(name)
    };
    snapshot::create(&t.home, sandbox, &opts, &Monitor::none()).unwrap();
    std::thread::sleep(Duration::from_millis(5));
}

fn prune(t: &TestHome, opts: &PruneOptions) -> PruneReport {
    snapshot::prune(&t.home, opts, &Monitor::none()).expect("prune")
}

fn removed(r: &PruneReport) -> Vec<String> {
    r.removed
        .iter()
        .map(|s| {
            s.name
                .clone()
                .unwrap_or_else(|| s.path.display().to_string())
        })
        .collect()
}

/// Kept snapshots and their reasons as text, sorted by name.
fn kept(r: &PruneReport) -> BTreeMap<String, Vec<String>> {
    r.kept
        .iter()
        .map(|s| {
            let name = s
                .name
                .clone()
                .unwrap_or_else(|| s.path.display().to_string());
            (name, s.reasons.iter().map(ToString::to_string).collect())
        })
        .collect()
}

fn reasons(list: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    list.iter()
        .map(|(n, r)| (n.to_string(), r.iter().map(|s| s.to_string()).collect()))
        .collect()
}

/// The names the index lists, sorted.
fn indexed_names(t: &TestHome) -> Vec<String> {
    let mut v: Vec<String> = snapshot::list(&t.home)
        .unwrap()
        .into_iter()
        .map(|h| h.name.unwrap_or_else(|| h.path.display().to_string()))
        .collect();
    v.sort();
    v
}

fn created(t: &TestHome, name: &str) -> i64 {
    snapshot::get(&t.home, name).unwrap().created_at_unix_nanos
}

fn keep_last(n: u32) -> PruneOptions {
    PruneOptions {
        keep_last: Some(n),
        ..PruneOptions::default()
    }
}

#[test]
fn keep_last_keeps_the_newest_of_each_source_sandbox() {
    let t = two_sandboxes();
    let r = prune(&t, &keep_last(1));
    assert!(!r.dry_run);
    // Oldest first among those removed (none is another's parent).
    assert_eq!(removed(&r), ["a1", "a2", "b1"]);
    assert_eq!(
        kept(&r),
        reasons(&[("a3", &["keep_last"]), ("b2", &["keep_last"])])
    );
    assert_eq!(indexed_names(&t), ["a3", "b2"]);
    assert_eq!(names_in(&t.home.snapshots_dir()), ["a3", "b2"]);
    let groups: Vec<Option<&str>> = r.removed.iter().map(|s| s.group.as_deref()).collect();
    assert_eq!(groups, [Some("a"), Some("a"), Some("b")]);

    let r = prune(&t, &keep_last(1));
    assert!(r.removed.is_empty(), "a second run removes nothing: {r:?}");
}

#[test]
fn keep_last_groups_by_a_label_when_asked() {
    let t = TestHome::new();
    t.sandbox("a", MIB);
    labelled(&t, "a", "x1", &[("tier", "x")]);
    labelled(&t, "a", "y1", &[("tier", "y")]);
    labelled(&t, "a", "x2", &[("tier", "x")]);
    labelled(&t, "a", "none1", &[]);
    labelled(&t, "a", "y2", &[("tier", "y")]);
    labelled(&t, "a", "none2", &[]);
    let by_tier = PruneOptions {
        group_by: GroupBy::Label("tier".into()),
        ..keep_last(1)
    };
    let r = prune(
        &t,
        &PruneOptions {
            dry_run: true,
            ..by_tier.clone()
        },
    );
    // Without the label, a snapshot is in the group of those without it.
    assert_eq!(removed(&r), ["x1", "y1", "none1"]);
    let groups: Vec<Option<&str>> = r.removed.iter().map(|s| s.group.as_deref()).collect();
    assert_eq!(groups, [Some("x"), Some("y"), None]);
    // By source sandbox (all of them are of "a"), only the newest stays.
    let r = prune(&t, &keep_last(1));
    assert_eq!(kept(&r), reasons(&[("none2", &["keep_last"])]));
}

#[test]
fn labels_select_and_every_pair_must_match() {
    let t = TestHome::new();
    t.sandbox("a", MIB);
    labelled(&t, "a", "ci-old", &[("ci", "1"), ("branch", "main")]);
    labelled(
        &t,
        "a",
        "ci-other-branch",
        &[("ci", "1"), ("branch", "dev")],
    );
    labelled(&t, "a", "manual", &[]);
    labelled(&t, "a", "ci-new", &[("ci", "1"), ("branch", "main")]);
    let r = prune(
        &t,
        &PruneOptions {
            labels: BTreeMap::from([
                ("ci".to_string(), "1".to_string()),
                ("branch".to_string(), "main".to_string()),
            ]),
            ..keep_last(1)
        },
    );
    assert_eq!(removed(&r), ["ci-old"]);
    assert_eq!(
        kept(&r),
        reasons(&[
            ("ci-new", &["keep_last"]),
            ("ci-other-branch", &["not_selected"]),
            ("manual", &["not_selected"]),
        ])
    );
}

#[test]
fn keep_within_counts_back_from_the_newest_of_the_group() {
    let t = TestHome::new();
    t.sandbox("a", MIB);
    t.snapshot("a", "s1");
    std::thread::sleep(Duration::from_millis(300));
    t.snapshot("a", "s2");
    std::thread::sleep(Duration::from_millis(20));
    t.snapshot("a", "s3");
    let (t1, t2, t3) = (created(&t, "s1"), created(&t, "s2"), created(&t, "s3"));
    // Half-way between s1 and s2, counted from s3 (not from now: a prune
    // run days later keeps the same ones).
    let within = Duration::from_nanos((t3 - t2 + (t2 - t1) / 2) as u64);
    let opts = PruneOptions {
        keep_within: Some(within),
        now_unix_nanos: Some(t3 + 30 * 24 * 3600 * 1_000_000_000),
        ..PruneOptions::default()
    };
    let r = prune(&t, &opts);
    assert_eq!(removed(&r), ["s1"]);
    assert_eq!(
        kept(&r),
        reasons(&[("s2", &["keep_within"]), ("s3", &["keep_within"])])
    );
    // Exactly the distance to s2 still keeps it (the bound is inclusive).
    let r = prune(
        &t,
        &PruneOptions {
            keep_within: Some(Duration::from_nanos((t3 - t2) as u64)),
            dry_run: true,
            ..opts
        },
    );
    assert!(r.removed.is_empty(), "{r:?}");
}

#[test]
fn older_than_removes_only_what_is_older_than_now_minus_the_duration() {
    let t = TestHome::new();
    t.sandbox("a", MIB);
    for n in ["s1", "s2", "s3"] {
        t.snapshot("a", n);
        std::thread::sleep(Duration::from_millis(5));
    }
    let t2 = created(&t, "s2");
    // s2 is exactly an hour old: not *older* than an hour.
    let r = prune(
        &t,
        &PruneOptions {
            older_than: Some(HOUR),
            now_unix_nanos: Some(t2 + HOUR.as_nanos() as i64),
            ..PruneOptions::default()
        },
    );
    assert_eq!(removed(&r), ["s1"]);
    assert_eq!(
        kept(&r),
        reasons(&[("s2", &["not_old_enough"]), ("s3", &["not_old_enough"])])
    );
    // With the clock: nothing here is an hour old.
    let r = prune(
        &t,
        &PruneOptions {
            older_than: Some(HOUR),
            ..PruneOptions::default()
        },
    );
    assert!(r.removed.is_empty());
    assert_eq!(indexed_names(&t), ["s2", "s3"]);
}

#[test]
fn rules_combine_a_snapshot_stays_if_any_rule_keeps_it() {
    let t = TestHome::new();
    t.sandbox("a", MIB);
    for n in ["s1", "s2", "s3", "s4", "s5"] {
        t.snapshot("a", n);
        std::thread::sleep(Duration::from_millis(20));
    }
    let c = |n| created(&t, n);
    // "now" makes s1 and s2 older than an hour, s3..s5 younger; keep_last 1
    // keeps s5; keep_within (from s5) reaches back to s4.
    let opts = PruneOptions {
        keep_last: Some(1),
        keep_within: Some(Duration::from_nanos((c("s5") - c("s4")) as u64)),
        older_than: Some(HOUR),
        now_unix_nanos: Some(c("s2") + HOUR.as_nanos() as i64 + 1),
        ..PruneOptions::default()
    };
    let r = prune(&t, &opts);
    assert_eq!(removed(&r), ["s1", "s2"]);
    assert_eq!(
        kept(&r),
        reasons(&[
            ("s3", &["not_old_enough"]),
            ("s4", &["keep_within", "not_old_enough"]),
            ("s5", &["keep_last", "keep_within", "not_old_enough"]),
        ])
    );
    // keep_last alone would also have taken s3 and s4.
    let r = prune(&t, &keep_last(1));
    assert_eq!(removed(&r), ["s3", "s4"]);
}

/// `base` (of sandbox `a`) and `child` (of sandbox `fork`, made from
/// base), with `fork` removed again so only lineage links them.
fn chain(t: &TestHome) {
    t.sandbox_with("a", 16 * MIB, &[(0, b"base data")]);
    labelled(t, "a", "base", &[("gen", "1")]);
    t.sandbox_from("fork", "base").unwrap();
    write_at(
        &t.home.sandboxes_dir().join("fork/upper.ext4"),
        0,
        b"child data",
    );
    labelled(t, "fork", "child", &[("gen", "2")]);
    sandbox::remove(&t.home, "fork").unwrap();
}

fn everything_older_than_now() -> PruneOptions {
    PruneOptions {
        older_than: Some(Duration::ZERO),
        now_unix_nanos: Some(i64::MAX),
        ..PruneOptions::default()
    }
}

#[test]
fn a_parent_stays_while_its_child_stays_and_goes_with_it() {
    let t = TestHome::new();
    chain(&t);
    let child = snapshot::get(&t.home, "child").unwrap();
    let base = snapshot::get(&t.home, "base").unwrap();
    assert_eq!(child.parent_digest.as_deref(), Some(base.digest.as_str()));
    // Only base is selected: its child keeps it.
    let only_base = PruneOptions {
        labels: BTreeMap::from([("gen".to_string(), "1".to_string())]),
        ..everything_older_than_now()
    };
    let r = prune(&t, &only_base);
    assert!(r.removed.is_empty());
    assert_eq!(
        kept(&r),
        reasons(&[
            ("base", &["has_children:child"]),
            ("child", &["not_selected"])
        ])
    );
    assert_eq!(indexed_names(&t), ["base", "child"]);
    // Both selected: the chain goes together, child first.
    let r = prune(&t, &everything_older_than_now());
    assert_eq!(removed(&r), ["child", "base"]);
    assert!(r.kept.is_empty());
    assert!(indexed_names(&t).is_empty());
}

#[test]
fn keeping_a_child_keeps_its_whole_line_of_parents() {
    let t = TestHome::new();
    chain(&t);
    t.sandbox_from("fork2", "child").unwrap();
    labelled(&t, "fork2", "grandchild", &[("gen", "3")]);
    sandbox::remove(&t.home, "fork2").unwrap();
    // keep_last 1 per source sandbox keeps every one (each is alone in its
    // group); by label gen... group all in one group instead.
    let opts = PruneOptions {
        group_by: GroupBy::Label("none".into()),
        keep_last: Some(1),
        ..PruneOptions::default()
    };
    let r = prune(&t, &opts);
    // grandchild is the newest: kept, and through it child, then base.
    assert!(r.removed.is_empty(), "{r:?}");
    assert_eq!(
        kept(&r),
        reasons(&[
            ("base", &["has_children:child"]),
            ("child", &["has_children:grandchild"]),
            ("grandchild", &["keep_last"]),
        ])
    );
}

#[test]
fn force_removes_a_parent_and_leaves_its_child() {
    let t = TestHome::new();
    chain(&t);
    let r = prune(
        &t,
        &PruneOptions {
            labels: BTreeMap::from([("gen".to_string(), "1".to_string())]),
            force: true,
            ..everything_older_than_now()
        },
    );
    assert_eq!(removed(&r), ["base"]);
    assert_eq!(indexed_names(&t), ["child"]);
    snapshot::open(&t.home, "child").expect("the orphaned child is intact");
}

#[test]
fn a_snapshot_a_sandbox_was_made_from_stays_unless_forced() {
    let t = TestHome::new();
    t.sandbox_with("a", 16 * MIB, &[(0, b"data")]);
    t.snapshot("a", "base");
    t.sandbox_from("fork", "base").unwrap();
    t.sandbox_from("fork2", "base").unwrap();
    let r = prune(&t, &everything_older_than_now());
    assert!(r.removed.is_empty());
    assert_eq!(
        kept(&r),
        reasons(&[("base", &["used_by_sandbox:fork", "used_by_sandbox:fork2"])])
    );
    // Once the sandboxes are gone, nothing references it.
    sandbox::remove(&t.home, "fork2").unwrap();
    let r = prune(
        &t,
        &PruneOptions {
            force: true,
            ..everything_older_than_now()
        },
    );
    assert_eq!(removed(&r), ["base"]);
    // The sandbox has its own copy of the disk: it stays usable.
    let fork = sandbox::get(&t.home, "fork").unwrap();
    assert_eq!(read_at(&fork.upper_path, 0, 4), b"data");
    sandbox::start(&t.home, "fork").unwrap().stop().unwrap();
}

#[test]
fn a_sandbox_made_from_a_snapshot_after_the_plan_keeps_it() {
    let t = TestHome::new();
    t.sandbox_with("a", 16 * MIB, &[(0, b"data")]);
    t.snapshot("a", "base");
    let made = std::sync::atomic::AtomicBool::new(false);
    // The plan removes base (no sandbox uses it yet); the sandbox is made
    // from it after the plan, before the removal.
    let monitor = Monitor::new(
        None,
        Some(Box::new(|phase: &str, _, _| {
            if phase == "prune" && !made.swap(true, std::sync::atomic::Ordering::SeqCst) {
                t.sandbox_from("fork", "base").unwrap();
            }
            true
        })),
    );
    let r = snapshot::prune(&t.home, &everything_older_than_now(), &monitor).unwrap();
    assert!(made.load(std::sync::atomic::Ordering::SeqCst));
    assert!(r.removed.is_empty(), "{r:?}");
    assert_eq!(kept(&r), reasons(&[("base", &["used_by_sandbox:fork"])]));
    assert_eq!(r.bytes_freed, 0);
    let fork = sandbox::get(&t.home, "fork").unwrap();
    let base = snapshot::open(&t.home, "base").unwrap();
    assert_eq!(fork.from_snapshot.as_deref(), Some(base.digest.as_str()));
}

#[test]
fn another_copy_of_the_parent_is_enough_for_its_child() {
    let t = TestHome::new();
    chain(&t);
    // A second copy of base, outside the snapshots directory.
    let copy = t.outside("copy-of-base");
    std::fs::create_dir(&copy).unwrap();
    for f in ["manifest.json", "upper.ext4"] {
        std::fs::copy(t.home.snapshots_dir().join("base").join(f), copy.join(f)).unwrap();
    }
    let copy_handle = snapshot::get(&t.home, &copy.to_string_lossy()).unwrap();
    assert_eq!(
        copy_handle.digest,
        snapshot::get(&t.home, "base").unwrap().digest
    );
    let r = prune(
        &t,
        &PruneOptions {
            labels: BTreeMap::from([("gen".to_string(), "1".to_string())]),
            ..everything_older_than_now()
        },
    );
    // One copy goes; the child keeps the other.
    assert_eq!(r.removed.len(), 1, "{r:?}");
    assert_eq!(
        r.kept
            .iter()
            .filter(|k| k.digest == copy_handle.digest)
            .count(),
        1
    );
    let has_children: Vec<&KeepReason> = r.kept.iter().flat_map(|k| &k.reasons).collect();
    assert!(
        has_children.contains(&&KeepReason::HasChildren("child".into())),
        "{r:?}"
    );
    assert_eq!(
        snapshot::list(&t.home)
            .unwrap()
            .iter()
            .filter(|h| h.digest == copy_handle.digest)
            .count(),
        1
    );
}

#[test]
fn an_unreadable_copy_of_the_parent_is_not_enough_for_its_child() {
    let t = TestHome::new();
    chain(&t);
    let copy = t.outside("copy-of-base");
    std::fs::create_dir(&copy).unwrap();
    for f in ["manifest.json", "upper.ext4"] {
        std::fs::copy(t.home.snapshots_dir().join("base").join(f), copy.join(f)).unwrap();
    }
    snapshot::get(&t.home, &copy.to_string_lossy()).unwrap();
    // Still indexed, but the copy no longer opens.
    std::fs::remove_file(copy.join("manifest.json")).unwrap();
    let r = prune(
        &t,
        &PruneOptions {
            labels: BTreeMap::from([("gen".to_string(), "1".to_string())]),
            ..everything_older_than_now()
        },
    );
    assert!(r.removed.is_empty(), "{r:?}");
    let base = r.kept.iter().find(|k| k.name.as_deref() == Some("base"));
    assert_eq!(
        base.map(|k| k.reasons.clone()),
        Some(vec![KeepReason::HasChildren("child".into())]),
        "{r:?}"
    );
    snapshot::open(&t.home, "base").unwrap();
}

#[test]
fn a_dry_run_reports_what_a_run_removes_and_changes_nothing() {
    let t = two_sandboxes();
    t.sandbox_from("fork", "a2").unwrap();
    let c = created(&t, "b1");
    let opts = PruneOptions {
        keep_last: Some(1),
        older_than: Some(Duration::from_secs(60)),
        now_unix_nanos: Some(c + 61_000_000_000),
        ..PruneOptions::default()
    };
    let before = t.state(&[]);
    let seen = Mutex::new(Vec::new());
    let monitor = Monitor::new(
        None,
        Some(Box::new(|phase: &str, done: u64, total: u64| {
            seen.lock().unwrap().push((phase.to_string(), done, total));
            true
        })),
    );
    let dry = snapshot::prune(
        &t.home,
        &PruneOptions {
            dry_run: true,
            ..opts.clone()
        },
        &monitor,
    )
    .unwrap();
    assert!(dry.dry_run);
    assert_eq!(t.state(&[]), before, "a dry run changed the home");
    assert!(
        seen.lock().unwrap().is_empty(),
        "a dry run reports progress"
    );
    assert_eq!(removed(&dry), ["a1", "b1"]);
    assert_eq!(
        kept(&dry),
        reasons(&[
            ("a2", &["used_by_sandbox:fork"]),
            ("a3", &["keep_last"]),
            ("b2", &["keep_last"]),
        ])
    );
    let real = snapshot::prune(&t.home, &opts, &monitor).unwrap();
    assert_eq!(
        PruneReport {
            dry_run: true,
            ..real.clone()
        },
        dry
    );
    assert_eq!(indexed_names(&t), ["a2", "a3", "b2"]);
    // Progress: one phase whose total is the bytes freed, reached at the end.
    drop(monitor);
    let seen = seen.into_inner().unwrap();
    assert_eq!(
        seen.first(),
        Some(&("prune".to_string(), 0, real.bytes_freed))
    );
    assert_eq!(
        seen.last(),
        Some(&("prune".to_string(), real.bytes_freed, real.bytes_freed))
    );
}

/// What the files of `dir` take on disk, measured here independently.
fn blocks_under(dir: &Path) -> u64 {
    let meta = std::fs::symlink_metadata(dir).unwrap();
    let mut n = meta.blocks() * 512;
    if meta.is_dir() {
        for e in std::fs::read_dir(dir).unwrap() {
            n += blocks_under(&e.unwrap().path());
        }
    }
    n
}

#[test]
fn bytes_freed_are_allocated_bytes_not_the_logical_size() {
    let t = TestHome::new();
    // 64 MiB upper with 2 MiB of data in it.
    t.sandbox_with(
        "a",
        64 * MIB,
        &[
            (0, &pattern(MIB as usize, 1)),
            (32 * MIB, &pattern(MIB as usize, 2)),
        ],
    );
    t.snapshot("a", "s1");
    t.snapshot("a", "s2");
    let expected = blocks_under(&t.home.snapshots_dir().join("s1"));
    let r = prune(&t, &keep_last(1));
    assert_eq!(removed(&r), ["s1"]);
    assert_eq!(r.removed[0].allocated_bytes, expected);
    assert_eq!(r.bytes_freed, expected);
    assert!(
        (2 * MIB..8 * MIB).contains(&expected),
        "allocated {expected} for 2 MiB of data in a 64 MiB upper"
    );
}

#[test]
fn a_hard_linked_upper_frees_nothing() {
    let t = TestHome::new();
    t.sandbox_with("a", 16 * MIB, &[(0, &pattern(MIB as usize, 3))]);
    t.snapshot("a", "s1");
    t.snapshot("a", "s2");
    let upper = t.home.snapshots_dir().join("s1/upper.ext4");
    let link = t.outside("upper-link");
    std::fs::hard_link(&upper, &link).unwrap();
    let r = prune(&t, &keep_last(1));
    assert_eq!(removed(&r), ["s1"]);
    let upper_blocks = std::fs::metadata(&link).unwrap().blocks() * 512;
    assert!(upper_blocks >= MIB);
    assert!(
        r.bytes_freed < upper_blocks,
        "{} counted the linked upper",
        r.bytes_freed
    );
    assert_eq!(read_at(&link, 0, 16), pattern(MIB as usize, 3)[..16]);
}

#[test]
fn an_unreadable_artifact_is_kept() {
    let t = two_sandboxes();
    std::fs::write(t.home.snapshots_dir().join("a1/manifest.json"), b"{broken").unwrap();
    let r = prune(&t, &keep_last(1));
    assert_eq!(removed(&r), ["a2", "b1"]);
    assert_eq!(kept(&r)["a1"], ["unreadable"]);
    assert!(t.home.snapshots_dir().join("a1").exists());
}

#[test]
fn bad_options_are_refused_and_change_nothing() {
    let t = two_sandboxes();
    let before = t.state(&[]);
    let cases = [
        (PruneOptions::default(), "give a retention rule"),
        (
            PruneOptions {
                labels: BTreeMap::from([("ci".to_string(), "1".to_string())]),
                ..PruneOptions::default()
            },
            "labels only choose",
        ),
        (keep_last(0), "keep_last must be at least 1"),
        (
            PruneOptions {
                labels: BTreeMap::from([(String::new(), "x".to_string())]),
                ..keep_last(1)
            },
            "empty label key",
        ),
        (
            PruneOptions {
                group_by: GroupBy::Label(String::new()),
                ..keep_last(1)
            },
            "group_by label key is empty",
        ),
    ];
    for (opts, want) in cases {
        let message = expect_code(
            snapshot::prune(&t.home, &opts, &Monitor::none()),
            ErrorCode::InvalidArgument,
        );
        assert!(message.contains(want), "{opts:?}: {message}");
    }
    assert_eq!(t.state(&[]), before);
}

#[test]
fn bad_durations_are_refused_with_the_syntax() {
    for bad in ["", "7", "7x", "1.5d", "-3h", "1y", "3 days"] {
        let message = expect_code(parse_duration(bad), ErrorCode::InvalidArgument);
        assert!(message.contains("90m, 36h, 7d"), "{bad:?}: {message}");
    }
    assert_eq!(parse_duration("90m").unwrap(), Duration::from_secs(5400));
    assert_eq!(
        parse_duration("2w").unwrap(),
        Duration::from_secs(14 * 86400)
    );
}

#[test]
fn a_cancelled_prune_removes_nothing() {
    let t = two_sandboxes();
    let before = t.state(&[]);
    let token = CancelToken::new();
    token.cancel();
    let result = snapshot::prune(&t.home, &keep_last(1), &Monitor::with_cancel(token));
    assert_eq!(code_of(result), ErrorCode::Cancelled);
    assert_eq!(t.state(&[]), before);
}

// ---------------------------------------------------------------------------
// A prune killed part-way.

#[cfg(feature = "testing")]
const ENV_PRUNE_HOME: &str = "MICROSNAP_TEST_PRUNE_HOME";

/// The policy both the helper and the parent apply: everything goes but
/// the newest of each sandbox, and the chain's root is kept by its child
/// until the child goes too.
#[cfg(feature = "testing")]
fn crash_policy() -> PruneOptions {
    PruneOptions {
        keep_last: Some(1),
        group_by: GroupBy::Label("none".into()),
        ..PruneOptions::default()
    }
}

/// A home with a chain (base -> child) and five more snapshots, all of them
/// but the newest removed by [`crash_policy`].
#[cfg(feature = "testing")]
fn crash_home() -> TestHome {
    let t = TestHome::new();
    chain(&t);
    t.sandbox_with("b", 16 * MIB, &[(0, &pattern(MIB as usize, 9))]);
    for n in ["b1", "b2", "b3", "b4", "newest"] {
        t.snapshot("b", n);
        std::thread::sleep(Duration::from_millis(2));
    }
    t
}

#[cfg(feature = "testing")]
#[test]
#[ignore = "helper process, run by a_prune_killed_at_any_point_leaves_the_rest_intact"]
fn helper_prune() {
    let Some(root) = std::env::var_os(ENV_PRUNE_HOME) else {
        return;
    };
    let home = microsnap::open_home(Path::new(&root)).unwrap();
    snapshot::prune(&home, &crash_policy(), &Monitor::none()).unwrap();
}

#[cfg(feature = "testing")]
#[test]
fn a_prune_killed_at_any_point_leaves_the_rest_intact() {
    use std::os::unix::process::ExitStatusExt;
    let plan = {
        let t = crash_home();
        let r = prune(
            &t,
            &PruneOptions {
                dry_run: true,
                ..crash_policy()
            },
        );
        removed(&r)
    };
    // Children first (base waits for child), else oldest first.
    assert_eq!(plan, ["child", "b1", "b2", "b3", "b4", "base"]);
    let mut kills = 0;
    for point in [
        "publish.take.after_move",
        "snapshot.remove.before_index",
        "snapshot.remove.before_cleanup",
        "snapshot.prune.after_remove",
    ] {
        for n in 1..=plan.len() {
            let t = crash_home();
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--ignored",
                    "--exact",
                    "snapshot_prune::helper_prune",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(ENV_PRUNE_HOME, t.home.root())
                .env("MICROSNAP_FAULT", format!("{point}:{n}"))
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert_eq!(
                status.signal(),
                Some(libc::SIGKILL),
                "{point}:{n}: {status}"
            );
            kills += 1;
            let home = microsnap::open_home(t.home.root()).unwrap();
            let left = check_after_kill(&home, &format!("{point}:{n}"));
            // What went is the plan's first n: the removals before the
            // kill, and the n-th, whose artifact was already moved into
            // staging (before its row was dropped, recovery finishes it as
            // Remove promises: gone everywhere, or intact and indexed).
            let gone: Vec<&String> = plan.iter().filter(|p| !left.contains(p)).collect();
            assert_eq!(gone, plan.iter().take(n).collect::<Vec<_>>(), "{point}:{n}");
            // Running it again finishes the job.
            let r = snapshot::prune(&home, &crash_policy(), &Monitor::none()).unwrap();
            assert_eq!(r.removed.len(), plan.len() - n, "{point}:{n}");
            assert_eq!(check_after_kill(&home, "rerun"), ["newest"]);
        }
    }
    assert_eq!(kills, 4 * plan.len());
}

/// After a kill and `open_home`: every artifact in snapshots/ opens and is
/// indexed, every indexed one opens with its digest, no indexed snapshot
/// lost its parent, and a reindex changes nothing. Returns the names left.
#[cfg(feature = "testing")]
fn check_after_kill(home: &microsnap::home::Home, at: &str) -> Vec<String> {
    let on_disk: Vec<String> = names_in(&home.snapshots_dir());
    assert!(
        on_disk.iter().all(|n| !n.starts_with('.')),
        "{at}: staging left in snapshots/: {on_disk:?}"
    );
    let listed = snapshot::list(home).unwrap();
    let mut names: Vec<String> = listed.iter().filter_map(|h| h.name.clone()).collect();
    names.sort();
    assert_eq!(names, on_disk, "{at}: index and snapshots/ differ");
    let digests: Vec<&str> = listed.iter().map(|h| h.digest.as_str()).collect();
    for h in &listed {
        let art = snapshot::open_dir(&h.path).unwrap_or_else(|e| panic!("{at}: {e}"));
        assert_eq!(art.digest, h.digest, "{at}");
        snapshot::verify_artifact(&art, &Monitor::none()).unwrap();
        if let Some(p) = &h.parent_digest {
            assert!(
                digests.contains(&p.as_str()),
                "{at}: {:?} lost its parent",
                h.name
            );
        }
    }
    assert_eq!(
        snapshot::reindex(home, None).unwrap() as usize,
        listed.len(),
        "{at}"
    );
    assert_eq!(
        snapshot::list(home).unwrap(),
        listed,
        "{at}: reindex fixed something"
    );
    names
}

#[test]
fn both_descriptor_formats_are_read_alike() {
    use microsnap::artifact::ArtifactFormat;
    let t = TestHome::new();
    t.sandbox("a", MIB);
    for (name, format) in [
        ("v14-old", ArtifactFormat::MsbV0614),
        ("v3-mid", ArtifactFormat::MsbV063),
        ("v14-new", ArtifactFormat::MsbV0614),
    ] {
        let opts = snapshot::CreateOptions {
            labels: BTreeMap::from([("keep".to_string(), "weekly".to_string())]),
            format,
            ..named(name)
        };
        snapshot::create(&t.home, "a", &opts, &Monitor::none()).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(t
        .home
        .snapshots_dir()
        .join("v14-old/snapshot.json")
        .is_file());
    // Labels and source sandbox come from snapshot.json as from manifest.json.
    let r = prune(
        &t,
        &PruneOptions {
            labels: BTreeMap::from([("keep".to_string(), "weekly".to_string())]),
            ..keep_last(1)
        },
    );
    assert_eq!(removed(&r), ["v14-old", "v3-mid"]);
    assert!(
        r.removed.iter().all(|s| s.group.as_deref() == Some("a")),
        "{r:?}"
    );
    assert_eq!(kept(&r), reasons(&[("v14-new", &["keep_last"])]));
}
