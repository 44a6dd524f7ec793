//! `query` and `dsn`: SQL on a member, printed as patronictl prints
//! psycopg2's results, and a member's connection string.

use std::time::Duration;

use serde_json::{json, Value};

use super::pick::{any_member, role_repr};
use super::ui::{read_password, timestamp, watching};
use crate::ctx::{err, CtlError, Ctx, Result};
use crate::members::Clusters;
use crate::table::{self, Format};
use crate::{pyvalue, CtlRole, Watch};

pub(super) struct QueryArgs {
    pub(super) fmt: Format,
    pub(super) file: Option<std::path::PathBuf>,
    pub(super) password: bool,
    pub(super) username: Option<String>,
    pub(super) role: Option<CtlRole>,
    pub(super) member: Option<String>,
    pub(super) delimiter: String,
    pub(super) command: Option<String>,
    pub(super) dbname: Option<String>,
}

pub(super) async fn query(ctx: &Ctx, name: Option<String>, q: QueryArgs, w: &Watch) -> Result<()> {
    let sql = match (&q.file, &q.command) {
        (Some(_), Some(_)) => return err("--file and --command are mutually exclusive options"),
        (Some(f), None) => std::fs::read_to_string(f).map_err(|e| CtlError(format!("{}: {e}", f.display())))?,
        (None, Some(c)) => c.clone(),
        (None, None) => return err("You need to specify either --command or --file"),
    };
    let password = if q.password { Some(read_password("Password: ")?) } else { std::env::var("PGPASSWORD").ok() };
    let name = ctx.scope(name.as_deref())?;
    let cluster = ctx.clusters(&name).await?;
    watching(w, false, || async {
        let (rows, header) = query_member(&cluster, &q, &sql, password.as_deref()).await?;
        let columns = header.unwrap_or_default();
        print!("{}", table::render(&columns, &rows, &[], q.fmt, "", &q.delimiter));
        Ok(())
    })
    .await
}

/// Run `sql` on the member `q` names, as patronictl's `query_member`: the
/// rows and the header, or one row with the time and what went wrong.
/// psycopg2 returns the last statement's result and patronictl prints its
/// values as Python does; so do we.
async fn query_member(
    cluster: &Clusters,
    q: &QueryArgs,
    sql: &str,
    password: Option<&str>,
) -> Result<(Vec<Vec<Value>>, Option<Vec<String>>)> {
    let fail = |message: String| (vec![vec![json!(timestamp(0)), json!(message.replace('\n', " "))]], None);
    let no_connection = || {
        let message = match (&q.member, q.role) {
            (Some(m), _) => format!("No connection to member {m} is available"),
            (None, Some(r)) => format!("No connection to role '{}' is available", role_repr(r)),
            _ => "No connection is available".to_string(),
        };
        fail(message)
    };
    let Some(member) = any_member(cluster, q.role, q.member.as_deref())? else { return Ok(no_connection()) };
    let Some(url) = member.conn_url().and_then(palisade_model::member::parse_postgres_url) else {
        return Ok(no_connection());
    };
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&url.host).port(url.port).application_name("Patroni ctl").connect_timeout(Duration::from_secs(5));
    cfg.dbname(q.dbname.as_deref().unwrap_or(&url.dbname));
    let user = q.username.clone().or_else(|| std::env::var("PGUSER").ok()).unwrap_or_else(current_user);
    cfg.user(&user);
    if let Some(p) = password {
        cfg.password(p);
    }
    let client = match cfg.connect(tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            client
        }
        Err(e) => return Ok(fail(format!("ERROR, SQLSTATE: {}", connect_error(&e, &url.host, url.port)))),
    };
    if matches!(q.role, Some(CtlRole::Replica | CtlRole::Standby | CtlRole::StandbyLeader | CtlRole::Primary)) {
        let in_recovery = client
            .query_one("SELECT pg_catalog.pg_is_in_recovery()", &[])
            .await
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(true);
        let wanted_recovery = !matches!(q.role, Some(CtlRole::Primary));
        if in_recovery != wanted_recovery {
            return Ok(no_connection());
        }
    }
    // The column types, as psycopg2 learns them: a single statement is
    // prepared first (its errors are the statement's errors); in a script,
    // the last statement is prepared once the script has run, since it
    // may use what the others created.
    let statements = crate::sql::statements(sql);
    let column_types = |st: tokio_postgres::Statement| -> Vec<tokio_postgres::types::Type> {
        st.columns().iter().map(|c| c.type_().clone()).collect()
    };
    let mut types = None;
    if statements.len() == 1 {
        match client.prepare(sql).await {
            Ok(st) => types = Some(column_types(st)),
            Err(e) => return Ok(fail(format!("ERROR, SQLSTATE: {}", sqlstate(&e)))),
        }
    }
    match client.simple_query(sql).await {
        Ok(messages) => {
            let mut rows: Vec<Vec<Option<String>>> = Vec::new();
            let mut header: Option<Vec<String>> = None;
            for msg in messages {
                match msg {
                    tokio_postgres::SimpleQueryMessage::RowDescription(cols) => {
                        // A new result set: only the last one is shown.
                        header = Some(cols.iter().map(|c| c.name().to_string()).collect());
                        rows.clear();
                    }
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        if header.is_none() {
                            header = Some(r.columns().iter().map(|c| c.name().to_string()).collect());
                        }
                        rows.push((0..r.len()).map(|i| r.get(i).map(String::from)).collect());
                    }
                    _ => {}
                }
            }
            if let (None, Some(last), Some(_)) = (&types, statements.last().filter(|_| statements.len() > 1), &header) {
                types = client.prepare(last).await.ok().map(column_types);
            }
            let types = types.filter(|t| header.as_ref().is_some_and(|h| h.len() == t.len()));
            Ok((pyvalue::rows_from_text(&rows, types.as_deref()), header))
        }
        Err(e) => Ok(fail(format!("ERROR, SQLSTATE: {}", sqlstate(&e)))),
    }
}

/// libpq's words for a failed connection (psycopg2 gives no SQLSTATE for
/// it, so patronictl prints the message).
fn connect_error(e: &tokio_postgres::Error, host: &str, port: u16) -> String {
    use std::error::Error as _;
    let head = format!("connection to server at \"{host}\", port {port} failed: ");
    if let Some(db) = e.as_db_error() {
        return format!("{head}{}:  {} ", db.severity(), db.message());
    }
    let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
    match io.map(std::io::Error::kind) {
        Some(std::io::ErrorKind::ConnectionRefused) => {
            format!("{head}Connection refused \tIs the server running on that host and accepting TCP/IP connections? ")
        }
        _ => format!("{head}{e} "),
    }
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map_or_else(|| e.to_string().replace('\n', " "), |c| c.code().to_string())
}

fn current_user() -> String {
    std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| {
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        if uid == 0 {
            "root".into()
        } else {
            uid.to_string()
        }
    })
}

pub(super) async fn dsn(ctx: &Ctx, name: Option<String>, role: Option<CtlRole>, member: Option<String>) -> Result<()> {
    let cluster = ctx.clusters(&ctx.scope(name.as_deref())?).await?;
    let m = any_member(&cluster, role, member.as_deref())?.ok_or(CtlError("Can not find a suitable member".into()))?;
    let (host, port) = m.host_port().ok_or(CtlError(format!("member {} has no conn_url", m.name)))?;
    println!("host={host} port={port}");
    Ok(())
}
