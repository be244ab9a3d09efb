//! What the gateway answers clients with: an upstream's body streamed through (holding its
//! permits until it ends), or a body made here.

use bytes::Bytes;
use http_body_util::Full;

use crate::body::Tracked;
use crate::upstream::conn::DrivenBody;

/// A response body on its way to the client: streamed from upstream, or made here.
pub type ResponseBody = http_body_util::Either<Tracked<DrivenBody>, Full<Bytes>>;

/// A body made here.
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    http_body_util::Either::Right(Full::new(bytes.into()))
}
