//! Near-duplicate detection. (Being written.)

/// SPEC normalization.
pub fn normalize(text: &str) -> String {
    let _ = text;
    todo!()
}

/// The comparable form of a normalized text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    normalized: String,
}

impl Fingerprint {
    pub fn of_normalized(normalized: &str) -> Fingerprint {
        Fingerprint {
            normalized: normalized.to_string(),
        }
    }

    pub fn of_text(text: &str) -> Fingerprint {
        Fingerprint::of_normalized(&normalize(text))
    }

    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

/// Jaccard similarity of the 4-gram sets (equality for short texts).
pub fn similarity(a: &Fingerprint, b: &Fingerprint) -> f64 {
    let _ = (a, b);
    todo!()
}

pub fn is_near_duplicate(a: &Fingerprint, b: &Fingerprint, threshold: f64) -> bool {
    similarity(a, b) >= threshold
}

/// Finds near-duplicates among many fingerprints without comparing with each one.
#[derive(Debug, Clone)]
pub struct Index<K> {
    entries: Vec<(K, Fingerprint)>,
}

impl<K: Clone> Default for Index<K> {
    fn default() -> Self {
        Index { entries: Vec::new() }
    }
}

impl<K: Clone> Index<K> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, key: K, fingerprint: Fingerprint) {
        self.entries.push((key, fingerprint));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry whose similarity with `fingerprint` is ≥ `threshold`, with that similarity.
    pub fn find(&self, fingerprint: &Fingerprint, threshold: f64) -> Vec<(K, f64)> {
        let _ = (fingerprint, threshold);
        todo!()
    }
}
