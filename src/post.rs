//! The post file format. (Being written.)

use std::ops::Range;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

/// A parsed post file: front matter and body. Pure data.
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    pub front: FrontMatter,
    /// The post text (the body, without surrounding blank lines).
    pub body: String,
    /// 1-based line of the file where the body starts.
    pub body_line: usize,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrontMatter {
    pub at: Option<PostTime>,
    pub expires: Option<PostTime>,
    pub priority: i64,
    pub media: Vec<MediaRef>,
    pub link: Option<String>,
    pub lang: Option<String>,
    /// The `[platform]` table, checked per platform elsewhere.
    pub platform: toml::Table,
}

/// A time in front matter: a local time (in the channel's zone) or an exact instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostTime {
    Local(DateTime),
    Exact(Timestamp),
}

impl PostTime {
    /// The instant in the channel's zone: a local time inside a spring-forward gap is the
    /// first instant after the gap; one in a repeated hour is its first occurrence.
    pub fn resolve(&self, tz: &TimeZone) -> Timestamp {
        let _ = tz;
        todo!()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRef {
    pub path: String,
    pub alt: Option<String>,
}

/// Why a post file cannot be read; `span` is a byte range of the file, where known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostError {
    pub message: String,
    pub help: String,
    pub span: Option<Range<usize>>,
}

pub fn parse(bytes: &[u8]) -> Result<Post, PostError> {
    let _ = bytes;
    todo!()
}
