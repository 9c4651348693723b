// The handlers both benchmark packages serve, included with `include!` by
// `benches/rivals/src/lib.rs` and `benches/rival-stores/src/routers.rs`
// (which build against different tower-sessions versions, so they cannot
// share a crate). The including module brings `Router`, `get` and `StatusCode`
// into scope. (It lives in a subfolder so that Cargo does not take it for a
// bench target of the root package.)

/// A short static reply that depends on `n`, so reads cannot be optimised away.
pub fn small(n: u64) -> &'static str {
    match n {
        0 => "0",
        1 => "1",
        2 => "2",
        _ => "many",
    }
}

async fn plain() -> &'static str {
    "ok"
}

/// Generates the four session handlers for one library's `Session` type;
/// the code is the same for both libraries except the renewal call.
macro_rules! handlers {
    ($session:ty, $renew:ident) => {
        /// Reads `n`.
        pub async fn read(s: $session) -> Result<&'static str, StatusCode> {
            let n: Option<u64> = s.get("n").await.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
            Ok(small(n.unwrap_or(0)))
        }

        /// Reads `n` and writes `n + 1`.
        pub async fn write(s: $session) -> Result<&'static str, StatusCode> {
            let n: Option<u64> = s.get("n").await.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
            let n = n.unwrap_or(0);
            s.insert("n", n + 1).await.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
            Ok(small(n))
        }

        /// Inserts `n = 1`.
        pub async fn new(s: $session) -> Result<&'static str, StatusCode> {
            s.insert("n", 1u64).await.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
            Ok("ok")
        }

        /// Gives the session a new ID.
        pub async fn renew(s: $session) -> Result<&'static str, StatusCode> {
            s.$renew().await.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
            Ok("ok")
        }

        /// The five routes, without the layer.
        pub fn routes() -> Router {
            Router::new()
                .route("/plain", get(plain))
                .route("/read", get(read))
                .route("/write", get(write))
                .route("/new", get(new))
                .route("/renew", get(renew))
        }
    };
}
