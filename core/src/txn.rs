//! One attempt at an operation: reads through the host, remembers the version of everything
//! read, and collects writes that expect exactly those versions. The batch becomes the
//! operation's single commit (D1, D2).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::docs::{Doc, SCHEMA_VERSION};
use crate::error::{Error, Result};
use crate::{Expect, Host, HostError, Write};

pub(crate) struct Txn<'h> {
    host: &'h dyn Host,
    /// The version of each key when first read; `None` for a key that was absent.
    seen: HashMap<String, Option<u64>>,
    /// Pending writes by key: `Some(document)` to put, `None` to delete.
    writes: BTreeMap<String, Option<String>>,
}

impl<'h> Txn<'h> {
    pub(crate) fn new(host: &'h dyn Host) -> Txn<'h> {
        Txn {
            host,
            seen: HashMap::new(),
            writes: BTreeMap::new(),
        }
    }

    pub(crate) fn host(&self) -> &'h dyn Host {
        self.host
    }

    pub(crate) fn get<T: DeserializeOwned + Doc>(&mut self, key: &str) -> Result<Option<T>> {
        let record = self.host.get(key).map_err(read_error)?;
        self.seen
            .entry(key.to_owned())
            .or_insert(record.as_ref().map(|r| r.version));
        record.map(|r| decode(key, &r.value)).transpose()
    }

    /// Entries under `prefix`, all of them, in key order.
    pub(crate) fn scan_all<T: DeserializeOwned + Doc>(
        &mut self,
        prefix: &str,
    ) -> Result<Vec<(String, T)>> {
        const PAGE: u32 = 256;
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.scan::<T>(prefix, after.as_deref(), PAGE)?;
            let full = page.len() == PAGE as usize;
            after = page.last().map(|(k, _)| k.clone());
            out.extend(page);
            if !full {
                return Ok(out);
            }
        }
    }

    pub(crate) fn scan<T: DeserializeOwned + Doc>(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, T)>> {
        let page = self.host.scan(prefix, after, limit).map_err(read_error)?;
        if page.len() > limit as usize {
            return Err(Error::internal(
                "storage scan returned more entries than asked for",
            ));
        }
        let mut out = Vec::with_capacity(page.len());
        for crate::Entry { key, value: record } in page {
            if !key.starts_with(prefix) || after.is_some_and(|a| key.as_str() <= a) {
                return Err(Error::internal(
                    "storage scan returned a key outside the range asked for",
                ));
            }
            self.seen.entry(key.clone()).or_insert(Some(record.version));
            let doc = decode(&key, &record.value)?;
            out.push((key, doc));
        }
        Ok(out)
    }

    /// Replaces a document read earlier in this attempt, expecting the version read.
    pub(crate) fn put<T: Serialize>(&mut self, key: &str, doc: &T) -> Result<()> {
        if !self.seen.contains_key(key) {
            return Err(Error::internal(format!(
                "write to {key} without reading it first"
            )));
        }
        self.writes.insert(key.to_owned(), Some(encode(doc)?));
        Ok(())
    }

    /// Creates a document that must not exist yet.
    pub(crate) fn put_new<T: Serialize>(&mut self, key: &str, doc: &T) -> Result<()> {
        match self.seen.get(key) {
            Some(Some(_)) => return Err(Error::internal(format!("{key} exists already"))),
            Some(None) => {}
            None => {
                self.seen.insert(key.to_owned(), None);
            }
        }
        self.writes.insert(key.to_owned(), Some(encode(doc)?));
        Ok(())
    }

    /// Writes a document read earlier in this attempt, whether it was there or not.
    pub(crate) fn upsert<T: Serialize>(&mut self, key: &str, doc: &T) -> Result<()> {
        if self.was_present(key) {
            self.put(key, doc)
        } else {
            self.put_new(key, doc)
        }
    }

    /// Whether `key` was present when this attempt first read it.
    pub(crate) fn was_present(&self, key: &str) -> bool {
        matches!(self.seen.get(key), Some(Some(_)))
    }

    /// Like [`Txn::scan`], but leaves out keys this attempt has already written, for
    /// housekeeping that must not undo the attempt's own writes.
    pub(crate) fn scan_loose<T: DeserializeOwned + Doc>(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, T)>> {
        let page = self.scan::<T>(prefix, after, limit)?;
        Ok(page
            .into_iter()
            .filter(|(key, _)| !self.writes.contains_key(key))
            .collect())
    }

    /// Deletes a document read earlier in this attempt, expecting the version read.
    pub(crate) fn delete(&mut self, key: &str) -> Result<()> {
        match self.seen.get(key) {
            Some(Some(_)) => {
                self.writes.insert(key.to_owned(), None);
                Ok(())
            }
            _ => Err(Error::internal(format!(
                "delete of {key}, which was not read as present"
            ))),
        }
    }

    /// The batch: every write with the expectation of what this attempt read.
    pub(crate) fn into_writes(self) -> Vec<Write> {
        let seen = self.seen;
        self.writes
            .into_iter()
            .map(|(key, value)| {
                let expect = match seen.get(&key) {
                    Some(Some(version)) => Expect::Version(*version),
                    _ => Expect::Absent,
                };
                Write { key, value, expect }
            })
            .collect()
    }
}

/// `get` and `scan` may fail, but never conflict: only `commit` checks expectations. A host that
/// answers `conflict` to a read breaks the contract, so it is a storage failure, the same through
/// every boundary.
pub(crate) fn read_error(e: HostError) -> Error {
    match e {
        HostError::Conflict => Error::Storage(HostError::Failed(
            "a read answered `conflict`, which only commit may".into(),
        )),
        other => Error::Storage(other),
    }
}

fn encode<T: Serialize>(doc: &T) -> Result<String> {
    serde_json::to_string(doc).map_err(Error::internal)
}

fn decode<T: DeserializeOwned + Doc>(key: &str, text: &str) -> Result<T> {
    #[derive(serde::Deserialize)]
    struct Header {
        v: u32,
    }
    let header: Header = serde_json::from_str(text)
        .map_err(|e| Error::internal(format!("stored document {key} is unreadable: {e}")))?;
    if header.v != SCHEMA_VERSION {
        return Err(Error::internal(format!(
            "stored document {key} has schema version {}; this engine reads {SCHEMA_VERSION}",
            header.v
        )));
    }
    let doc: T = serde_json::from_str(text)
        .map_err(|e| Error::internal(format!("stored document {key} is unreadable: {e}")))?;
    debug_assert_eq!(doc.schema_version(), SCHEMA_VERSION);
    Ok(doc)
}
