//! A small order system speaking kefu's order API (docs/orders-api.md), with a few demo orders
//! in memory: a starting point for a shop's own implementation, and something to point kefu
//! at while trying `orders.backend: http`.
//!
//! ```sh
//! KEFU_ORDERS_SECRET=change-me cargo run --example orders_server
//! ```
//!
//! It checks every request's signature and signs every answer with the helpers of
//! `kefu_orders_http::signing`, refuses a request whose nonce it has seen (a replay), answers
//! verify for unknown orders exactly as for a wrong proof, and remembers cancel and refund
//! answers by their `Idempotency-Key`, so a retried call gets the first call's answer.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use kefu_core::{MemoryOrder, MemoryOrders, Order, OrderChange, OrderStatus, Orders};
use kefu_orders_http::api::{ChangeRequest, ChangeResponse, VerifyRequest};
use kefu_orders_http::signing::{
    sign_response, unix_now, NonceCache, RequestHeaders, IDEMPOTENCY_HEADER, NONCE_HEADER,
    SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The environment variable with the shared secret.
const SECRET_ENV: &str = "KEFU_ORDERS_SECRET";
/// The secret used when the variable is not set: for trying things out only.
const DEMO_SECRET: &str = "demo-secret-change-me";
/// The environment variable with the address to listen on.
const ADDR_ENV: &str = "KEFU_ORDERS_ADDR";

struct Shop {
    secret: Vec<u8>,
    orders: MemoryOrders,
    /// Answers to cancel and refund calls by idempotency key (a real shop keeps these for a
    /// day or so, in its database).
    answered: Mutex<HashMap<String, (u16, Vec<u8>)>>,
    /// Nonces of the last few minutes' requests, to refuse replays.
    nonces: NonceCache,
}

fn demo_orders() -> MemoryOrders {
    let orders = MemoryOrders::new();
    let hour = 3_600_000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut delivered = Order::new("KM2024000001", "Steam 充值卡 ¥100", OrderStatus::Delivered);
    delivered.amount_cents = 10_000;
    delivered.paid_at = Some(now - 2 * hour);
    delivered.delivered_at = Some(now - 2 * hour + 60_000);
    delivered.redeem = Some("Steam → 游戏 → 兑换 Steam 钱包充值码".into());
    orders.insert(MemoryOrder {
        order: Some(delivered),
        keys: vec!["STEAM-AAAA-BBBB-CCCC".into()],
        password: Some("pass1234".into()),
        contacts: vec!["buyer@example.com".into(), "13800138000".into()],
        identities: vec![("terminal".into(), "local".into())],
    });
    let mut paid = Order::new("KM2024000002", "Netflix 1 month", OrderStatus::Paid);
    paid.amount_cents = 3_500;
    paid.paid_at = Some(now - hour);
    paid.delivery_due_at = Some(now + hour);
    orders.insert(MemoryOrder {
        order: Some(paid),
        password: Some("netflix".into()),
        ..MemoryOrder::default()
    });
    let mut unpaid = Order::new(
        "KM2024000003",
        "原神 创世结晶 ×6480",
        OrderStatus::AwaitingPayment,
    );
    unpaid.amount_cents = 64_800;
    orders.insert(MemoryOrder {
        order: Some(unpaid),
        password: Some("genshin".into()),
        ..MemoryOrder::default()
    });
    orders
}

fn json(status: u16, value: &impl serde::Serialize) -> (u16, Vec<u8>) {
    (status, serde_json::to_vec(value).unwrap_or_default())
}

fn error(status: u16, code: &str) -> (u16, Vec<u8>) {
    json(status, &serde_json::json!({ "error": code }))
}

/// The answer to a request whose signature checked out.
async fn route(
    shop: &Shop,
    method: &Method,
    path: &str,
    idempotency_key: Option<&str>,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (number, action) = match segments.as_slice() {
        ["orders", number] => (*number, ""),
        ["orders", number, action] => (*number, *action),
        _ => return error(404, "not_found"),
    };
    let number = percent_encoding::percent_decode_str(number)
        .decode_utf8_lossy()
        .into_owned();
    let orders = &shop.orders;
    let found = match orders.find(&number).await {
        Ok(found) => found,
        Err(_) => return error(503, "unavailable"),
    };
    match (method.as_str(), action) {
        ("GET", "") => match found {
            Some(order) => json(200, &order),
            None => error(404, "not_found"),
        },
        ("POST", "verify") => {
            let Ok(request) = serde_json::from_slice::<VerifyRequest>(body) else {
                return error(400, "bad_request");
            };
            // MemoryOrders answers an unknown order as a wrong proof, comparing in constant
            // time; a real shop must do the same.
            let verified = orders
                .verify(&number, &request.proof.into())
                .await
                .unwrap_or(false);
            json(200, &serde_json::json!({ "verified": verified }))
        }
        ("GET", "card_keys") => match found {
            Some(_) => json(
                200,
                &serde_json::json!({ "card_keys": orders.card_keys(&number).await.unwrap_or_default() }),
            ),
            None => error(404, "not_found"),
        },
        ("POST", "cancel" | "refund") => {
            let Ok(request) = serde_json::from_slice::<ChangeRequest>(body) else {
                return error(400, "bad_request");
            };
            if found.is_none() {
                return error(404, "not_found");
            }
            // `handle` answers a repeated Idempotency-Key from its cache before this runs.
            let key = idempotency_key.unwrap_or_default();
            let change = if action == "cancel" {
                orders.cancel(&number, key).await
            } else {
                let reason = request.reason.unwrap_or_default();
                println!("refund of {number} requested: {reason}");
                orders.refund(&number, &reason, key).await
            };
            match change {
                Ok(change @ (OrderChange::Done(_) | OrderChange::NotAllowed(_))) => {
                    json(200, &ChangeResponse::from(change))
                }
                Err(_) => error(503, "unavailable"),
            }
        }
        _ => error(404, "not_found"),
    }
}

async fn handle(
    State(shop): State<Arc<Shop>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request_signature = header(SIGNATURE_HEADER).unwrap_or_default().to_string();
    let now = unix_now();
    let checked = shop.nonces.verify_request(
        &shop.secret,
        now,
        &RequestHeaders {
            timestamp: header(TIMESTAMP_HEADER),
            nonce: header(NONCE_HEADER),
            signature: header(SIGNATURE_HEADER),
            idempotency_key: header(IDEMPOTENCY_HEADER),
        },
        method.as_str(),
        path,
        &body,
    );
    let (status, answer) = match checked {
        Err(e) => {
            // Say why in the log, never in the answer, and never log the secret or the body.
            eprintln!("refused {method} {}: {e}", uri.path());
            error(401, "unauthorized")
        }
        Ok(()) => {
            let key = header(IDEMPOTENCY_HEADER).map(|k| format!("{} {k}", uri.path()));
            let cached = key.as_ref().and_then(|k| {
                let answered = shop.answered.lock().unwrap_or_else(|e| e.into_inner());
                answered.get(k).cloned()
            });
            match cached {
                Some(answer) => answer,
                None => {
                    let answer = route(
                        &shop,
                        &method,
                        uri.path(),
                        header(IDEMPOTENCY_HEADER),
                        &body,
                    )
                    .await;
                    if let (Some(key), true) = (key, answer.0 < 500) {
                        let mut answered = shop.answered.lock().unwrap_or_else(|e| e.into_inner());
                        answered.insert(key, answer.clone());
                    }
                    answer
                }
            }
        }
    };
    println!("{method} {} -> {status}", uri.path());
    let signature = sign_response(&shop.secret, now, status, &request_signature, &answer);
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .header(TIMESTAMP_HEADER, now.to_string())
        .header(SIGNATURE_HEADER, signature)
        .body(Body::from(answer))
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let secret = std::env::var(SECRET_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty());
    if secret.is_none() {
        eprintln!("{SECRET_ENV} is not set: using the demo secret; set it for anything real");
    }
    let addr = std::env::var(ADDR_ENV).unwrap_or_else(|_| "127.0.0.1:8787".to_string());
    let shop = Arc::new(Shop {
        secret: secret
            .unwrap_or_else(|| DEMO_SECRET.to_string())
            .into_bytes(),
        orders: demo_orders(),
        answered: Mutex::new(HashMap::new()),
        nonces: NonceCache::new(),
    });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let addr = listener.local_addr()?;
    println!("order API listening on http://{addr}");
    println!("demo orders: KM2024000001 (delivered, password pass1234), KM2024000002 (paid, password netflix), KM2024000003 (awaiting payment, password genshin)");
    println!("point kefu at it with this in kefu.yaml:");
    println!();
    println!("orders:");
    println!("  backend: http");
    println!("  http:");
    println!("    base_url: http://{addr}");
    println!("    allow_loopback_http: true   # this demo speaks plain http on this machine");
    println!("    secret_env: {SECRET_ENV}");
    println!();
    println!("and run `{SECRET_ENV}=<the same secret> kefu chat`");
    let app = Router::new().fallback(handle).with_state(shop);
    axum::serve(listener, app).await
}
