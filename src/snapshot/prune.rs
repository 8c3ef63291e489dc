//! Retention: remove the snapshots a policy no longer keeps, the way
//! restic's `forget` decides, through the crash-safe [`super::remove`].
//!
//! # What goes and what stays
//!
//! Every indexed snapshot ends up in exactly one of the report's two lists,
//! removed or kept, and a kept one says why ([`KeepReason`]):
//!
//! 1. **Selection.** Only snapshots whose labels include every
//!    `labels` pair are candidates; the others are kept as `not_selected`.
//!    An indexed artifact that cannot be opened (malformed, moved away) is
//!    never a candidate: it is kept as `unreadable`.
//! 2. **Groups.** Candidates are grouped by their descriptor's source
//!    sandbox (default) or by the value of one label
//!    ([`GroupBy::Label`]); snapshots without one form one group of their
//!    own. Within a group, "newest" is by `created_at`, ties by path.
//! 3. **Keep rules**, as restic combines them: a candidate is kept if *any*
//!    rule keeps it.
//!    - `keep_last = N`: the N newest of its group (`keep_last`).
//!    - `keep_within = D`: created at most D before the *newest snapshot of
//!      its group*, not before now (as restic's `--keep-within`, which also
//!      counts back from the latest snapshot): a group whose sandbox stopped
//!      making snapshots keeps its last stretch (`keep_within`).
//!    - `older_than = D`: only snapshots created *more* than D before now
//!      may go; a younger one is kept (`not_old_enough`). This is a limit
//!      on removal, not a keep rule of restic's: with it alone, every
//!      selected snapshot older than D goes.
//!
//!    At least one of the three must be given; labels alone never remove
//!    anything (they only choose what the rules apply to).
//! 4. **Lineage**, unless `force`. A snapshot that would go is kept while
//!    a child of it (an indexed snapshot naming its digest as parent) stays
//!    (`has_children:<child>`), or while a sandbox created from it still
//!    exists (`used_by_sandbox:<name>`), unless another indexed copy of the
//!    same digest that opens stays (an unreadable copy holds no snapshot):
//!    the children and the sandbox still have their snapshot then. A chain
//!    whose members all go is removed together, children first. Keeping
//!    one snapshot can keep its parent in turn; the rules are applied until
//!    nothing changes. Each removal checks both again under the index's
//!    write lock (`super::remove_at`): a child indexed or a sandbox
//!    recorded from it after the plan keeps it too (`sandbox::create`
//!    records a sandbox only if the snapshot it copied is still there).
//!    Plain [`super::remove`] checks children only: a sandbox has its own
//!    copy of the disk, and keeping what sandboxes came from is this
//!    policy's rule.
//!
//! `dry_run` makes the same decisions and removes nothing: its report is
//! what a real run at the same moment would do.
//!
//! # Crash safety and cancellation
//!
//! Each removal is one [`super::remove`] (moved into staging and its index
//! row dropped in one transaction, the bytes deleted after), children
//! before parents. A prune killed at any point leaves every artifact it
//! has not removed intact and indexed, and never a child whose parent it
//! removed without `force`. Cancelling stops between two removals; what was
//! removed stays removed.
//!
//! # Bytes freed
//!
//! An artifact's `allocated_bytes` is what its files take on disk
//! (`st_blocks * 512`, the directory included), not their logical size: a
//! sparse 4 GiB upper holding 1 MiB of data frees about 1 MiB. A file with
//! other hard links frees nothing and counts 0. Measured before removal,
//! so a dry run reports the same numbers.
//!
//! On a filesystem with reflinks (XFS, btrfs), sandbox uppers and snapshot
//! copies share extents (FICLONE); an extent another file still shares is
//! not freed, yet counts here. There `allocated_bytes` and `bytes_freed`
//! are an upper bound; `usage` reports the shared bytes. On ext4 nothing is
//! shared and they are exact.
use super::{list, remove_at, Removal, RemoveChecks, SnapshotHandle};
use crate::artifact::open_dir;
use crate::error::{Error, IoContext, Result};
use crate::home::Home;
use crate::progress::{Monitor, Phase};
use crate::sandbox;
use crate::timefmt;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// What a prune applies to and which rules keep snapshots (module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneOptions {
    /// Only snapshots carrying every one of these labels are candidates.
    pub labels: BTreeMap<String, String>,
    /// Only snapshots created more than this long before now may go.
    pub older_than: Option<Duration>,
    /// Keep the N newest candidates of each group (N >= 1).
    pub keep_last: Option<u32>,
    /// How candidates are grouped for `keep_last` and `keep_within`.
    pub group_by: GroupBy,
    /// Keep the candidates created at most this long before the newest of
    /// their group.
    pub keep_within: Option<Duration>,
    /// Decide, report, remove nothing.
    pub dry_run: bool,
    /// Remove what the rules select even if children or sandboxes still
    /// reference it (the children are left without their parent).
    pub force: bool,
    /// The "now" of `older_than`, as Unix nanoseconds; `None` is the clock.
    /// For reproducible runs (tests, a dry run compared with a later one).
    pub now_unix_nanos: Option<i64>,
}

/// How snapshots are grouped for the keep rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum GroupBy {
    /// By the descriptor's `source_sandbox` (the default).
    #[default]
    SourceSandbox,
    /// By the value of this label.
    Label(String),
}

impl GroupBy {
    /// The spelling every binding uses: `source_sandbox` or `label:KEY`.
    pub fn name(&self) -> String {
        match self {
            GroupBy::SourceSandbox => "source_sandbox".into(),
            GroupBy::Label(key) => format!("label:{key}"),
        }
    }
}

impl FromStr for GroupBy {
    type Err = Error;

    fn from_str(s: &str) -> Result<GroupBy> {
        if s == "source_sandbox" {
            return Ok(GroupBy::SourceSandbox);
        }
        match s.strip_prefix("label:") {
            Some(key) if !key.is_empty() => Ok(GroupBy::Label(key.to_string())),
            _ => Err(Error::InvalidArgument(format!(
                "unknown group_by {s:?} (expected \"source_sandbox\" or \"label:KEY\")"
            ))),
        }
    }
}

/// Why a snapshot was kept. The codes (`Display`) are part of the ABI.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeepReason {
    /// Its labels do not match the selectors: the prune did not apply to it.
    NotSelected,
    /// Its artifact cannot be opened; a prune never removes what it cannot read.
    Unreadable,
    /// One of the `keep_last` newest of its group.
    KeepLast,
    /// Within `keep_within` of the newest of its group.
    KeepWithin,
    /// Not older than `older_than`.
    NotOldEnough,
    /// This child (bare name, else digest) stays.
    HasChildren(String),
    /// The sandbox of this name was created from it and still exists.
    UsedBySandbox(String),
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepReason::NotSelected => f.write_str("not_selected"),
            KeepReason::Unreadable => f.write_str("unreadable"),
            KeepReason::KeepLast => f.write_str("keep_last"),
            KeepReason::KeepWithin => f.write_str("keep_within"),
            KeepReason::NotOldEnough => f.write_str("not_old_enough"),
            KeepReason::HasChildren(child) => write!(f, "has_children:{child}"),
            KeepReason::UsedBySandbox(name) => write!(f, "used_by_sandbox:{name}"),
        }
    }
}

/// A snapshot the prune removed (or, in a dry run, would remove).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrunedSnapshot {
    pub digest: String,
    /// The bare name, when it sits in the home's snapshots directory.
    pub name: Option<String>,
    pub path: PathBuf,
    pub created_at: String,
    /// The group the keep rules saw it in (`None`: no source sandbox, or no
    /// such label).
    pub group: Option<String>,
    /// Bytes its files took on disk; an upper bound of what removing it
    /// frees where extents are shared by reflink (module docs).
    pub allocated_bytes: u64,
}

/// A snapshot the prune kept, and every reason it was kept for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptSnapshot {
    pub digest: String,
    pub name: Option<String>,
    pub path: PathBuf,
    pub created_at: String,
    pub group: Option<String>,
    /// Never empty; sorted in [`KeepReason`]'s order.
    pub reasons: Vec<KeepReason>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub dry_run: bool,
    /// In the order they were removed: children before parents.
    pub removed: Vec<PrunedSnapshot>,
    /// Newest first, as `list`.
    pub kept: Vec<KeptSnapshot>,
    /// The sum of the removed snapshots' `allocated_bytes` (an upper bound
    /// where extents are shared by reflink, module docs).
    pub bytes_freed: u64,
}

/// Parse a duration as the bindings take it: one or more `<n><unit>`
/// terms, units `s`, `m` (minutes), `h`, `d` (24 h), `w` (7 d): `90m`,
/// `36h`, `7d`, `2w`, `1d12h`. Months and years are refused (their length
/// varies; say `30d` or `365d`), and so is a number without a unit.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let bad = |why: &str| {
        Error::InvalidArgument(format!(
            "invalid duration {text:?}: {why} (write a number and a unit s, m, h, d or w, e.g. 90m, 36h, 7d, 2w)"
        ))
    };
    let mut total: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad("it is empty"));
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad("expected a whole number"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| bad("number too large"))?;
        rest = &rest[digits..];
        let unit = rest
            .chars()
            .next()
            .ok_or_else(|| bad("the last number has no unit"))?;
        let seconds: u64 = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            'y' | 'M' => return Err(bad("months and years vary in length")),
            _ => return Err(bad(&format!("unknown unit {unit:?}"))),
        };
        rest = &rest[unit.len_utf8()..];
        total = n
            .checked_mul(seconds)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| bad("too long"))?;
    }
    // Times are i64 nanoseconds: a longer span could not be compared.
    if total > (i64::MAX as u64) / 1_000_000_000 {
        return Err(bad("too long"));
    }
    Ok(Duration::from_secs(total))
}

/// Apply the retention policy `opts` to the home's indexed snapshots
/// (module docs). Progress: phase `prune`, bytes = allocated bytes freed
/// (none in a dry run).
pub fn prune(home: &Home, opts: &PruneOptions, monitor: &Monitor) -> Result<PruneReport> {
    validate(opts)?;
    let now = opts.now_unix_nanos.unwrap_or_else(timefmt::now_unix_nanos);
    let snapshots: Vec<Snapshot> = list(home)?
        .into_iter()
        .map(|h| Snapshot::read(h, &opts.group_by))
        .collect();
    let mut users: HashMap<String, Vec<String>> = HashMap::new();
    for sb in sandbox::list(home)? {
        if let Some(digest) = sb.from_snapshot {
            users.entry(digest).or_default().push(sb.name);
        }
    }
    let mut plan = decide(&snapshots, &users, opts, now);
    let order = children_first(&snapshots, &plan);
    let mut sizes = HashMap::new();
    for &i in &order {
        sizes.insert(i, allocated_bytes(&snapshots[i].handle.path)?);
    }
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        ..PruneReport::default()
    };
    if !opts.dry_run && !order.is_empty() {
        monitor.phase(Phase::Prune, sizes.values().sum())?;
    }
    for &i in &order {
        let s = &snapshots[i];
        if !opts.dry_run {
            monitor.check()?;
            let checks = RemoveChecks {
                force: opts.force,
                sandboxes: true,
            };
            match remove_at(home, &s.handle.path, checks) {
                Ok(Removal::Removed) => {}
                // A sandbox was made from it since the plan: keep it, as
                // planned ones are (decided under the lock its row is
                // recorded under, so none can slip in between).
                Ok(Removal::UsedBySandboxes(names)) => {
                    let reasons = names.into_iter().map(KeepReason::UsedBySandbox).collect();
                    plan.insert(i, Fate::Keep(reasons));
                    continue;
                }
                // Another process removed it meanwhile: not ours to report.
                Err(Error::SnapshotNotFound(_)) => {
                    plan.insert(i, Fate::Gone);
                    continue;
                }
                // A child was made since the plan: keep it, as planned ones are.
                Err(Error::HasChildren { .. }) => {
                    let child = child_now(home, &s.digest())?;
                    plan.insert(i, Fate::Keep(vec![KeepReason::HasChildren(child)]));
                    continue;
                }
                Err(e) => return Err(e),
            }
            crate::fault::point("snapshot.prune.after_remove")?;
            monitor.advance(sizes[&i])?;
        }
        report.bytes_freed += sizes[&i];
        report.removed.push(s.pruned(sizes[&i]));
    }
    for (i, s) in snapshots.iter().enumerate() {
        if let Some(Fate::Keep(reasons)) = plan.get(&i) {
            report.kept.push(s.kept(reasons.clone()));
        }
    }
    Ok(report)
}

fn validate(opts: &PruneOptions) -> Result<()> {
    if opts.keep_last.is_none() && opts.keep_within.is_none() && opts.older_than.is_none() {
        return Err(Error::InvalidArgument(
            "give a retention rule (keep_last, keep_within or older_than); labels only choose \
             which snapshots the rules apply to"
                .into(),
        ));
    }
    if opts.keep_last == Some(0) {
        return Err(Error::InvalidArgument(
            "keep_last must be at least 1 (leave it out to not keep by count)".into(),
        ));
    }
    if opts.labels.keys().any(String::is_empty) {
        return Err(Error::InvalidArgument("empty label key in selector".into()));
    }
    if opts.group_by == GroupBy::Label(String::new()) {
        return Err(Error::InvalidArgument("group_by label key is empty".into()));
    }
    Ok(())
}

/// One indexed snapshot and what its descriptor says (`None`: unreadable).
struct Snapshot {
    handle: SnapshotHandle,
    facts: Option<Facts>,
    /// Its group for the keep rules (module docs).
    group: Option<String>,
}

struct Facts {
    digest: String,
    labels: BTreeMap<String, String>,
    created_at: String,
    created_unix_nanos: i64,
    parent: Option<String>,
    source_sandbox: Option<String>,
}

impl Snapshot {
    /// The artifact is opened (one at a time: its upper is closed again)
    /// and its descriptor read, whatever its format; the index row is the
    /// fallback only for what identifies an unreadable one.
    fn read(handle: SnapshotHandle, by: &GroupBy) -> Snapshot {
        let facts = open_dir(&handle.path).ok().map(|art| {
            let d = &art.descriptor;
            let created_at = d.created_at().to_string();
            Facts {
                created_unix_nanos: timefmt::parse_rfc3339(&created_at)
                    .unwrap_or(handle.created_at_unix_nanos),
                created_at,
                digest: art.digest.clone(),
                labels: d.labels().clone(),
                parent: d.parent().map(str::to_string),
                source_sandbox: d.source_sandbox().map(str::to_string),
            }
        });
        let group = facts.as_ref().and_then(|f| match by {
            GroupBy::SourceSandbox => f.source_sandbox.clone(),
            GroupBy::Label(key) => f.labels.get(key).cloned(),
        });
        Snapshot {
            handle,
            facts,
            group,
        }
    }

    fn digest(&self) -> String {
        self.digest_str().to_string()
    }

    fn digest_str(&self) -> &str {
        self.facts
            .as_ref()
            .map_or(&self.handle.digest, |f| &f.digest)
    }

    fn parent(&self) -> Option<&str> {
        match &self.facts {
            Some(f) => f.parent.as_deref(),
            None => self.handle.parent_digest.as_deref(),
        }
    }

    fn created_at(&self) -> String {
        self.facts
            .as_ref()
            .map_or(&self.handle.created_at, |f| &f.created_at)
            .clone()
    }

    fn created_unix_nanos(&self) -> i64 {
        self.facts
            .as_ref()
            .map_or(self.handle.created_at_unix_nanos, |f| f.created_unix_nanos)
    }

    /// How a reason names this snapshot: its bare name, else its digest.
    fn reference(&self) -> String {
        self.handle.name.clone().unwrap_or_else(|| self.digest())
    }

    fn pruned(&self, allocated_bytes: u64) -> PrunedSnapshot {
        PrunedSnapshot {
            digest: self.digest(),
            name: self.handle.name.clone(),
            path: self.handle.path.clone(),
            created_at: self.created_at(),
            group: self.group.clone(),
            allocated_bytes,
        }
    }

    fn kept(&self, reasons: Vec<KeepReason>) -> KeptSnapshot {
        KeptSnapshot {
            digest: self.digest(),
            name: self.handle.name.clone(),
            path: self.handle.path.clone(),
            created_at: self.created_at(),
            group: self.group.clone(),
            reasons,
        }
    }
}

/// What the plan does with one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Fate {
    Remove,
    Keep(Vec<KeepReason>),
    /// Removed by another process while the prune ran: in neither list.
    Gone,
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Every snapshot's fate (module docs, steps 1 to 4), by index in `snapshots`.
fn decide(
    snapshots: &[Snapshot],
    users: &HashMap<String, Vec<String>>,
    opts: &PruneOptions,
    now: i64,
) -> HashMap<usize, Fate> {
    let mut fate = HashMap::new();
    let mut groups: BTreeMap<Option<&str>, Vec<usize>> = BTreeMap::new();
    for (i, s) in snapshots.iter().enumerate() {
        let Some(f) = &s.facts else {
            fate.insert(i, Fate::Keep(vec![KeepReason::Unreadable]));
            continue;
        };
        if opts.labels.iter().all(|(k, v)| f.labels.get(k) == Some(v)) {
            groups.entry(s.group.as_deref()).or_default().push(i);
        } else {
            fate.insert(i, Fate::Keep(vec![KeepReason::NotSelected]));
        }
    }
    for members in groups.values_mut() {
        members.sort_by(|&a, &b| {
            let (a, b) = (&snapshots[a], &snapshots[b]);
            (b.created_unix_nanos(), &a.handle.path).cmp(&(a.created_unix_nanos(), &b.handle.path))
        });
        let newest = snapshots[members[0]].created_unix_nanos();
        for (rank, &i) in members.iter().enumerate() {
            let created = snapshots[i].created_unix_nanos();
            let mut reasons = Vec::new();
            if opts.keep_last.is_some_and(|n| rank < n as usize) {
                reasons.push(KeepReason::KeepLast);
            }
            if opts
                .keep_within
                .is_some_and(|d| newest.saturating_sub(created) <= nanos(d))
            {
                reasons.push(KeepReason::KeepWithin);
            }
            if opts
                .older_than
                .is_some_and(|d| now.saturating_sub(created) <= nanos(d))
            {
                reasons.push(KeepReason::NotOldEnough);
            }
            let f = if reasons.is_empty() {
                Fate::Remove
            } else {
                Fate::Keep(reasons)
            };
            fate.insert(i, f);
        }
    }
    if !opts.force {
        keep_what_lineage_needs(snapshots, users, &mut fate);
    }
    fate
}

/// Step 4: keep a snapshot that would go while a child or a sandbox still
/// needs it and no other copy of its digest stays, until nothing changes.
fn keep_what_lineage_needs(
    snapshots: &[Snapshot],
    users: &HashMap<String, Vec<String>>,
    fate: &mut HashMap<usize, Fate>,
) {
    let digests: Vec<&str> = snapshots.iter().map(Snapshot::digest_str).collect();
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut copies: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, s) in snapshots.iter().enumerate() {
        if let Some(p) = s.parent() {
            children.entry(p).or_default().push(i);
        }
        copies.entry(digests[i]).or_default().push(i);
    }
    let stays = |fate: &HashMap<usize, Fate>, i: usize| matches!(fate.get(&i), Some(Fate::Keep(_)));
    // Only a copy that opens can stand in for this one: an index row whose
    // directory is gone or malformed stays (as `unreadable`) but holds no
    // snapshot for a child or a sandbox.
    let readable_stays =
        |fate: &HashMap<usize, Fate>, i: usize| snapshots[i].facts.is_some() && stays(fate, i);
    loop {
        let mut changed = false;
        for (i, &d) in digests.iter().enumerate() {
            if fate.get(&i) != Some(&Fate::Remove) {
                continue;
            }
            if copies[d].iter().any(|&j| j != i && readable_stays(fate, j)) {
                continue;
            }
            let mut reasons: Vec<KeepReason> = children
                .get(d)
                .into_iter()
                .flatten()
                .filter(|&&c| stays(fate, c))
                .map(|&c| KeepReason::HasChildren(snapshots[c].reference()))
                .collect();
            reasons.extend(
                users
                    .get(d)
                    .into_iter()
                    .flatten()
                    .map(|name| KeepReason::UsedBySandbox(name.clone())),
            );
            if !reasons.is_empty() {
                reasons.sort();
                reasons.dedup();
                fate.insert(i, Fate::Keep(reasons));
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

/// The snapshots to remove, each after every one of its children that is
/// also removed; among those ready at once, oldest first. A topological
/// order by rounds: each round is every snapshot none of whose children to
/// remove is still pending (a count per snapshot, lowered as they go).
fn children_first(snapshots: &[Snapshot], fate: &HashMap<usize, Fate>) -> Vec<usize> {
    let going: Vec<usize> = (0..snapshots.len())
        .filter(|i| fate.get(i) == Some(&Fate::Remove))
        .collect();
    // Every removed copy of a digest waits for that digest's removed children.
    let mut copies: HashMap<&str, Vec<usize>> = HashMap::new();
    for &i in &going {
        copies.entry(snapshots[i].digest_str()).or_default().push(i);
    }
    let parents_of = |i: usize| {
        snapshots[i]
            .parent()
            .and_then(|p| copies.get(p))
            .into_iter()
            .flatten()
            .copied()
    };
    let mut pending_children: HashMap<usize, usize> = HashMap::new();
    for &i in &going {
        for p in parents_of(i) {
            *pending_children.entry(p).or_default() += 1;
        }
    }
    let oldest_first = |a: &usize, b: &usize| {
        let (a, b) = (&snapshots[*a], &snapshots[*b]);
        (a.created_unix_nanos(), &a.handle.path).cmp(&(b.created_unix_nanos(), &b.handle.path))
    };
    let mut order = Vec::with_capacity(going.len());
    let mut round: Vec<usize> = going
        .iter()
        .copied()
        .filter(|i| !pending_children.contains_key(i))
        .collect();
    while !round.is_empty() {
        round.sort_by(oldest_first);
        let mut next = Vec::new();
        for &i in &round {
            for p in parents_of(i) {
                let n = pending_children.get_mut(&p).expect("counted above");
                *n -= 1;
                if *n == 0 {
                    next.push(p);
                }
            }
        }
        order.append(&mut round);
        round = next;
    }
    // A digest cannot name itself through a chain of parents (each
    // descriptor's digest covers its parent's), so every one is ordered; if
    // one were not, removing the rest in any order is still safe.
    if order.len() < going.len() {
        let placed: BTreeSet<usize> = order.iter().copied().collect();
        let mut rest: Vec<usize> = going.into_iter().filter(|i| !placed.contains(i)).collect();
        rest.sort_by(oldest_first);
        order.extend(rest);
    }
    order
}

/// A child of `digest` indexed now, named as a reason names it.
fn child_now(home: &Home, digest: &str) -> Result<String> {
    Ok(list(home)?
        .into_iter()
        .find(|h| h.parent_digest.as_deref() == Some(digest))
        .map(|h| h.name.unwrap_or(h.digest))
        .unwrap_or_else(|| "unknown".into()))
}

/// What the files under `dir` (and `dir` itself) take on disk; a file with
/// other hard links counts 0, since removing this name frees nothing.
/// Extents shared by reflink are counted (module docs: an upper bound).
fn allocated_bytes(dir: &Path) -> Result<u64> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io("stat", dir, e)),
    };
    let own = if meta.is_dir() || meta.nlink() <= 1 {
        meta.blocks() * 512
    } else {
        0
    };
    if !meta.is_dir() {
        return Ok(own);
    }
    let mut total = own;
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(total),
        Err(e) => return Err(Error::io("read", dir, e)),
    };
    for entry in entries {
        let entry = entry.ctx("read", dir)?;
        total += allocated_bytes(&entry.path())?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit_and_combined() {
        let h = 3600;
        for (text, secs) in [
            ("90m", 90 * 60),
            ("36h", 36 * h),
            ("7d", 7 * 24 * h),
            ("2w", 14 * 24 * h),
            ("45s", 45),
            ("1d12h", 36 * h),
            (" 0s ", 0),
        ] {
            assert_eq!(
                parse_duration(text).unwrap(),
                Duration::from_secs(secs),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_durations_say_why() {
        for (text, why) in [
            ("", "empty"),
            ("7", "no unit"),
            ("d", "whole number"),
            ("-1d", "whole number"),
            ("1.5h", "unknown unit '.'"),
            ("3x", "unknown unit 'x'"),
            ("1y", "months and years"),
            ("6M", "months and years"),
            ("7d 2h", "whole number"),
            ("99999999999999999999s", "too large"),
            ("999999999999w", "too long"),
        ] {
            let e = parse_duration(text).unwrap_err();
            assert_eq!(e.code(), crate::error::ErrorCode::InvalidArgument, "{text}");
            let message = e.to_string();
            assert!(message.contains(why), "{text}: {message}");
            assert!(message.contains("90m, 36h, 7d"), "{text}: {message}");
        }
    }

    #[test]
    fn group_by_spellings() {
        assert_eq!(
            "source_sandbox".parse::<GroupBy>().unwrap(),
            GroupBy::SourceSandbox
        );
        assert_eq!(
            "label:tier".parse::<GroupBy>().unwrap(),
            GroupBy::Label("tier".into())
        );
        for bad in ["", "label:", "sandbox", "label"] {
            let e = bad.parse::<GroupBy>().unwrap_err();
            assert!(e.to_string().contains("label:KEY"), "{bad}: {e}");
        }
        assert_eq!(GroupBy::Label("a:b".into()).name(), "label:a:b");
    }

    #[test]
    fn reason_codes_are_stable() {
        let codes: Vec<String> = [
            KeepReason::NotSelected,
            KeepReason::Unreadable,
            KeepReason::KeepLast,
            KeepReason::KeepWithin,
            KeepReason::NotOldEnough,
            KeepReason::HasChildren("c".into()),
            KeepReason::UsedBySandbox("s".into()),
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            codes,
            [
                "not_selected",
                "unreadable",
                "keep_last",
                "keep_within",
                "not_old_enough",
                "has_children:c",
                "used_by_sandbox:s"
            ]
        );
    }
}
