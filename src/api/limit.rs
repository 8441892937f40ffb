//! Refuses oversized requests with RESOURCE_EXHAUSTED, audited, before any handler runs.
//!
//! tonic's own limit answers OUT_OF_RANGE and never reaches a handler, so it cannot be
//! audited; this layer reads the request body up to the limit instead. Every kring call sends
//! exactly one request message, so buffering it changes nothing else. Only kring's services
//! are buffered: server reflection is a bidirectional stream that a client such as grpcurl
//! keeps open between requests, and waiting for its end would stall it until the server's
//! timeout. Health and reflection keep tonic's own limit.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use tonic::Status;
use tonic::body::Body;
use tonic::metadata::MetadataMap;
use tower::{Layer, Service};

use super::call::Calls;
use super::error::ApiError;

/// The gRPC frame header in front of every message: a compression flag and a length.
const FRAME_HEADER: usize = 5;
/// The path prefix of kring's own services, whose requests this layer limits.
const KRING_SERVICES: &str = "/kring.";

#[derive(Debug, Clone)]
pub struct SizeLimitLayer {
    limit: usize,
    calls: Calls,
}

impl SizeLimitLayer {
    /// `limit` is the largest message, in bytes, that a call may carry.
    pub fn new(limit: usize, calls: Calls) -> SizeLimitLayer {
        SizeLimitLayer { limit, calls }
    }
}

impl<S> Layer<S> for SizeLimitLayer {
    type Service = SizeLimit<S>;
    fn layer(&self, inner: S) -> SizeLimit<S> {
        SizeLimit {
            inner,
            limit: self.limit,
            calls: self.calls.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SizeLimit<S> {
    inner: S,
    limit: usize,
    calls: Calls,
}

impl<S, B> Service<http::Request<Body>> for SizeLimit<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    B: Default + Send + 'static,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !request.uri().path().starts_with(KRING_SERVICES) {
            return Box::pin(inner.call(request));
        }
        let limit = self.limit;
        let calls = self.calls.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            match Limited::new(body, limit + FRAME_HEADER).collect().await {
                Ok(collected) => {
                    let body = Body::new(Full::new(collected.to_bytes()));
                    inner.call(http::Request::from_parts(parts, body)).await
                }
                Err(error) if error.is::<LengthLimitError>() => {
                    let metadata = MetadataMap::from_headers(parts.headers);
                    let error = ApiError::ResourceExhausted(format!(
                        "request: the message exceeds the limit of {limit} bytes"
                    ));
                    Ok(calls.refuse_unrouted(&metadata, error).await.into_http())
                }
                Err(error) => Ok(Status::cancelled(format!("request body: {error}")).into_http()),
            }
        })
    }
}
