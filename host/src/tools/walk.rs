//! The directory walk shared by find and grep.
//!
//! Built on `ignore`'s parallel walker, started at a [`WalkRoot`]
//! (`/proc/self/fd/<fd>` of the pinned start directory), with:
//! - hidden files included;
//! - `.gitignore`, `.ignore` and `.git/info/exclude` honoured, also outside a git
//!   repository (`require_git(false)`); the server's global gitignore is not read;
//! - symlinks never followed (they are not even reported as files);
//! - `.git` (directory or file) skipped;
//! - `.gitignore`/`.ignore` files of the directories between the session directory
//!   and the start honoured too (the walker cannot see above the pinned fd, so they
//!   are read through the session and applied as a filter: a `!pattern` further
//!   down cannot re-include what they exclude).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::{Match, WalkBuilder};

use crate::workspace::{Session, WalkRoot};

/// Worker threads of a walk.
pub(crate) fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(12)
}

/// A walker over `root` (which must be a directory) with the rules above.
pub(crate) fn builder(session: &Session, root: &WalkRoot) -> WalkBuilder {
    let mut b = WalkBuilder::new(root.path());
    b.hidden(false)
        .parents(false)
        .ignore(true)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(false)
        .require_git(false)
        .follow_links(false)
        .threads(threads());
    let parents = ParentIgnores::load(session, root.rel()).map(Arc::new);
    let prefix = root.path().to_path_buf();
    b.filter_entry(move |e| {
        if e.file_name() == ".git" {
            return false;
        }
        match (&parents, e.path().strip_prefix(&prefix)) {
            (Some(p), Ok(rel)) if e.depth() > 0 => {
                !p.ignored(rel, e.file_type().is_some_and(|t| t.is_dir()))
            }
            _ => true,
        }
    });
    b
}

/// Ignore files of the ancestors of the start directory, nearest first (and
/// `.ignore` before `.gitignore` in each, as the walker ranks them).
struct ParentIgnores {
    /// The start directory under a made-up absolute root, so that every matcher
    /// (rooted at its own ancestor under the same root) sees candidates under it.
    start: PathBuf,
    matchers: Vec<Gitignore>,
}

const VIRTUAL_ROOT: &str = "/sidecar-session";
const MAX_IGNORE_FILE: u64 = 1 << 20;

impl ParentIgnores {
    fn load(session: &Session, start_rel: &Path) -> Option<ParentIgnores> {
        // Nearest first, ending with "" (the session directory).
        let ancestors = start_rel.ancestors().skip(1);
        let mut matchers = Vec::new();
        for anc in ancestors {
            for name in [".ignore", ".gitignore"] {
                let file = anc.join(name);
                let Some(input) = file.to_str() else { continue };
                let Ok(f) = session.open_read(input) else {
                    continue;
                };
                let mut text = String::new();
                use std::io::Read;
                if f.take(MAX_IGNORE_FILE).read_to_string(&mut text).is_err() {
                    continue;
                }
                let mut gb = GitignoreBuilder::new(Path::new(VIRTUAL_ROOT).join(anc));
                for line in text.lines() {
                    let _ = gb.add_line(None, line);
                }
                if let Ok(gi) = gb.build() {
                    if !gi.is_empty() {
                        matchers.push(gi);
                    }
                }
            }
        }
        if matchers.is_empty() {
            None
        } else {
            Some(ParentIgnores {
                start: Path::new(VIRTUAL_ROOT).join(start_rel),
                matchers,
            })
        }
    }

    fn ignored(&self, rel: &Path, is_dir: bool) -> bool {
        let candidate = self.start.join(rel);
        for m in &self.matchers {
            match m.matched_path_or_any_parents(&candidate, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => {}
            }
        }
        false
    }
}
