//! HTTP routes of the API, one module per group, each with its own `routes()`.
//!
//! Every group registers its routes through [`Routes`], which records each method and
//! path it serves. [`table`] is therefore the real route table of the API, and a test
//! compares it with the OpenAPI document: a route added without documentation fails.
//! (The moderators' HTML pages live in `crate::web` and are not part of the API.)

pub mod decisions;
pub mod moderations;
pub mod openapi;
pub mod ops;

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodRouter, get, post};

use crate::state::AppState;

/// A router that remembers its (method, path) pairs.
#[derive(Default)]
pub struct Routes {
    router: Router<AppState>,
    table: Vec<(Method, &'static str)>,
}

impl Routes {
    pub fn new() -> Self {
        Routes::default()
    }

    /// `GET path` served by `handler`.
    pub fn get<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::GET, path, get(handler))
    }

    /// `POST path` served by `handler`.
    pub fn post<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::POST, path, post(handler))
    }

    fn add(mut self, method: Method, path: &'static str, route: MethodRouter<AppState>) -> Self {
        self.table.push((method, path));
        self.router = self.router.route(path, route);
        self
    }

    /// Both groups' routes.
    pub fn merge(mut self, other: Routes) -> Self {
        self.table.extend(other.table);
        self.router = self.router.merge(other.router);
        self
    }
}

fn api() -> Routes {
    Routes::new().merge(moderations::routes()).merge(decisions::routes()).merge(ops::routes()).merge(openapi::routes())
}

/// The API's router.
pub fn router() -> Router<AppState> {
    api().router
}

/// Every (method, path) the API serves, in registration order.
pub fn table() -> Vec<(Method, &'static str)> {
    api().table
}
