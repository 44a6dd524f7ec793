//! Whether logical slots copied to a replica are safe to use after a
//! failover (Patroni's `check_logical_slots_readiness` and
//! `_ready_logical_slots`). A copied slot is safe once the primary keeps
//! the catalog rows it needs: the `catalog_xmin` that this replica's
//! physical slot on the primary reports (through `hot_standby_feedback`)
//! has reached the one the logical slot had on the primary, and is not
//! newer than the copy's own.

use std::collections::BTreeMap;

use super::plan::Existing;
use crate::output::Level;

/// Copied logical slots not known to be safe yet, with their
/// `catalog_xmin` on the primary once read (`None`: not read yet).
pub type PendingLogical = BTreeMap<String, Option<u64>>;

/// Take out of `pending` the slots that are safe now, given the
/// `catalog_xmin` of our physical slot on the primary.
pub fn ready_logical_slots(
    pending: &PendingLogical,
    physical_catalog_xmin: Option<u64>,
    existing: &[Existing],
) -> (PendingLogical, Vec<(Level, String)>) {
    let mut log = Vec::new();
    let mut out = PendingLogical::new();
    for (name, on_primary) in pending {
        let Some(here) = existing.iter().find(|e| &e.name == name) else {
            // The slot is gone from this replica: nothing to wait for.
            continue;
        };
        let ready = match (on_primary, physical_catalog_xmin) {
            (Some(primary), Some(physical)) => *primary <= physical && physical <= here.catalog_xmin.unwrap_or(0),
            _ => false,
        };
        if ready {
            log.push((Level::Info, format!("Logical slot {name} is safe to be used after a failover")));
        } else {
            out.insert(name.clone(), *on_primary);
        }
    }
    (out, log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness() {
        let slot = |name: &str, catalog_xmin: u64| Existing {
            name: name.into(),
            slot_type: "logical".into(),
            catalog_xmin: Some(catalog_xmin),
            ..Existing::default()
        };
        let existing = [slot("a", 100), slot("b", 100), slot("c", 50), slot("d", 100)];
        let pending: PendingLogical =
            [("a", Some(90)), ("b", Some(120)), ("c", Some(90)), ("d", None), ("gone", Some(1))]
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect();
        #[rustfmt::skip]
        let cases: [(Option<u64>, &[&str], &[&str]); 3] = [
            // a: 90 <= 95 <= 100. b: the primary's slot is newer. c: the copy is older.
            (Some(95), &["b", "c", "d"], &["Logical slot a is safe to be used after a failover"]),
            // No feedback from this replica yet: nothing is ready.
            (None, &["a", "b", "c", "d"], &[]),
            (Some(101), &["a", "b", "c", "d"], &[]),
        ];
        for (physical, left, lines) in cases {
            let (got, log) = ready_logical_slots(&pending, physical, &existing);
            assert_eq!(got.keys().map(String::as_str).collect::<Vec<_>>(), left, "{physical:?}");
            assert_eq!(log.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>(), lines, "{physical:?}");
        }
    }
}
