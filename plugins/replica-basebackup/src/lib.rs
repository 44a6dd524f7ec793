//! The basebackup replica-creation plugin (pg_basebackup) (work in progress).
