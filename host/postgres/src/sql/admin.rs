//! Roles, settings, checkpoints, promotion.

use std::time::Duration;

use palisade_config::{AuthenticationConfig, RoleAuth};

use super::{Sql, SqlError};
use crate::conf::quote::{sql_ident, sql_literal};
use crate::conf::SettingRow;

/// The functions pg_rewind needs, granted to a dedicated rewind user.
const REWIND_FUNCTIONS: &[&str] = &[
    "pg_ls_dir(text, boolean, boolean)",
    "pg_stat_file(text, boolean)",
    "pg_read_binary_file(text)",
    "pg_read_binary_file(text, bigint, bigint, boolean)",
];

/// Patroni's role statement: create the role or change it, with
/// `synchronous_commit = local` so it works without synchronous standbys.
pub(crate) fn role_statement(name: &str, password: Option<&str>, options: &[&str]) -> String {
    let mut opts: Vec<String> = options.iter().map(|o| o.to_uppercase()).collect();
    if !opts.iter().any(|o| o == "LOGIN" || o == "NOLOGIN") {
        opts.push("LOGIN".into());
    }
    if let Some(pw) = password.filter(|p| !p.is_empty()) {
        opts.push("PASSWORD".into());
        opts.push(sql_literal(pw));
    }
    format!(
        "DO $$\nBEGIN\n    SET local synchronous_commit = 'local';\n    PERFORM * FROM pg_catalog.pg_authid WHERE rolname = {lit};\n    \
         IF FOUND THEN\n        ALTER ROLE {ident} WITH {opts};\n    ELSE\n        CREATE ROLE {ident} WITH {opts};\n    END IF;\nEND;$$",
        lit = sql_literal(name),
        ident = sql_ident(name),
        opts = opts.join(" ")
    )
}

impl Sql {
    /// Create a role or update it (Patroni's `create_or_update_role`): the
    /// statement is kept out of the server log (`log_statement`,
    /// `pg_stat_statements`, `pgaudit` are switched off around it) because
    /// it carries a password.
    pub async fn create_or_update_role(
        &self,
        name: &str,
        password: Option<&str>,
        options: &[&str],
    ) -> Result<(), SqlError> {
        self.execute(
            "SET log_statement TO none; SET log_min_duration_statement TO -1; SET log_min_error_statement TO 'log'; \
             SET pg_stat_statements.track_utility TO 'off'; SET pgaudit.log TO none",
        )
        .await?;
        let result = self.execute(&role_statement(name, password, options)).await;
        let reset = self
            .execute(
                "RESET log_min_error_statement; RESET log_min_duration_statement; RESET log_statement; \
                 RESET pg_stat_statements.track_utility; RESET pgaudit.log",
            )
            .await;
        result.and(reset)
    }

    /// The roles Patroni's `post_bootstrap` creates after the superuser: the
    /// replication user (`REPLICATION LOGIN`) and, when it is not the
    /// superuser, the rewind user with EXECUTE on the functions pg_rewind
    /// uses.
    pub async fn create_replication_and_rewind_roles(&self, auth: &AuthenticationConfig) -> Result<(), SqlError> {
        let rep = &auth.replication;
        self.create_or_update_role(&rep.username, rep.password.as_deref(), &["REPLICATION"]).await?;
        if let Some(rewind) = auth.rewind.as_ref().filter(|r| !same_role(r, &auth.superuser)) {
            self.create_or_update_role(&rewind.username, rewind.password.as_deref(), &[]).await?;
            for f in REWIND_FUNCTIONS {
                self.execute(&format!(
                    "DO $$\nBEGIN\n    SET local synchronous_commit = 'local';\n    GRANT EXECUTE ON function pg_catalog.{f} TO {};\nEND;$$",
                    sql_ident(&rewind.username)
                ))
                .await?;
            }
        }
        Ok(())
    }

    /// `pg_settings` rows for `names` (case-insensitive).
    pub async fn settings(&self, names: &[String]) -> Result<Vec<SettingRow>, SqlError> {
        let lower: Vec<String> = names.iter().map(|n| n.to_lowercase()).collect();
        let rows = self
            .run(|c| async move {
                c.query(
                    "SELECT name, setting, unit, vartype, context, sourcefile FROM pg_catalog.pg_settings \
                     WHERE pg_catalog.lower(name) = ANY($1)",
                    &[&lower],
                )
                .await
            })
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SettingRow {
                    name: r.try_get(0).map_err(SqlError::Query)?,
                    setting: r.try_get::<_, Option<String>>(1).map_err(SqlError::Query)?.unwrap_or_default(),
                    unit: r.try_get(2).map_err(SqlError::Query)?,
                    vartype: r.try_get(3).map_err(SqlError::Query)?,
                    context: r.try_get(4).map_err(SqlError::Query)?,
                    sourcefile: r.try_get(5).map_err(SqlError::Query)?,
                })
            })
            .collect()
    }

    /// `current_setting(name)`.
    pub async fn current_setting(&self, name: &str) -> Result<String, SqlError> {
        let name = name.to_string();
        let row =
            self.run(|c| async move { c.query_one("SELECT pg_catalog.current_setting($1)", &[&name]).await }).await?;
        row.try_get(0).map_err(SqlError::Query)
    }

    pub async fn is_in_recovery(&self) -> Result<bool, SqlError> {
        let row = self.run(|c| async move { c.query_one("SELECT pg_catalog.pg_is_in_recovery()", &[]).await }).await?;
        row.try_get(0).map_err(SqlError::Query)
    }

    /// `pg_reload_conf()`.
    pub async fn reload_conf(&self) -> Result<(), SqlError> {
        self.execute("SELECT pg_catalog.pg_reload_conf()").await
    }

    /// `pg_promote(wait, wait_seconds)`: `Ok(true)` when promoted (or
    /// signalled, without waiting).
    pub async fn promote(&self, wait: bool, wait_seconds: u32) -> Result<bool, SqlError> {
        let target = self.target();
        let client = target.connect(Duration::ZERO).await?;
        let limit = Duration::from_secs(u64::from(wait_seconds) + 5);
        let wait_seconds = i32::try_from(wait_seconds).unwrap_or(i32::MAX);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&wait, &wait_seconds];
        let query = client.query_one("SELECT pg_catalog.pg_promote($1, $2)", &params);
        match tokio::time::timeout(limit, query).await {
            Ok(Ok(row)) => row.try_get(0).map_err(SqlError::Query),
            Ok(Err(e)) => Err(SqlError::Query(e)),
            Err(_) => Err(SqlError::QueryTimeout(limit)),
        }
    }

    /// `CHECKPOINT` on a connection of its own without a statement timeout
    /// (Patroni's `checkpoint()`), connecting within `connect_timeout`.
    pub async fn checkpoint(&self, connect_timeout: Option<Duration>) -> Result<(), SqlError> {
        let mut target = self.target();
        if let Some(t) = connect_timeout {
            target.connect_timeout = t;
        }
        let client = target.connect(Duration::ZERO).await?;
        client.batch_execute("CHECKPOINT").await.map_err(SqlError::Query)
    }
}

fn same_role(a: &RoleAuth, b: &RoleAuth) -> bool {
    a.username == b.username && a.password == b.password && a.ssl == b.ssl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_statements() {
        assert_eq!(
            role_statement("replicator", Some("it's"), &["replication"]),
            "DO $$\nBEGIN\n    SET local synchronous_commit = 'local';\n    PERFORM * FROM pg_catalog.pg_authid WHERE rolname = 'replicator';\n    \
             IF FOUND THEN\n        ALTER ROLE \"replicator\" WITH REPLICATION LOGIN PASSWORD 'it''s';\n    ELSE\n        \
             CREATE ROLE \"replicator\" WITH REPLICATION LOGIN PASSWORD 'it''s';\n    END IF;\nEND;$$"
        );
        let s = role_statement("nologin", None, &["NOLOGIN"]);
        assert!(s.contains("WITH NOLOGIN;"), "{s}");
        assert!(!s.contains("PASSWORD"));
    }
}
