//! A router that remembers what it serves: every resource module registers its routes through
//! [`Routes`], which builds the `axum` router and records each (method, path) beside it. The
//! record is [`super::route_table`]; `tests/api/openapi.rs` proves that it and the OpenAPI
//! document (`super::openapi`) list the same routes, and that the server answers each of them.

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

use super::AppState;

/// One (method, path) the application serves, with the path in the router's own syntax
/// (`/crm/marketing/campaigns/{id}`, the same as OpenAPI's).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    /// `GET`, `POST`, … (a `GET` route also answers `HEAD`, as `axum` does).
    pub method: String,
    pub path: String,
    /// `false` for a route left out of the OpenAPI document on purpose (see
    /// [`Routes::undocumented`]).
    pub documented: bool,
}

/// An `axum` router under construction and the routes it has been given.
#[derive(Clone, Default)]
pub struct Routes {
    router: Router<AppState>,
    table: Vec<Route>,
}

impl Routes {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.on(Method::GET, path, handler)
    }

    pub fn post<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.on(Method::POST, path, handler)
    }

    pub fn put<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.on(Method::PUT, path, handler)
    }

    pub fn delete<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.on(Method::DELETE, path, handler)
    }

    /// A documented route: its handler carries `#[utoipa::path]` and is listed in
    /// `openapi::ApiDoc`.
    pub fn on<H, T>(self, method: Method, path: &str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = filter_of(&method);
        self.add(method, path, on(filter, handler), true)
    }

    /// A documented route whose handler has layers of its own (a larger body limit, say).
    /// `method_router` must serve exactly `method`; the route test sends each recorded
    /// (method, path) to the server and fails on a `405`.
    pub fn layered(
        self,
        method: Method,
        path: &str,
        method_router: MethodRouter<AppState>,
    ) -> Self {
        self.add(method, path, method_router, true)
    }

    /// A route the server serves but the OpenAPI document leaves out on purpose, such as an
    /// HTML page of the dashboard or the trailing-slash twin of a documented route. Say why at
    /// the call site. It is still recorded, so the route test checks that it answers and that
    /// the document does not list it.
    pub fn undocumented<H, T>(self, method: Method, path: &str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = filter_of(&method);
        self.add(method, path, on(filter, handler), false)
    }

    /// Both sets of routes (as `Router::merge`).
    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.table.extend(other.table);
        self
    }

    /// `other`'s routes under `prefix` too (as `Router::nest`): `/api` + `/crm/…`.
    pub fn nest(mut self, prefix: &str, other: Routes) -> Self {
        self.router = self.router.nest(prefix, other.router);
        self.table
            .extend(other.table.into_iter().map(|route| Route {
                path: format!("{prefix}{}", route.path),
                ..route
            }));
        self
    }

    /// What has been registered, sorted.
    pub fn table(&self) -> Vec<Route> {
        let mut table = self.table.clone();
        table.sort();
        table
    }

    pub fn into_router(self) -> Router<AppState> {
        self.router
    }

    fn add(
        mut self,
        method: Method,
        path: &str,
        method_router: MethodRouter<AppState>,
        documented: bool,
    ) -> Self {
        // `Router::route` on a path it already has adds the method to it (and panics on the
        // same method twice, as it should).
        self.router = self.router.route(path, method_router);
        self.table.push(Route {
            method: method.as_str().to_string(),
            path: path.to_string(),
            documented,
        });
        self
    }
}

fn filter_of(method: &Method) -> MethodFilter {
    MethodFilter::try_from(method.clone())
        .unwrap_or_else(|_| panic!("axum cannot route the method {method}"))
}
