//! What of palisadectl other crates may see: its command line, from which
//! the packages' man page and shell completions are generated.

pub mod cli;
