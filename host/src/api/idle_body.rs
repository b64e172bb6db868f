//! Request bodies that stall: a body fails once nothing of it has arrived for the
//! connection's idle limit (`SIDECAR_HEADER_TIMEOUT`), so a client that sends a head and
//! then trickles nothing does not hold its connection, task and descriptor for good.
//! hyper bounds the head; this bounds the wait between two parts of the body. A slow
//! upload that keeps sending is never cut.
//!
//! The handler that reads such a body answers 408 (see [`stalled_answer`]), and the connection
//! is closed, the rest of its body unread.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

type BoxError = Box<dyn StdError + Send + Sync>;

/// `inner`, failing with [`Stalled`] when a wait for its next frame lasts `idle`. The
/// wait starts when the reader asks and nothing is there, so time the reader spends
/// between two frames (writing a file) is not held against the client.
pub struct IdleBody<B> {
    inner: B,
    idle: Duration,
    /// Made at the first wait (most bodies arrive with their head), re-armed at each.
    timer: Option<Pin<Box<Sleep>>>,
    /// The last poll found nothing: a wait is under way.
    waiting: bool,
}

impl<B> IdleBody<B> {
    pub fn new(inner: B, idle: Duration) -> Self {
        IdleBody {
            inner,
            idle,
            timer: None,
            waiting: false,
        }
    }
}

/// The error of a body that stalled.
#[derive(Debug)]
pub struct Stalled(Duration);

impl fmt::Display for Stalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the request body stalled: nothing of it arrived for {} s (SIDECAR_HEADER_TIMEOUT)",
            self.0.as_secs()
        )
    }
}

impl StdError for Stalled {}

/// The answer to a request whose body stalled (408, with the envelope), when `error`
/// (a body reader's rejection) comes from one: what every reader of bodies answers.
pub fn stalled_answer(error: &(dyn StdError + 'static)) -> Option<super::ApiError> {
    stalled(error)
        .map(|s| super::ApiError::new(axum::http::StatusCode::REQUEST_TIMEOUT, s.to_string()))
}

/// The [`Stalled`] error somewhere in `error`'s chain of sources, if there is one.
fn stalled<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a Stalled> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(stalled) = e.downcast_ref::<Stalled>() {
            return Some(stalled);
        }
        next = e.source();
    }
    None
}

impl<B> Body for IdleBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let timer = match &mut this.timer {
                    Some(timer) if !this.waiting => {
                        timer.as_mut().reset(Instant::now() + idle);
                        timer
                    }
                    Some(timer) => timer,
                    None => this.timer.insert(Box::pin(tokio::time::sleep(idle))),
                };
                this.waiting = true;
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(Stalled(idle))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use http_body_util::{BodyExt, StreamBody};

    fn trickle(
        gaps_ms: &'static [u64],
    ) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Unpin>
    {
        let stream = futures_util::stream::iter(gaps_ms.iter())
            .then(|gap| async move {
                tokio::time::sleep(Duration::from_millis(*gap)).await;
                Ok(Frame::data(Bytes::from_static(b"x")))
            })
            .boxed();
        StreamBody::new(stream)
    }

    // Real time (tokio's paused clock is a feature not built here), with wide margins.
    #[tokio::test]
    async fn a_body_that_keeps_coming_is_read_whole() {
        let body = IdleBody::new(trickle(&[300, 300, 300, 300]), Duration::from_secs(1));
        let bytes = body.collect().await.expect("not stalled").to_bytes();
        assert_eq!(&bytes[..], b"xxxx");
    }

    /// A reader that takes its time between frames (writing them somewhere) does not
    /// make a prompt client stall.
    #[tokio::test]
    async fn time_the_reader_takes_is_not_the_clients() {
        let mut body = IdleBody::new(trickle(&[0, 0, 0]), Duration::from_millis(300));
        let mut got = 0;
        while let Some(frame) = body.frame().await {
            frame.expect("not stalled");
            got += 1;
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
        assert_eq!(got, 3);
    }

    #[tokio::test]
    async fn a_body_that_stops_fails_as_stalled() {
        let body = IdleBody::new(trickle(&[10, 10, 3000]), Duration::from_secs(1));
        let error = body.collect().await.expect_err("stalled");
        let stalled = stalled(error.as_ref()).expect("a Stalled error");
        assert!(stalled.to_string().contains("1 s"), "{stalled}");
    }
}
