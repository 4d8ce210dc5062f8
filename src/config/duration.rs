//! Durations in the config. (Being written.)
