//! A set of member names compared without regard to case, as PostgreSQL
//! compares `application_name` with `synchronous_standby_names` (Patroni's
//! `CaseInsensitiveSet`).

use std::collections::BTreeMap;

/// Member names; each keeps the spelling it was first added with.
#[derive(Clone, Debug, Default)]
pub struct NameSet(BTreeMap<String, String>);

impl NameSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, name: &str) {
        self.0.entry(name.to_lowercase()).or_insert_with(|| name.to_string());
    }

    pub fn remove(&mut self, name: &str) {
        self.0.remove(&name.to_lowercase());
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(&name.to_lowercase())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names as spelled, ordered by their lower-case form.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(String::as_str)
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.values().cloned().collect()
    }

    /// The names of `self` that are also in `other`.
    pub fn intersection(&self, other: &NameSet) -> NameSet {
        NameSet(self.0.iter().filter(|(k, _)| other.0.contains_key(*k)).map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// Python's `repr(list(names))`, for log lines.
    pub fn repr(&self) -> String {
        let items: Vec<String> = self.iter().map(palisade_pycompat::py::repr_str).collect();
        format!("[{}]", items.join(", "))
    }
}

impl PartialEq for NameSet {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && self.0.keys().all(|k| other.0.contains_key(k))
    }
}

impl Eq for NameSet {}

impl<'a> FromIterator<&'a str> for NameSet {
    fn from_iter<T: IntoIterator<Item = &'a str>>(iter: T) -> Self {
        let mut s = NameSet::new();
        for n in iter {
            s.insert(n);
        }
        s
    }
}

impl<'a> FromIterator<&'a String> for NameSet {
    fn from_iter<T: IntoIterator<Item = &'a String>>(iter: T) -> Self {
        iter.into_iter().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive() {
        let a: NameSet = ["N1", "n2"].into_iter().collect();
        let b: NameSet = ["n1", "N2"].into_iter().collect();
        assert_eq!(a, b);
        assert!(a.contains("n1"));
        assert_eq!(a.to_vec(), vec!["N1".to_string(), "n2".to_string()]);
        let c: NameSet = ["n2", "n3"].into_iter().collect();
        assert_eq!(a.intersection(&c).to_vec(), vec!["n2".to_string()]);
        assert_eq!(a.repr(), "['N1', 'n2']");
        assert_eq!(NameSet::new().repr(), "[]");
    }
}
