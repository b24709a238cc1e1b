//! Reads a host's SQLite database (the `kv` table both sample hosts use) as a [`Snapshot`].

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use twofold_core::Versioned;

use crate::Snapshot;

/// Every key of the `kv` table with its value and version. Opening the file replays a
/// write-ahead log a killed process left behind, as the next host start would.
pub fn read_kv(path: &Path) -> Result<Snapshot, String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut statement = conn
        .prepare("SELECT key, value, version FROM kv ORDER BY key")
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let rows = statement
        .query_map([], |row| {
            let key: String = row.get(0)?;
            // TEXT as the hosts write it; a BLOB must hold the same UTF-8.
            let value = match row.get_ref(1)? {
                ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                    String::from_utf8(bytes.to_vec()).map_err(|_| "a value is not UTF-8")
                }
                _ => Err("a value is neither TEXT nor BLOB"),
            };
            let version: i64 = row.get(2)?;
            Ok((key, value, version))
        })
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut snapshot = Snapshot::new();
    for row in rows {
        let (key, value, version) = row.map_err(|e| format!("{}: {e}", path.display()))?;
        let value = value.map_err(|e| format!("{key}: {e}"))?;
        let version = u64::try_from(version).map_err(|_| format!("{key}: version {version}"))?;
        snapshot.insert(key, Versioned { value, version });
    }
    Ok(snapshot)
}

/// `PRAGMA integrity_check` answers `ok`.
pub fn integrity_ok(path: &Path) -> Result<(), String> {
    let conn =
        Connection::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if verdict == "ok" {
        Ok(())
    } else {
        Err(format!(
            "{}: integrity_check says {verdict}",
            path.display()
        ))
    }
}
