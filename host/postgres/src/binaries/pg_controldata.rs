use std::path::Path;
use std::time::Duration;

use super::{Binaries, CommandError, Env, Invocation, Program};
use crate::controldata::ControlData;

/// `LC_ALL=C pg_controldata <data_dir>`, parsed.
pub async fn pg_controldata(bins: &Binaries, data_dir: &Path) -> Result<ControlData, CommandError> {
    let out = Invocation::new(bins.path(Program::PgControldata), Env::c_locale())
        .arg(data_dir)
        .timeout(Duration::from_secs(60))
        .output()
        .await?
        .success()?;
    ControlData::parse(&out.stdout).map_err(|e| CommandError::Output { program: out.program, message: e.0 })
}
