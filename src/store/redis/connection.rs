//! The connection (one server or a cluster): connecting, batches of
//! commands, the server's version, and errors without passwords.

use std::{future::Future, pin::Pin, sync::Arc, task::Poll, time::Duration};

use ::redis::{
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
    Client, Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult, Value,
};

use super::RedisStore;
use crate::store::StoreError;

/// The connection: one server (or a primary with its replicas behind one
/// address) or a Redis Cluster. Both are multiplexed and cheap to clone.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Passwords of the URLs, scrubbed from error messages.
pub(super) type Secrets = Arc<[Box<str>]>;

/// Timeout of one connection attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The error of a URL `redis` cannot parse (the URL itself is never in it).
fn invalid_url(e: &RedisError) -> StoreError {
    StoreError::Backend(format!(
        "the Redis URL is not valid ({:?}): expected redis://[user:password@]host[:port][/db] (rediss:// for TLS, \
         redis+unix:///path for a socket)",
        e.kind()
    ))
}

/// The password of a URL, if it has a non-empty one, and the server's
/// address (`host:port` or a socket path; never the password).
fn password(url: &str) -> Result<(Option<Box<str>>, String), StoreError> {
    let info = url.into_connection_info().map_err(|e| invalid_url(&e))?;
    let address = match &info.addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            crate::error::host_port(host, *port)
        }
        ConnectionAddr::Unix(path) => path.display().to_string(),
    };
    Ok((info.redis.password.filter(|p| !p.is_empty()).map(Box::from), address))
}

/// The error of a failed connection to `address`, with the passwords scrubbed.
fn connect_err(e: &RedisError, address: String, secrets: &[Box<str>]) -> StoreError {
    let mut reason = e.to_string();
    for s in secrets {
        reason = reason.replace(&**s, "<redacted>");
    }
    StoreError::Connect(Box::new(crate::store::ConnectError::new("Redis", address, reason)))
}

/// Connects to one server (see [`RedisStore::connect`]); the connection,
/// and the password of `url` to scrub from errors.
pub(super) async fn single(url: &str) -> Result<(Conn, Secrets), StoreError> {
    let (secret, address) = password(url)?;
    let secrets: Secrets = secret.into_iter().collect();
    let client = Client::open(url).map_err(|e| invalid_url(&e))?;
    // `redis` 0.32 feeds `factor` to an exponential backoff that starts at
    // one second: its default (100) would wait 60 to 120 seconds between
    // the second and later attempts. A factor of 1 retries every 1-2 s.
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_factor(1)
        .set_max_delay(2_000)
        .set_number_of_retries(3);
    let conn =
        ConnectionManager::new_with_config(client, config).await.map_err(|e| connect_err(&e, address, &secrets))?;
    Ok((Conn::Single(conn), secrets))
}

/// Connects to a cluster (see [`RedisStore::connect_cluster`]); the
/// connection, and the passwords of `nodes` to scrub from errors.
pub(super) async fn cluster(nodes: &[&str]) -> Result<(Conn, Secrets), StoreError> {
    if nodes.is_empty() {
        return Err(StoreError::Backend("no redis cluster node given".into()));
    }
    let mut secrets = Vec::new();
    let mut addresses = Vec::new();
    for node in nodes {
        let (secret, address) = password(node)?;
        addresses.push(address);
        if let Some(p) = secret {
            if !secrets.contains(&p) {
                secrets.push(p);
            }
        }
    }
    let secrets: Secrets = secrets.into();
    let client = ClusterClient::builder(nodes.iter().copied())
        .connection_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(|e| StoreError::Backend(format!("invalid redis cluster URLs ({:?})", e.kind())))?;
    let conn = client.get_async_connection().await.map_err(|e| connect_err(&e, addresses.join(", "), &secrets))?;
    Ok((Conn::Cluster(conn), secrets))
}

impl RedisStore {
    /// Sends `cmds` and returns their replies in order, each a result of
    /// its own (an error reply fails its command only): one pipeline on a
    /// single server; on a cluster, where a pipeline cannot span slots, one
    /// command each, all in flight at once.
    pub(super) async fn batch(&self, cmds: Vec<Cmd>) -> Result<Vec<RedisResult<Value>>, StoreError> {
        match &self.conn {
            Conn::Single(_) => {
                let mut pipe = ::redis::pipe();
                for c in cmds {
                    pipe.add_command(c);
                }
                let n = pipe.len();
                let replies = self.conn.clone().req_packed_commands(&pipe, 0, n).await.map_err(|e| self.err(&e))?;
                Ok(replies.into_iter().map(Value::extract_error).collect())
            }
            Conn::Cluster(_) => Ok(join_all(cmds.into_iter().map(|c| {
                let mut conn = self.conn.clone();
                async move { conn.req_packed_command(&c).await.and_then(Value::extract_error) }
            }))
            .await),
        }
    }

    /// Fails unless the server (every primary of a cluster) runs Redis
    /// [`MIN_VERSION`] or newer. A server that refuses `INFO` (an ACL, a
    /// proxy) is let through with a warning: its version is unknown.
    pub(super) async fn check_version(&self) -> Result<(), StoreError> {
        let reply = ::redis::cmd("INFO").arg("server").query_async::<Value>(&mut self.conn.clone()).await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) if matches!(e.kind(), ErrorKind::ResponseError | ErrorKind::ExtensionError) => {
                tracing::warn!(error = %self.err(&e), "the Redis version is unknown (INFO refused); 7.0 or newer is required");
                return Ok(());
            }
            Err(e) => return Err(self.err(&e)),
        };
        let mut infos = Vec::new();
        info_texts(reply, &mut infos);
        check_versions(&infos)
    }

    pub(super) fn err(&self, e: &RedisError) -> StoreError {
        backend(e, &self.secrets)
    }
}

/// The oldest Redis the scripts are tested on; older servers are refused
/// rather than trusted.
const MIN_VERSION: (u32, u32, u32) = (7, 0, 0);

/// The texts of an `INFO` reply: one per server (a cluster answers with a
/// map of node to text).
fn info_texts(reply: Value, out: &mut Vec<String>) {
    match reply {
        Value::BulkString(bytes) => out.push(String::from_utf8_lossy(&bytes).into_owned()),
        Value::VerbatimString { text, .. } | Value::SimpleString(text) => out.push(text),
        Value::Map(pairs) => pairs.into_iter().for_each(|(_, v)| info_texts(v, out)),
        Value::Array(items) => items.into_iter().for_each(|v| info_texts(v, out)),
        _ => {}
    }
}

/// The `redis_version` of an `INFO server` text: as written, and parsed
/// (missing parts count as 0).
fn server_version(info: &str) -> Option<(&str, (u32, u32, u32))> {
    let text = info.lines().find_map(|l| l.strip_prefix("redis_version:"))?.trim();
    let mut parts = text.split('.').map(str::parse::<u32>);
    let major = parts.next()?.ok()?;
    let minor = parts.next().map_or(Ok(0), |p| p).ok()?;
    let patch = parts.next().map_or(Ok(0), |p| p).unwrap_or(0);
    Some((text, (major, minor, patch)))
}

/// Fails when a server of `infos` is older than [`MIN_VERSION`]; an
/// unreadable version only warns.
fn check_versions(infos: &[String]) -> Result<(), StoreError> {
    if infos.is_empty() {
        tracing::warn!("the Redis version is unknown (empty INFO reply); 7.0 or newer is required");
    }
    for info in infos {
        match server_version(info) {
            Some((text, version)) if version < MIN_VERSION => {
                return Err(StoreError::Backend(format!("Redis 7.0 or newer is required (found {text})")));
            }
            Some(_) => {}
            None => tracing::warn!("the Redis version is unknown (no redis_version in INFO); 7.0 or newer is required"),
        }
    }
    Ok(())
}

/// Polls `futures` concurrently on the current task; their outputs in order.
pub(super) async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(v) => *output = Some(v),
                    Poll::Pending => done = false,
                }
            }
        }
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

pub(super) fn backend(e: &RedisError, secrets: &[Box<str>]) -> StoreError {
    let mut text = format!("redis: {e}");
    for s in secrets {
        text = text.replace(&**s, "<redacted>");
    }
    StoreError::Backend(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[tokio::test]
    async fn join_all_keeps_the_order_of_its_futures() {
        let delays = [30u64, 0, 10, 20];
        let out = join_all(delays.iter().map(|&ms| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ms
        }))
        .await;
        assert_eq!(out, delays);
        assert!(join_all(Vec::<std::future::Ready<()>>::new()).await.is_empty());
    }

    #[test]
    fn passwords_are_found_and_scrubbed() {
        let pw = |url: &str| password(url).unwrap().0;
        assert_eq!(pw("redis://:hunter2@10.0.0.1:6379").as_deref(), Some("hunter2"));
        assert_eq!(pw("redis://user:pw@10.0.0.1").as_deref(), Some("pw"));
        assert!(pw("redis://10.0.0.1").is_none());
        assert!(password("no-scheme").is_err());
        // The address never carries the password; IPv6 hosts are bracketed.
        assert_eq!(password("redis://:hunter2@10.0.0.1:6380/2").unwrap().1, "10.0.0.1:6380");
        assert_eq!(password("redis://u:hunter2@[::1]").unwrap().1, "[::1]:6379");
        let Err(StoreError::Backend(text)) = password("redis://:hunter2@host:notaport") else { panic!("invalid") };
        assert!(!text.contains("hunter2") && text.contains("redis://[user:password@]host"), "{text}");
        let e = RedisError::from((::redis::ErrorKind::IoError, "refused", "redis://:hunter2@10.0.0.1".to_string()));
        let StoreError::Backend(text) = backend(&e, &[Box::from("hunter2")]) else { panic!("backend error") };
        assert!(!text.contains("hunter2") && text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn server_versions_are_parsed_and_compared() {
        let info = |v: &str| format!("# Server\r\nredis_version:{v}\r\nredis_mode:standalone\r\n");
        assert_eq!(server_version(&info("7.0.15")), Some(("7.0.15", (7, 0, 15))));
        assert_eq!(server_version(&info("7.2")), Some(("7.2", (7, 2, 0))));
        assert_eq!(server_version(&info("255.255.255")), Some(("255.255.255", (255, 255, 255))));
        assert_eq!(server_version(&info("x.1")), None);
        assert_eq!(server_version("# Server\r\n"), None);
        assert!(check_versions(&[info("7.0.0"), info("8.0.2")]).is_ok());
        assert!(check_versions(&[info("7.4.1")]).is_ok());
        let Err(StoreError::Backend(text)) = check_versions(&[info("7.2.4"), info("6.2.14")]) else {
            panic!("6.2 is too old")
        };
        assert_eq!(text, "Redis 7.0 or newer is required (found 6.2.14)");
        assert!(check_versions(&[info("6.0")]).is_err());
        // Unknown versions are let through (with a warning).
        assert!(check_versions(&[]).is_ok());
        assert!(check_versions(&["# Server\r\n".into()]).is_ok());
        // A cluster answers with a map of node to text.
        let mut texts = Vec::new();
        info_texts(
            Value::Map(vec![(bulk("a:1"), bulk(&info("7.0.1"))), (bulk("b:2"), bulk(&info("6.2.0")))]),
            &mut texts,
        );
        assert_eq!(texts.len(), 2);
        assert!(check_versions(&texts).is_err());
    }
}
