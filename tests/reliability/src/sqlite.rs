//! Reads a host's SQLite database (the `kv` table both sample hosts use) as a [`Snapshot`].

use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use twofold_core::Record;

use crate::store::Snapshot;

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
            let value: Vec<u8> = row.get(1)?;
            let version: i64 = row.get(2)?;
            Ok((key, value, version))
        })
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut snapshot = Snapshot::new();
    for row in rows {
        let (key, value, version) = row.map_err(|e| format!("{}: {e}", path.display()))?;
        let version = u64::try_from(version).map_err(|_| format!("{key}: version {version}"))?;
        snapshot.insert(key, Record { value, version });
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
