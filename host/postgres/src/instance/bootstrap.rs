//! The bootstrap steps Patroni's `Bootstrap` class performs on PostgreSQL.

use std::collections::BTreeMap;

use palisade_config::InitdbOption;

use super::{file_err, lock, ConfigChange, CustomBootstrapMode, PgError, Postgres};
use crate::bootstrap::{run_initdb, run_post_bootstrap, run_script, BootstrapError, CustomBootstrap};
use crate::conf::RecoveryParams;

impl Postgres {
    /// Create the data directory with initdb (`bootstrap.initdb` options,
    /// the superuser's name and password). Start it with
    /// [`Postgres::start`] afterwards.
    pub async fn initdb(&self, options: &[InitdbOption]) -> Result<(), PgError> {
        let s = self.settings();
        run_initdb(&self.binaries(), &self.paths().data_dir, &s.local.authentication.superuser, options).await?;
        Ok(())
    }

    /// Run a custom bootstrap method (Patroni's `_custom_bootstrap`): the
    /// command, then the configuration files restored from their backups,
    /// a leftover `promote` trigger file removed, and the method's
    /// `recovery_conf` set (or the recovery files removed unless
    /// `keep_existing_recovery_conf`). Until [`Postgres::post_bootstrap`],
    /// pg_hba.conf trusts the superuser and replication user locally, so
    /// their passwords can be set. Start it with [`Postgres::start`]
    /// afterwards.
    pub async fn custom_bootstrap(&self, method: &CustomBootstrap) -> Result<(), PgError> {
        tracing::info!("Running custom bootstrap script: {}", method.argv.join(" "));
        let status = run_script(&method.argv, &BTreeMap::new()).await?;
        if !status.success() {
            return Err(BootstrapError::Script { script: method.argv.join(" "), status }.into());
        }
        *lock(&self.custom_bootstrap) =
            Some(CustomBootstrapMode { keep_existing_recovery_conf: method.keep_existing_recovery_conf });
        self.restore_configuration_files()?;
        let paths = self.paths();
        let trigger = self
            .settings()
            .effective
            .recovery_conf
            .get("promote_trigger_file")
            .and_then(|v| v.as_str())
            .map(|t| paths.data_dir.join(t))
            .unwrap_or_else(|| paths.data_dir.join("promote"));
        crate::conf::remove_file_if_exists(&trigger).map_err(file_err("remove", &trigger))?;
        if let Some(map) = &method.recovery_conf {
            self.set_recovery(Some(RecoveryParams::from_map(map))).await?;
        } else if !method.keep_existing_recovery_conf {
            self.set_recovery(None).await?;
        }
        Ok(())
    }

    /// Patroni's `post_bootstrap`, on the freshly started primary: set the
    /// superuser's password, run the `post_bootstrap` script (if any) with
    /// the superuser connection string, create the replication user and
    /// the rewind user. After a custom bootstrap it also ends the temporary
    /// trust rules: pg_hba.conf is rewritten (or restored), the recovery
    /// settings removed; the returned change tells whether a reload or a
    /// restart applies that.
    pub async fn post_bootstrap(&self, script: Option<&str>) -> Result<ConfigChange, PgError> {
        let s = self.settings();
        let auth = &s.local.authentication;
        if let Some(pw) = auth.superuser.password.as_deref().filter(|_| !auth.superuser.username.is_empty()) {
            self.sql.create_or_update_role(&auth.superuser.username, Some(pw), &["SUPERUSER"]).await?;
        }
        if let Some(script) = script.filter(|s| !s.trim().is_empty()) {
            let major = self.require_major()?;
            run_post_bootstrap(script, &self.local_connection(), &self.paths().pgpass, major).await?;
        }
        self.sql.create_replication_and_rewind_roles(auth).await?;
        let was_custom = lock(&self.custom_bootstrap).take().is_some();
        if !was_custom {
            return Ok(ConfigChange::default());
        }
        let paths = self.paths();
        if s.effective.pg_hba.is_empty() {
            crate::conf::remove_file_if_exists(&paths.pg_hba).map_err(file_err("remove", &paths.pg_hba))?;
            self.restore_configuration_files()?;
        }
        let mut change = self.set_recovery(None).await?;
        change.reload_needed = true;
        // The superuser's password changed: reconnect with it.
        self.sql.close().await;
        Ok(change)
    }
}
