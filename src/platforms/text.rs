//! Text counting rules shared by the platforms. (Being written.)
