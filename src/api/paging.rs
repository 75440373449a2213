//! The paging of the admin listings: `?page=&per_page=`, checked once for every listing.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::error::ApiError;

/// The most items one page of an admin listing holds.
const MAX_PER_PAGE: u32 = 500;
/// The page size when the query names none.
const DEFAULT_PER_PAGE: u32 = 100;

/// Which page of a listing to answer: `page` counts from 0, `per_page` is 1 to 500 (100 unless
/// asked). A `per_page` out of range is a 400 `invalid_page`.
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    /// The page number, from 0.
    pub page: u32,
    /// Items per page.
    pub per_page: u32,
}

impl Paging {
    /// How many items the pages before this one hold.
    pub fn offset(self) -> u32 {
        self.page.saturating_mul(self.per_page)
    }
}

#[derive(Debug, Deserialize)]
struct PagingQuery {
    page: Option<u32>,
    per_page: Option<u32>,
}

impl<S: Send + Sync> FromRequestParts<S> for Paging {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let Query(query) = Query::<PagingQuery>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let per_page = query.per_page.unwrap_or(DEFAULT_PER_PAGE);
        if per_page == 0 || per_page > MAX_PER_PAGE {
            return Err(ApiError::bad_request(
                "invalid_page",
                format!("per_page must be between 1 and {MAX_PER_PAGE}"),
            )
            .into_response());
        }
        Ok(Self {
            page: query.page.unwrap_or(0),
            per_page,
        })
    }
}
