//! mastodon: text and media rules. (Being written.)

use super::{Limits, PostView, Violation};

pub const FIELDS: &[&str] = &[];

pub fn validate(_limits: &Limits, _post: &PostView<'_>) -> Vec<Violation> {
    todo!()
}
