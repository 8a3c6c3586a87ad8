//! Git notes in a bare cache: reading the note a notes reference holds for a commit and writing
//! a new one on top of that reference (the caller fetches the reference first and pushes it
//! after, never forced: `push`). Disk I/O under `spawn_blocking`.

use std::path::Path;

use git2::{ErrorCode, Signature};

use super::commit::{blocking, oid};
use super::{GitError, open_cache};

/// The note `notes_ref` (e.g. `refs/notes/sluice`) holds for `commit`, if any.
pub async fn read_note(
    cache: &Path,
    notes_ref: &str,
    commit: &str,
) -> Result<Option<String>, GitError> {
    let (cache, notes_ref, commit) = (cache.to_owned(), notes_ref.to_owned(), commit.to_owned());
    blocking(move || {
        let repo = open_cache(&cache)?;
        match repo.find_note(Some(&notes_ref), oid(&commit)?) {
            Ok(note) => Ok(Some(
                String::from_utf8_lossy(note.message_bytes()).into_owned(),
            )),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(GitError::ReadObject {
                oid: format!("{notes_ref} of {commit}"),
                source: e,
            }),
        }
    })
    .await
}

/// Makes `text` the note of `commit` in `notes_ref` (replacing what the cache's reference held
/// for it: the caller merges), as a new notes commit on top of the reference. Returns that
/// commit.
pub async fn write_note(
    cache: &Path,
    notes_ref: &str,
    commit: &str,
    text: &str,
    author: (&str, &str),
) -> Result<String, GitError> {
    let (cache, notes_ref, commit) = (cache.to_owned(), notes_ref.to_owned(), commit.to_owned());
    let (name, email, text) = (author.0.to_owned(), author.1.to_owned(), text.to_owned());
    blocking(move || {
        let repo = open_cache(&cache)?;
        let fail = |e: git2::Error| GitError::Commit {
            path: cache.clone(),
            source: e,
        };
        let who = Signature::now(&name, &email).map_err(fail)?;
        repo.note(&who, &who, Some(&notes_ref), oid(&commit)?, &text, true)
            .map_err(fail)?;
        let tip = repo.refname_to_id(&notes_ref).map_err(fail)?;
        Ok(tip.to_string())
    })
    .await
}
