//! The script callback plugin: runs postgresql.callbacks commands (work in progress).
