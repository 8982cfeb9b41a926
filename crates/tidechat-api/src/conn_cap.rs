//! Open connections per client address, capped on the public routes.
//!
//! Every accepted TCP connection takes a [`Ticket`] (in its connection data,
//! so it is dropped when the connection closes) numbering it among the
//! connections its address holds open. A request on a public,
//! unauthenticated route (the widget API, uploads, `/widget.js`) arriving
//! on a connection numbered past the cap, while the address still holds
//! more than the cap, is answered `429 rate_limited` in the widget's shape
//! and the connection is closed — before its body is read. Authenticated
//! routes are bounded by their keys' rate limits instead, and `/healthz`
//! and `/readyz` always answer. Connections from trusted reverse proxies
//! are not counted (the proxy carries many clients; cap there).
//!
//! A connection that never sends a request head is closed by the head
//! timeout (`TIDECHAT_HEADER_TIMEOUT_SECS`), so it holds its descriptor for
//! at most that long.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;

use crate::error::{ApiError, ErrorKind};

/// Open connections per address.
#[derive(Default)]
pub(crate) struct Counts {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl Counts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a new connection from `ip`.
    pub(crate) fn open(self: &Arc<Self>, ip: IpAddr) -> Ticket {
        let mut open = self.lock();
        let n = open.entry(ip).or_insert(0);
        *n += 1;
        Ticket {
            ip,
            number: *n,
            counts: self.clone(),
        }
    }

    fn current(&self, ip: &IpAddr) -> usize {
        self.lock().get(ip).copied().unwrap_or(0)
    }
}

/// One open connection; dropped with the connection.
pub(crate) struct Ticket {
    ip: IpAddr,
    /// How many connections the address held, this one included, when it
    /// was opened.
    number: usize,
    counts: Arc<Counts>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.counts.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Routes anyone may call without a credential.
fn is_public(path: &str) -> bool {
    path.starts_with("/api/v1/chat/") || path.starts_with("/uploads/") || path == "/widget.js"
}

/// The middleware: refuses public requests on connections past `cap`
/// (0: no cap).
pub(crate) async fn cap_connections(
    cap: usize,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if cap > 0 && is_public(req.path()) {
        let over = req
            .conn_data::<Ticket>()
            .is_some_and(|t| t.number > cap && t.counts.current(&t.ip) > cap);
        if over {
            let error = ApiError::new(
                ErrorKind::RateLimited,
                format!("too many open connections from this address (at most {cap})"),
            )
            .with_retry_after(1);
            let mut res = crate::error::framework_error(req.path(), &error);
            res.head_mut().set_connection_type(ConnectionType::Close);
            return Ok(req.into_response(res).map_into_right_body());
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}
