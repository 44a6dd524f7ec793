//! PostgreSQL control: typed binary wrappers, configuration files, SQL, process lifecycle (work in progress).
