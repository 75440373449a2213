//! Reading a request body within its limit, inflating gzip (npm gzips some bodies) on the way.
//! Bodies arrive before anyone is authenticated, so a request without a valid token may send only
//! [`ANONYMOUS_BODY_BYTES`], and inflating stops at the limit: a 65 KB gzip bomb is inflated no
//! further than that. What is left of a refused body is read, never inflated, by
//! [`super::drain`], so that the client sees the 413.

use std::io::Write;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use flate2::write::GzDecoder;
use http_body_util::BodyExt;

use crate::error::ApiError;

/// The most a request without a valid token (logins, device codes) may send, after inflation.
pub const ANONYMOUS_BODY_BYTES: usize = 64 * 1024;

/// Request extension: the request carries a valid token, so its body may be as large as
/// `PACKR_MAX_BODY_BYTES`. Set by the authenticating extractors, which run before the body is read.
#[derive(Clone, Copy, Debug)]
pub struct TokenChecked;

/// The limit of one request's body, and what to tell a client past it.
#[derive(Clone, Copy, Debug)]
struct Limit {
    bytes: usize,
    token_checked: bool,
}

impl Limit {
    fn of(request: &Request, max_body_bytes: usize) -> Self {
        let token_checked = request.extensions().get::<TokenChecked>().is_some();
        let bytes = if token_checked {
            max_body_bytes
        } else {
            ANONYMOUS_BODY_BYTES.min(max_body_bytes)
        };
        Self {
            bytes,
            token_checked,
        }
    }

    fn exceeded(self) -> ApiError {
        let message = if self.token_checked {
            format!(
                "request entity too large: the limit is {} bytes (PACKR_MAX_BODY_BYTES)",
                self.bytes
            )
        } else {
            format!(
                "request entity too large: a request without a token may send at most {} bytes",
                self.bytes
            )
        };
        ApiError::user(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }
}

/// Reads the whole body, inflated: up to `PACKR_MAX_BODY_BYTES` (`max_body_bytes`) after a valid
/// token, else up to [`ANONYMOUS_BODY_BYTES`]; past the limit, a 413.
pub async fn read(request: Request, max_body_bytes: usize) -> Result<Bytes, ApiError> {
    let limit = Limit::of(&request, max_body_bytes);
    let gzip = is_gzip(request.headers())?;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if !gzip && declared.is_some_and(|declared| declared > limit.bytes) {
        return Err(limit.exceeded());
    }
    let mut body = request.into_body();
    // A declared length (checked against the limit above) sizes the buffer once, so a publish of
    // megabytes is not copied again at every doubling.
    let expected = if gzip { 0 } else { declared.unwrap_or(0) };
    let mut sink = Sink::new(limit.bytes, gzip, expected);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            ApiError::bad_request(
                "bad_body",
                format!("the request body could not be read: {err}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        sink.write(&data).map_err(|err| err.into_api(limit))?;
    }
    sink.finish().map_err(|err| err.into_api(limit))
}

/// Whether the body is gzip-compressed; an encoding Packr cannot decode is a 415.
fn is_gzip(headers: &HeaderMap) -> Result<bool, ApiError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(false);
    };
    let value = value.to_str().unwrap_or_default().trim();
    if value.eq_ignore_ascii_case("gzip") || value.eq_ignore_ascii_case("x-gzip") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("identity") {
        Ok(false)
    } else {
        Err(ApiError::user(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!(
                "Content-Encoding `{value}` is not supported: send the body plain or gzip-compressed"
            ),
        ))
    }
}

/// A buffer that refuses to grow past its limit.
struct Capped {
    bytes: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + data.len() > self.limit {
            self.exceeded = true;
            return Err(std::io::Error::other("request body over its limit"));
        }
        self.bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where the body goes as it arrives: into the buffer, or through a gzip decoder into it.
enum Sink {
    Plain(Capped),
    Gzip(Box<GzDecoder<Capped>>),
}

enum SinkError {
    TooLarge,
    Corrupt(std::io::Error),
}

impl SinkError {
    fn into_api(self, limit: Limit) -> ApiError {
        match self {
            Self::TooLarge => limit.exceeded(),
            Self::Corrupt(err) => ApiError::bad_request(
                "bad_body",
                format!("the request body is not valid gzip: {err}"),
            ),
        }
    }
}

impl Sink {
    fn new(limit: usize, gzip: bool, expected: usize) -> Self {
        let buffer = Capped {
            bytes: Vec::with_capacity(expected.min(limit)),
            limit,
            exceeded: false,
        };
        if gzip {
            Self::Gzip(Box::new(GzDecoder::new(buffer)))
        } else {
            Self::Plain(buffer)
        }
    }

    fn write(&mut self, data: &[u8]) -> Result<(), SinkError> {
        match self {
            Self::Plain(buffer) => buffer.write_all(data).map_err(|_| SinkError::TooLarge),
            Self::Gzip(decoder) => decoder.write_all(data).map_err(|err| {
                if decoder.get_ref().exceeded {
                    SinkError::TooLarge
                } else {
                    SinkError::Corrupt(err)
                }
            }),
        }
    }

    fn finish(self) -> Result<Bytes, SinkError> {
        let buffer = match self {
            Self::Plain(buffer) => buffer,
            Self::Gzip(mut decoder) => match decoder.try_finish() {
                Ok(()) => decoder.finish().map_err(SinkError::Corrupt)?,
                Err(_) if decoder.get_ref().exceeded => return Err(SinkError::TooLarge),
                Err(err) => return Err(SinkError::Corrupt(err)),
            },
        };
        Ok(Bytes::from(buffer.bytes))
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::response::IntoResponse;

    use super::*;

    fn request(body: &'static [u8], token: bool) -> Request {
        let mut request = Request::new(Body::from(body));
        if token {
            request.extensions_mut().insert(TokenChecked);
        }
        request
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        let bytes = read(request(b"{\"a\":1}", false), 1024).await.unwrap();
        assert_eq!(bytes.as_ref(), b"{\"a\":1}");
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn gzip_request(body: Vec<u8>, token: bool) -> Request {
        let mut request = Request::new(Body::from(body));
        request
            .headers_mut()
            .insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        if token {
            request.extensions_mut().insert(TokenChecked);
        }
        request
    }

    #[tokio::test]
    async fn a_gzip_body_is_inflated_up_to_the_limit_only() {
        let json = b"{\"name\":\"left-pad\"}";
        let bytes = read(gzip_request(gzip(json), false), 1 << 20)
            .await
            .unwrap();
        assert_eq!(bytes.as_ref(), json);
        let bomb = gzip(&vec![b'0'; 8 << 20]);
        let refused = read(gzip_request(bomb.clone(), false), 16 << 20)
            .await
            .unwrap_err();
        assert_eq!(
            refused.into_response().status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            read(gzip_request(bomb, true), 16 << 20)
                .await
                .unwrap()
                .len(),
            8 << 20
        );
    }

    #[tokio::test]
    async fn broken_gzip_and_unknown_encodings_are_client_errors() {
        let refused = read(gzip_request(b"not gzip".to_vec(), false), 1024)
            .await
            .unwrap_err();
        assert_eq!(refused.into_response().status(), StatusCode::BAD_REQUEST);
        let mut request = Request::new(Body::from("x"));
        request
            .headers_mut()
            .insert(header::CONTENT_ENCODING, "br".parse().unwrap());
        let refused = read(request, 1024).await.unwrap_err();
        assert_eq!(
            refused.into_response().status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }

    #[tokio::test]
    async fn without_a_token_the_limit_is_the_anonymous_one() {
        let big: &'static [u8] = Box::leak(vec![b' '; ANONYMOUS_BODY_BYTES + 1].into_boxed_slice());
        let refused = read(request(big, false), 1 << 20).await.unwrap_err();
        assert_eq!(
            refused.into_response().status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert!(read(request(big, true), 1 << 20).await.is_ok());
        let refused = read(request(big, true), 1024).await.unwrap_err();
        assert_eq!(
            refused.into_response().status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }
}
