//! Numbered schema migrations. The schema version lives under one meta key; migration `n`
//! turns a version `n - 1` store into a version `n` store inside one atomic batch, so a crash
//! mid-upgrade leaves the store at one version or the other.

use super::StoreError;

/// A migration: the version it produces and the batch it writes.
pub(super) struct Migration {
    pub to_version: u32,
    pub run: fn(&sled::Tree) -> Result<sled::Batch, StoreError>,
}

/// Version 1 is the first schema; later versions append here, in order.
pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    to_version: 2,
    run: sealed_values,
}];

/// Version 2: content values may be sealed (encryption at rest, `store::crypt`). Nothing is
/// rewritten: values in the clear still read. The version is there so that an older kring,
/// which would take a sealed value for corrupt JSON, refuses the store instead.
fn sealed_values(_: &sled::Tree) -> Result<sled::Batch, StoreError> {
    Ok(sled::Batch::default())
}

pub(super) const FIRST_VERSION: u32 = 1;

pub(super) fn current_version(migrations: &[Migration]) -> u32 {
    migrations.last().map_or(FIRST_VERSION, |m| m.to_version)
}

const VERSION_KEY: &[u8] = b"mschema_version";

/// Brings the store to the newest version, or refuses a store newer than this code.
pub(super) fn migrate(tree: &sled::Tree, migrations: &[Migration]) -> Result<u32, StoreError> {
    let supported = current_version(migrations);
    let found = match tree.get(VERSION_KEY)? {
        Some(raw) => {
            let bytes: [u8; 4] = raw.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                key: "schema_version".into(),
                problem: "not 4 bytes".into(),
            })?;
            u32::from_be_bytes(bytes)
        }
        None => {
            tree.insert(VERSION_KEY, &supported.to_be_bytes())?;
            return Ok(supported);
        }
    };
    if found > supported {
        return Err(StoreError::TooNew { found, supported });
    }
    let mut version = found;
    for migration in migrations.iter().filter(|m| m.to_version > found) {
        let mut batch = (migration.run)(tree)?;
        batch.insert(VERSION_KEY, &migration.to_version.to_be_bytes());
        tree.apply_batch(batch)?;
        version = migration.to_version;
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add_marker(_: &sled::Tree) -> Result<sled::Batch, StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert(b"mmarker".as_slice(), b"2".as_slice());
        Ok(batch)
    }

    #[test]
    fn a_new_store_starts_at_the_newest_version_and_old_ones_are_upgraded() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        assert_eq!(migrate(&tree, &[]).unwrap(), 1);
        let upgrade = [Migration {
            to_version: 2,
            run: add_marker,
        }];
        assert_eq!(migrate(&tree, &upgrade).unwrap(), 2);
        assert_eq!(tree.get(b"mmarker").unwrap().unwrap().as_ref(), b"2");
        // Running again changes nothing.
        assert_eq!(migrate(&tree, &upgrade).unwrap(), 2);
        // A store from the future is refused.
        assert!(matches!(
            migrate(&tree, &[]),
            Err(StoreError::TooNew {
                found: 2,
                supported: 1
            })
        ));
    }
}
