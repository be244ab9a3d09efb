//! A tiny HTTP/1.1 + h2c server loop shared by the testkit servers.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A server running in the background; stops when dropped.
pub struct Running {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Serves `handler` on `addr` (port 0 picks a free port) until the returned handle is dropped.
pub async fn serve<H, F, B>(addr: SocketAddr, handler: H) -> std::io::Result<Running>
where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let handler = Arc::new(handler);
    serve_with(
        addr,
        || true,
        move |req| {
            let answer = handler(req);
            async move { Some(answer.await) }
        },
    )
    .await
}

/// Like [`serve`], but each accepted connection is first shown to `admit`; when it returns
/// false the connection is closed at once. A handler answering `None` closes the connection
/// without a response. Together they make a server that drops connections.
pub async fn serve_with<A, H, F, B>(
    addr: SocketAddr,
    admit: A,
    handler: H,
) -> std::io::Result<Running>
where
    A: Fn() -> bool + Send + Sync + 'static,
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Option<Response<B>>> + Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, mut stop_rx) = watch::channel(false);
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    if !admit() {
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let handler = handler.clone();
                    let mut stop_rx = stop_rx.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req| {
                            let handler = handler.clone();
                            async move {
                                handler(req)
                                    .await
                                    .ok_or_else(|| std::io::Error::other("closing the connection"))
                            }
                        });
                        let builder = auto::Builder::new(TokioExecutor::new());
                        let conn = builder.serve_connection(TokioIo::new(stream), service);
                        tokio::pin!(conn);
                        tokio::select! {
                            _ = conn.as_mut() => {}
                            _ = stop_rx.changed() => {}
                        }
                    });
                }
                _ = stop_rx.changed() => return,
            }
        }
    });
    Ok(Running { addr, stop })
}
