//! The response future of [`SessionService`](crate::SessionService).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::{header, HeaderValue, Response};
use pin_project_lite::pin_project;

use crate::{
    commit::{plan, Outcome, Plan},
    session::Shared,
    Session, SessionError, SharedError,
};

/// The write-back step with the handler's response in it: one allocation,
/// made only by requests that have store calls to make.
type Committing<B> = Pin<Box<dyn Future<Output = Response<B>> + Send>>;

enum Stage<B> {
    Inner(Session),
    Committing(Committing<B>),
    Done,
}

pin_project! {
    /// Response future of [`SessionService`](crate::SessionService): runs the
    /// inner service, then writes the session back. Only a request that
    /// changed the session (or must slide its idle deadline) allocates the
    /// write-back step.
    ///
    /// ```
    /// use sessionware::ResponseFuture;
    /// fn assert_send<T: Send>() {}
    /// assert_send::<ResponseFuture<std::future::Ready<Result<http::Response<String>, ()>>, String>>();
    /// ```
    pub struct ResponseFuture<F, B> {
        #[pin]
        inner: F,
        stage: Stage<B>,
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn new(inner: F, session: Session) -> Self {
        Self { inner, stage: Stage::Inner(session) }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default + Send + 'static,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match std::mem::replace(this.stage, Stage::Done) {
                Stage::Inner(session) => {
                    let res = match this.inner.as_mut().poll(cx) {
                        Poll::Ready(Ok(res)) => res,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => {
                            *this.stage = Stage::Inner(session);
                            return Poll::Pending;
                        }
                    };
                    let shared = &session.inner.shared;
                    match plan(&session) {
                        Plan::Untouched => return Poll::Ready(Ok(res)),
                        Plan::LoadFailed(e) => {
                            return Poll::Ready(Ok(error_response(shared, SessionError::Load(e))));
                        }
                        Plan::Ready(outcome) => return Poll::Ready(Ok(finish(res, outcome, shared))),
                        Plan::Pending(pending) => *this.stage = Stage::Committing(Box::pin(pending.respond(res))),
                    }
                }
                Stage::Committing(mut fut) => {
                    let Poll::Ready(res) = fut.as_mut().poll(cx) else {
                        *this.stage = Stage::Committing(fut);
                        return Poll::Pending;
                    };
                    return Poll::Ready(Ok(res));
                }
                Stage::Done => panic!("ResponseFuture polled after completion"),
            }
        }
    }
}

/// Adds the session headers to the handler's response, or replaces it with
/// the save-error response.
pub(crate) fn finish<B: Default>(mut res: Response<B>, outcome: Outcome, shared: &Shared) -> Response<B> {
    if let Some(err) = outcome.error {
        return error_response(shared, err);
    }
    let headers = res.headers_mut();
    if !varies_on_cookie(headers) {
        headers.append(header::VARY, HeaderValue::from_static("cookie"));
    }
    if let Some(cookie) = outcome.set_cookie {
        match HeaderValue::try_from(cookie) {
            Ok(v) => {
                headers.append(header::SET_COOKIE, v);
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
            // Cookie text is built from validated parts; never expected.
            Err(_) => {
                return error_response(
                    shared,
                    SessionError::Save(crate::StoreError::Codec("invalid cookie header".into())),
                )
            }
        }
    }
    res
}

fn varies_on_cookie(headers: &http::HeaderMap) -> bool {
    headers.get_all(header::VARY).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|p| p.trim().eq_ignore_ascii_case("cookie") || p.trim() == "*"))
            .unwrap_or(false)
    })
}

/// The configured response for a store failure, with the error attached.
pub(crate) fn error_response<B: Default>(shared: &Shared, err: SessionError) -> Response<B> {
    let hook = if matches!(err, SessionError::Load(_) | SessionError::Unavailable) {
        &shared.on_load_error
    } else {
        &shared.on_save_error
    };
    let (mut parts, ()) = hook(&err).into_parts();
    parts.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    parts.extensions.insert(SharedError::from(err));
    Response::from_parts(parts, B::default())
}
