//! The few primitives every store method is written on, once for both engines: [`Store::query`],
//! [`Store::execute`] and [`Store::transaction`]. SQL is written in SQLite's `?N` placeholder
//! syntax and translated to PostgreSQL's `$N` by [`to_pg`]; parameters and columns are [`Val`]s.

use std::error::Error;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, ValueRef};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use super::{Backend, Store, StoreError, StoreFailure};

/// A parameter or a column: the four kinds of value the store reads and writes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl Val {
    fn kind(&self) -> &'static str {
        match self {
            Val::Null => "NULL",
            Val::Int(_) => "an integer",
            Val::Real(_) => "a number",
            Val::Text(_) => "text",
        }
    }
}

impl From<&str> for Val {
    fn from(v: &str) -> Self {
        Val::Text(v.to_owned())
    }
}
impl From<String> for Val {
    fn from(v: String) -> Self {
        Val::Text(v)
    }
}
impl From<&String> for Val {
    fn from(v: &String) -> Self {
        Val::Text(v.clone())
    }
}
impl From<i64> for Val {
    fn from(v: i64) -> Self {
        Val::Int(v)
    }
}
impl From<u32> for Val {
    fn from(v: u32) -> Self {
        Val::Int(v.into())
    }
}
/// Counts beyond `i64::MAX` are stored as `i64::MAX` (both engines store signed 64-bit integers).
impl From<u64> for Val {
    fn from(v: u64) -> Self {
        Val::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<usize> for Val {
    fn from(v: usize) -> Self {
        Val::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<f64> for Val {
    fn from(v: f64) -> Self {
        Val::Real(v)
    }
}
impl<T: Into<Val>> From<Option<T>> for Val {
    fn from(v: Option<T>) -> Self {
        v.map_or(Val::Null, Into::into)
    }
}

/// `vals![a, b, …]`: the parameters of one statement.
macro_rules! vals {
    ($($v:expr),* $(,)?) => { vec![$($crate::store::sql::Val::from($v)),*] };
}
pub(crate) use vals;

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Val::Null => ValueRef::Null,
            Val::Int(i) => ValueRef::Integer(*i),
            Val::Real(f) => ValueRef::Real(*f),
            Val::Text(s) => ValueRef::Text(s.as_bytes()),
        }))
    }
}

/// Sent as the type PostgreSQL inferred for the parameter; a value that does not fit it (text
/// for an integer column, an integer too large for INT4) is an error, never a panic.
impl ToSql for Val {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match (self, ty) {
            (Val::Null, _) => Ok(IsNull::Yes),
            (Val::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Val::Int(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Val::Int(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            (Val::Int(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Val::Int(i), &Type::FLOAT4) => (*i as f32).to_sql(ty, out),
            (Val::Real(f), &Type::FLOAT8) => f.to_sql(ty, out),
            (Val::Real(f), &Type::FLOAT4) => (*f as f32).to_sql(ty, out),
            (Val::Text(s), &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME | &Type::UNKNOWN) => {
                s.as_str().to_sql(ty, out)
            }
            (v, ty) => Err(format!("{} cannot be sent as a parameter of type {ty}", v.kind()).into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Read as the kind its PostgreSQL type is; a type the store never uses is an error.
impl<'a> FromSql<'a> for Val {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(match *ty {
            Type::INT8 => Val::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Val::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Val::Int(i16::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Val::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Val::Real(f32::from_sql(ty, raw)?.into()),
            Type::BOOL => Val::Int(bool::from_sql(ty, raw)?.into()),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                Val::Text(<&str>::from_sql(ty, raw)?.to_owned())
            }
            _ => return Err(format!("a column of type {ty} cannot be read").into()),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Val::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// One row read back, with typed getters that say what they found instead of panicking.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row(pub(crate) Vec<Val>);

impl Row {
    fn at(&self, i: usize) -> Result<&Val, StoreFailure> {
        self.0
            .get(i)
            .ok_or_else(|| StoreFailure::Value(format!("column {i} is missing (the row has {})", self.0.len())))
    }

    fn wrong(&self, i: usize, expected: &str) -> StoreFailure {
        let found = self.0.get(i).map_or("nothing", Val::kind);
        StoreFailure::Value(format!("column {i}: expected {expected}, found {found}"))
    }

    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<String>, StoreFailure> {
        match self.at(i)? {
            Val::Null => Ok(None),
            Val::Text(s) => Ok(Some(s.clone())),
            _ => Err(self.wrong(i, "text")),
        }
    }

    pub(crate) fn text(&self, i: usize) -> Result<String, StoreFailure> {
        self.opt_text(i)?.ok_or_else(|| self.wrong(i, "text"))
    }

    pub(crate) fn int(&self, i: usize) -> Result<i64, StoreFailure> {
        match self.at(i)? {
            Val::Int(n) => Ok(*n),
            _ => Err(self.wrong(i, "an integer")),
        }
    }

    pub(crate) fn u64(&self, i: usize) -> Result<u64, StoreFailure> {
        u64::try_from(self.int(i)?).map_err(|_| self.wrong(i, "a count (0 or more)"))
    }

    pub(crate) fn u32(&self, i: usize) -> Result<u32, StoreFailure> {
        u32::try_from(self.int(i)?).map_err(|_| self.wrong(i, "a 32-bit count"))
    }

    /// A number; an integer is read as one too (SQLite may hand back `12` for `12.0`).
    pub(crate) fn opt_real(&self, i: usize) -> Result<Option<f64>, StoreFailure> {
        match self.at(i)? {
            Val::Null => Ok(None),
            Val::Real(f) => Ok(Some(*f)),
            Val::Int(n) => Ok(Some(*n as f64)),
            Val::Text(_) => Err(self.wrong(i, "a number")),
        }
    }
}

/// The `WHERE` of a read, with only the conditions that apply: an optional filter written as
/// `(? IS NULL OR col = ?)` keeps the planner from using an index, so a filter that is not
/// asked for is left out instead. Parameters are numbered in the order conditions are added.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    clauses: Vec<String>,
    pub(crate) params: Vec<Val>,
}

impl Filter {
    /// The next parameter's placeholder, for `value`.
    pub(crate) fn param(&mut self, value: impl Into<Val>) -> String {
        self.params.push(value.into());
        format!("?{}", self.params.len())
    }

    /// `condition`, in which each `{}` is one parameter, given in order.
    pub(crate) fn and(&mut self, condition: &str, values: Vec<Val>) -> &mut Self {
        let mut text = String::with_capacity(condition.len() + 8);
        let mut values = values.into_iter();
        let mut parts = condition.split("{}").peekable();
        while let Some(part) = parts.next() {
            text.push_str(part);
            if parts.peek().is_some() {
                let v = values.next().unwrap_or(Val::Null);
                text.push_str(&self.param(v));
            }
        }
        self.clauses.push(text);
        self
    }

    /// `column = value`, when there is a value.
    pub(crate) fn eq(&mut self, column: &str, value: Option<impl Into<Val>>) -> &mut Self {
        if let Some(v) = value {
            self.and(&format!("{column} = {{}}"), vec![v.into()]);
        }
        self
    }

    /// ` WHERE a AND b`, or nothing.
    pub(crate) fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }
}

/// Statements made one at a time, each knowing what the one before changed
/// ([`Store::transaction_for`]).
pub(crate) trait StatementSource: Send + 'static {
    /// The next statement, or `None` when the work is done.
    fn next(&mut self) -> Option<(String, Vec<Val>)>;
    /// The rows the statement [`next`](StatementSource::next) gave last changed.
    fn done(&mut self, changed: u64);
}

/// One statement of a [`Store::transaction`]: SQL in `?N` syntax and its parameters.
pub(crate) type Statement = (&'static str, Vec<Val>);

/// SQLite's `?N` placeholders as PostgreSQL's `$N`. Quoted text (`'…'`, `"…"`, with `''` inside)
/// and comments (`-- …`, `/* … */`) are copied untouched. PostgreSQL's `E'…'` strings, where a
/// backslash escapes a quote, are not recognised: the store's SQL does not use them.
pub(crate) fn to_pg(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        match c {
            '\'' | '"' => {
                for d in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut last = ' ';
                for d in chars.by_ref() {
                    out.push(d);
                    if last == '*' && d == '/' {
                        break;
                    }
                    last = d;
                }
            }
            '?' if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.pop();
                out.push('$');
            }
            _ => {}
        }
    }
    out
}

/// The message of a PostgreSQL error with its causes: tokio-postgres says only "db error" on
/// its own, and the server's words (severity, message, detail, hint) are in the cause.
pub(crate) fn pg_message(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text.replace('\n', "; ")
}

impl Store {
    /// Run one query and read back every row.
    pub(crate) async fn query(
        &self,
        action: &'static str,
        sql: &str,
        params: Vec<Val>,
    ) -> Result<Vec<Row>, StoreError> {
        match &self.backend {
            Backend::Sqlite { conn, .. } => {
                let sql = sql.to_owned();
                self.on_sqlite(conn, action, move |c| sqlite_query(c, &sql, &params))
                    .await
            }
            Backend::Postgres { pool, .. } => {
                let run = async {
                    let client = pool.get().await.map_err(StoreFailure::from_pool)?;
                    let stmt = client.prepare_cached(&to_pg(sql)).await?;
                    let rows = client.query(&stmt, &pg_params(&params)).await?;
                    rows.iter().map(pg_row).collect::<Result<Vec<_>, _>>()
                };
                run.await.map_err(|e| self.error(action, e))
            }
        }
    }

    /// [`Store::query`], each row made into a `T` by `f`.
    pub(crate) async fn query_map<T>(
        &self,
        action: &'static str,
        sql: &str,
        params: Vec<Val>,
        f: impl Fn(&Row) -> Result<T, StoreFailure>,
    ) -> Result<Vec<T>, StoreError> {
        let rows = self.query(action, sql, params).await?;
        rows.iter().map(|r| f(r).map_err(|e| self.error(action, e))).collect()
    }

    /// [`Store::query_map`] for a long sequential read (the outbox): on SQLite through the
    /// store's scan connection, so its pages do not evict the hot ones.
    pub(crate) async fn scan_map<T>(
        &self,
        action: &'static str,
        sql: &str,
        params: Vec<Val>,
        f: impl Fn(&Row) -> Result<T, StoreFailure>,
    ) -> Result<Vec<T>, StoreError> {
        let rows = match &self.backend {
            Backend::Sqlite { scan: Some(scan), .. } => {
                let sql = sql.to_owned();
                self.on_sqlite(scan, action, move |c| sqlite_query(c, &sql, &params))
                    .await?
            }
            _ => self.query(action, sql, params).await?,
        };
        rows.iter().map(|r| f(r).map_err(|e| self.error(action, e))).collect()
    }

    /// The first row of [`Store::query`], made into a `T` by `f`.
    pub(crate) async fn query_opt<T>(
        &self,
        action: &'static str,
        sql: &str,
        params: Vec<Val>,
        f: impl Fn(&Row) -> Result<T, StoreFailure>,
    ) -> Result<Option<T>, StoreError> {
        let rows = self.query(action, sql, params).await?;
        rows.first()
            .map(|r| f(r).map_err(|e| self.error(action, e)))
            .transpose()
    }

    /// Run one statement; the number of rows it changed.
    pub(crate) async fn execute(&self, action: &'static str, sql: &str, params: Vec<Val>) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sqlite { conn, .. } => {
                let sql = sql.to_owned();
                self.on_sqlite(conn, action, move |c| {
                    let mut stmt = c.prepare_cached(&sql)?;
                    Ok(stmt.execute(rusqlite::params_from_iter(params.iter()))? as u64)
                })
                .await
            }
            Backend::Postgres { pool, .. } => {
                let run = async {
                    let client = pool.get().await.map_err(StoreFailure::from_pool)?;
                    let stmt = client.prepare_cached(&to_pg(sql)).await?;
                    Ok(client.execute(&stmt, &pg_params(&params)).await?)
                };
                run.await.map_err(|e| self.error(action, e))
            }
        }
    }

    /// Run `statements` in ONE transaction: all of them, or (on any error) none. The number of
    /// rows each changed.
    pub(crate) async fn transaction(
        &self,
        action: &'static str,
        statements: Vec<Statement>,
    ) -> Result<Vec<u64>, StoreError> {
        match &self.backend {
            Backend::Sqlite { conn, .. } => {
                self.on_sqlite(conn, action, move |c| {
                    let tx = c.transaction()?;
                    let mut counts = Vec::with_capacity(statements.len());
                    for (sql, params) in &statements {
                        let mut stmt = tx.prepare_cached(sql)?;
                        counts.push(stmt.execute(rusqlite::params_from_iter(params.iter()))? as u64);
                    }
                    tx.commit()?;
                    Ok(counts)
                })
                .await
            }
            Backend::Postgres { pool, .. } => {
                let run = async {
                    let mut client = pool.get().await.map_err(StoreFailure::from_pool)?;
                    // Dropped without a commit (an error below), it rolls back.
                    let tx = client.transaction().await?;
                    let mut counts = Vec::with_capacity(statements.len());
                    for (sql, params) in &statements {
                        let stmt = tx.prepare_cached(&to_pg(sql)).await?;
                        counts.push(tx.execute(&stmt, &pg_params(params)).await?);
                    }
                    tx.commit().await?;
                    Ok(counts)
                };
                run.await.map_err(|e| self.error(action, e))
            }
        }
    }

    /// Run the statements `source` gives, one after another, in ONE transaction until it has
    /// none left or `budget` has passed (after at least one), then commit: long work in short
    /// transactions, so no writer waits long. `source` is handed back for the next call.
    pub(crate) async fn transaction_for<S: StatementSource>(
        &self,
        action: &'static str,
        budget: std::time::Duration,
        mut source: S,
    ) -> Result<S, StoreError> {
        match &self.backend {
            Backend::Sqlite { conn, .. } => {
                self.on_sqlite(conn, action, move |c| {
                    let started = std::time::Instant::now();
                    let tx = c.transaction()?;
                    while let Some((sql, params)) = source.next() {
                        let mut stmt = tx.prepare_cached(&sql)?;
                        source.done(stmt.execute(rusqlite::params_from_iter(params.iter()))? as u64);
                        if started.elapsed() >= budget {
                            break;
                        }
                    }
                    tx.commit()?;
                    Ok(source)
                })
                .await
            }
            Backend::Postgres { pool, .. } => {
                let run = async {
                    let started = std::time::Instant::now();
                    let mut client = pool.get().await.map_err(StoreFailure::from_pool)?;
                    let tx = client.transaction().await?;
                    while let Some((sql, params)) = source.next() {
                        let stmt = tx.prepare_cached(&to_pg(&sql)).await?;
                        source.done(tx.execute(&stmt, &pg_params(&params)).await?);
                        if started.elapsed() >= budget {
                            break;
                        }
                    }
                    tx.commit().await?;
                    Ok(source)
                };
                run.await.map_err(|e| self.error(action, e))
            }
        }
    }

    /// Run several statements without parameters (`;` between them) in ONE transaction.
    pub(crate) async fn batch(&self, action: &'static str, sql: &'static str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite { conn, .. } => {
                self.on_sqlite(conn, action, move |c| {
                    let tx = c.transaction()?;
                    tx.execute_batch(sql)?;
                    tx.commit()?;
                    Ok(())
                })
                .await
            }
            Backend::Postgres { pool, .. } => {
                let run = async {
                    let mut client = pool.get().await.map_err(StoreFailure::from_pool)?;
                    let tx = client.transaction().await?;
                    tx.batch_execute(sql).await?;
                    tx.commit().await?;
                    Ok(())
                };
                run.await.map_err(|e| self.error(action, e))
            }
        }
    }

    /// The engine's plan for `sql`, one line per step (tests pin that hot reads use an index).
    /// PostgreSQL is told to avoid sequential scans, bitmap scans and sorts where it can, as it
    /// does on a big table with a LIMIT: on the few rows of a test it would rather read the
    /// table or sort, whatever indexes there are. What it still cannot avoid shows.
    #[cfg(test)]
    pub(crate) async fn explain(&self, sql: &str, params: Vec<Val>) -> Result<String, StoreError> {
        match &self.backend {
            Backend::Sqlite { .. } => {
                let rows = self
                    .query("explaining", &format!("EXPLAIN QUERY PLAN {sql}"), params)
                    .await?;
                Ok(rows
                    .iter()
                    .filter_map(|r| r.text(3).ok())
                    .collect::<Vec<_>>()
                    .join("\n"))
            }
            Backend::Postgres { pool, .. } => {
                let run = async {
                    let mut client = pool.get().await.map_err(StoreFailure::from_pool)?;
                    let tx = client.transaction().await?;
                    tx.batch_execute(
                        "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off",
                    )
                    .await?;
                    let stmt = tx.prepare(&format!("EXPLAIN {}", to_pg(sql))).await?;
                    let rows = tx.query(&stmt, &pg_params(&params)).await?;
                    let lines: Vec<String> = rows.iter().filter_map(|r| r.try_get::<_, String>(0).ok()).collect();
                    tx.rollback().await?;
                    Ok(lines.join("\n"))
                };
                run.await.map_err(|e| self.error("explaining", e))
            }
        }
    }

    /// Run `f` on the SQLite connection in tokio's blocking pool.
    pub(super) async fn on_sqlite<R, F>(
        &self,
        conn: &Arc<Mutex<Connection>>,
        action: &'static str,
        f: F,
    ) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreFailure> + Send + 'static,
    {
        let conn = conn.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await;
        match joined {
            Ok(r) => r.map_err(|e| self.error(action, e)),
            Err(e) => Err(self.error(action, StoreFailure::Task(e.to_string()))),
        }
    }
}

fn sqlite_query(c: &mut Connection, sql: &str, params: &[Val]) -> Result<Vec<Row>, StoreFailure> {
    let mut stmt = c.prepare_cached(sql)?;
    let n = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut row = Vec::with_capacity(n);
        for i in 0..n {
            row.push(match r.get_ref(i)? {
                ValueRef::Null => Val::Null,
                ValueRef::Integer(n) => Val::Int(n),
                ValueRef::Real(f) => Val::Real(f),
                ValueRef::Text(t) => Val::Text(
                    String::from_utf8(t.to_vec())
                        .map_err(|_| StoreFailure::Value(format!("column {i} is not UTF-8 text")))?,
                ),
                ValueRef::Blob(_) => return Err(StoreFailure::Value(format!("column {i} is a blob"))),
            });
        }
        out.push(Row(row));
    }
    Ok(out)
}

fn pg_params(params: &[Val]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

fn pg_row(r: &tokio_postgres::Row) -> Result<Row, StoreFailure> {
    (0..r.len())
        .map(|i| r.try_get::<_, Val>(i).map_err(StoreFailure::from))
        .collect::<Result<Vec<_>, _>>()
        .map(Row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_quotes_and_comments() {
        assert_eq!(
            to_pg("SELECT a FROM t WHERE (?1 IS NULL OR a = ?1) AND b LIKE ?2 ESCAPE '\\' LIMIT ?10"),
            "SELECT a FROM t WHERE ($1 IS NULL OR a = $1) AND b LIKE $2 ESCAPE '\\' LIMIT $10"
        );
        assert_eq!(
            to_pg("SELECT '?1', 'it''s ?2', \"col?3\", ?4 -- ?5\n, ?6 /* ?7 */ ?8"),
            "SELECT '?1', 'it''s ?2', \"col?3\", $4 -- ?5\n, $6 /* ?7 */ $8"
        );
        assert_eq!(to_pg("a ? b ?"), "a ? b ?", "a bare ? is not a numbered placeholder");
        assert_eq!(to_pg("'unterminated ?1"), "'unterminated ?1");
        assert_eq!(to_pg("x - ?1 / ?2"), "x - $1 / $2");
    }

    #[test]
    fn a_filter_holds_only_what_was_asked_numbered_in_order() {
        let mut f = Filter::default();
        f.eq("tenant", None::<&str>).eq("slug", Some("pp_vap_count"));
        f.and("(at < {} OR (at = {} AND id < {}))", vals!["t", "t", 5i64]);
        assert_eq!(f.sql(), " WHERE slug = ?1 AND (at < ?2 OR (at = ?3 AND id < ?4))");
        assert_eq!(f.params.len(), 4);
        let limit = f.param(10u32);
        assert_eq!(limit, "?5");
        assert_eq!(Filter::default().sql(), "");
    }

    #[test]
    fn a_wrong_type_is_an_error_never_a_panic() {
        let row = Row(vec![Val::Text("x".into()), Val::Int(-1), Val::Null, Val::Real(1.5)]);
        assert_eq!(row.text(0).unwrap(), "x");
        assert!(
            row.int(0)
                .unwrap_err()
                .to_string()
                .contains("expected an integer, found text")
        );
        assert!(row.u64(1).is_err(), "a negative count");
        assert!(row.text(2).is_err(), "NULL is not text");
        assert_eq!(row.opt_text(2).unwrap(), None);
        assert_eq!(row.opt_real(1).unwrap(), Some(-1.0));
        assert!(row.opt_real(0).is_err());
        assert!(row.int(3).is_err());
        assert!(row.text(9).unwrap_err().to_string().contains("missing"));

        let mut out = BytesMut::new();
        assert!(
            Val::Int(1 << 40).to_sql(&Type::INT4, &mut out).is_err(),
            "too large for INT4"
        );
        assert!(Val::Text("1".into()).to_sql(&Type::INT8, &mut out).is_err());
        assert!(Val::Real(1.0).to_sql(&Type::TEXT, &mut out).is_err());
        assert!(Val::Int(7).to_sql(&Type::FLOAT8, &mut out).is_ok());
        assert!(matches!(Val::Null.to_sql(&Type::INT4, &mut out), Ok(IsNull::Yes)));
        assert!(Val::from_sql(&Type::BYTEA, b"x").is_err());
        assert_eq!(Val::from(u64::MAX), Val::Int(i64::MAX));
        assert_eq!(Val::from(None::<&str>), Val::Null);
    }
}
