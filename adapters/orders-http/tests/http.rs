//! HttpOrders against a real HTTP server on 127.0.0.1 that speaks the order API and can be told
//! to misbehave.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use kefu_core::{
    MemoryOrder, MemoryOrders, Order, OrderChange, OrderStatus, Orders, OrdersError, Proof,
};
use kefu_orders_http::api::{ChangeRequest, ChangeResponse, VerifyRequest};
use kefu_orders_http::signing::{
    new_nonce, sign_request, sign_response, unix_now, NonceCache, RequestHeaders, SignatureError,
    Signed, IDEMPOTENCY_HEADER, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use kefu_orders_http::{HttpOrders, HttpOrdersConfig};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "shop-and-kefu-share-this";

/// How the test shop misbehaves.
#[derive(Default, Clone)]
struct Behaviour {
    /// Sleep this long before answering.
    sleep: Option<Duration>,
    /// Answer 503 without doing anything to this many requests first.
    fail_first: usize,
    /// Do the work, then answer 503 instead (the answer lost) to this many requests first.
    lose_first_answers: usize,
    /// Sign answers with this secret instead of the shared one.
    sign_with: Option<String>,
    /// Answer every proof with `{"verified":true}`.
    believe_everyone: bool,
    /// Answer cancel and refund with 501.
    no_changes: bool,
}

struct Shop {
    orders: MemoryOrders,
    behaviour: Behaviour,
    requests: AtomicUsize,
    applied_changes: AtomicUsize,
    idempotency_keys: Mutex<Vec<Option<String>>>,
    answered: Mutex<HashMap<String, (u16, Vec<u8>)>>,
    nonces: NonceCache,
    replays: AtomicUsize,
}

fn demo_orders() -> MemoryOrders {
    let orders = MemoryOrders::new();
    let mut delivered = Order::new("KM0000000001", "Steam ¥100", OrderStatus::Delivered);
    delivered.amount_cents = 10_000;
    delivered.redeem = Some("Redeem in the Steam client".into());
    orders.insert(MemoryOrder {
        order: Some(delivered),
        keys: vec!["AAAA-BBBB-CCCC".into(), "DDDD-EEEE-FFFF".into()],
        password: Some("pass1234".into()),
        contacts: vec!["buyer@example.com".into()],
        identities: vec![("telegram".into(), "42".into())],
    });
    orders.insert(MemoryOrder {
        order: Some(Order::new("KM 2/3", "Netflix 1 month", OrderStatus::Paid)),
        password: Some("netflix".into()),
        ..MemoryOrder::default()
    });
    orders.insert(MemoryOrder {
        order: Some(Order::new(
            "KM0000000003",
            "Game top-up",
            OrderStatus::AwaitingPayment,
        )),
        ..MemoryOrder::default()
    });
    orders
}

fn json(status: u16, value: &impl serde::Serialize) -> (u16, Vec<u8>) {
    (status, serde_json::to_vec(value).unwrap())
}

/// What the shop answers to a request whose signature checked out.
async fn route(shop: &Shop, method: &Method, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let not_found = (404, br#"{"error":"not_found"}"#.to_vec());
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (number, action) = match segments.as_slice() {
        ["orders", number] => (*number, ""),
        ["orders", number, action] => (*number, *action),
        _ => return not_found,
    };
    let number = percent_decode(number);
    match (method.as_str(), action) {
        ("GET", "") => match shop.orders.find(&number).await.unwrap() {
            Some(order) => json(200, &order),
            None => not_found,
        },
        ("POST", "verify") => {
            let Ok(request) = serde_json::from_slice::<VerifyRequest>(body) else {
                return (400, br#"{"error":"bad_request"}"#.to_vec());
            };
            let verified = shop.behaviour.believe_everyone
                || shop
                    .orders
                    .verify(&number, &Proof::from(request.proof))
                    .await
                    .unwrap();
            json(200, &serde_json::json!({ "verified": verified }))
        }
        ("GET", "card_keys") => json(
            200,
            &serde_json::json!({ "card_keys": shop.orders.card_keys(&number).await.unwrap() }),
        ),
        ("POST", "cancel" | "refund") => {
            if shop.behaviour.no_changes {
                return (501, br#"{"error":"not_implemented"}"#.to_vec());
            }
            let Ok(request) = serde_json::from_slice::<ChangeRequest>(body) else {
                return (400, br#"{"error":"bad_request"}"#.to_vec());
            };
            if action == "refund" && request.reason.is_none() {
                return (400, br#"{"error":"bad_request"}"#.to_vec());
            }
            if shop.orders.find(&number).await.unwrap().is_none() {
                return not_found;
            }
            // The shop's own idempotency is the answer cache in `handle`; every call that
            // reaches here is a new change.
            let key = format!("shop-{}", shop.requests.load(Ordering::SeqCst));
            let change = if action == "cancel" {
                shop.orders.cancel(&number, &key).await
            } else {
                shop.orders.refund(&number, "", &key).await
            };
            let change = change.unwrap();
            if matches!(change, OrderChange::Done(_)) {
                shop.applied_changes.fetch_add(1, Ordering::SeqCst);
            }
            json(200, &ChangeResponse::from(change))
        }
        _ => not_found,
    }
}

fn percent_decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

async fn handle(
    State(shop): State<Arc<Shop>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = shop.requests.fetch_add(1, Ordering::SeqCst);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let key = header(IDEMPOTENCY_HEADER).map(str::to_string);
    shop.idempotency_keys.lock().unwrap().push(key.clone());
    if let Some(pause) = shop.behaviour.sleep {
        tokio::time::sleep(pause).await;
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request_signature = header(SIGNATURE_HEADER).unwrap_or_default().to_string();
    let now = unix_now();
    let checked = shop.nonces.verify_request(
        SECRET.as_bytes(),
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
    if checked == Err(SignatureError::Replayed) {
        shop.replays.fetch_add(1, Ordering::SeqCst);
    }
    let (status, answer) = if checked.is_err() {
        (401, br#"{"error":"unauthorized"}"#.to_vec())
    } else if seen < shop.behaviour.fail_first {
        (503, b"busy".to_vec())
    } else {
        let cached = key
            .as_ref()
            .and_then(|k| shop.answered.lock().unwrap().get(k).cloned());
        let answer = match cached {
            Some(answer) => answer,
            None => {
                let answer = route(&shop, &method, uri.path(), &body).await;
                if let Some(k) = key {
                    shop.answered.lock().unwrap().insert(k, answer.clone());
                }
                answer
            }
        };
        if seen < shop.behaviour.lose_first_answers {
            (503, b"lost".to_vec())
        } else {
            answer
        }
    };
    let now = unix_now();
    let secret = shop.behaviour.sign_with.as_deref().unwrap_or(SECRET);
    let signature = sign_response(secret.as_bytes(), now, status, &request_signature, &answer);
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "application/json")
        .header(TIMESTAMP_HEADER, now.to_string())
        .header(SIGNATURE_HEADER, signature)
        .body(Body::from(answer))
        .unwrap()
}

async fn start(behaviour: Behaviour) -> (SocketAddr, Arc<Shop>) {
    let shop = Arc::new(Shop {
        orders: demo_orders(),
        behaviour,
        requests: AtomicUsize::new(0),
        applied_changes: AtomicUsize::new(0),
        idempotency_keys: Mutex::new(Vec::new()),
        answered: Mutex::new(HashMap::new()),
        nonces: NonceCache::new(),
        replays: AtomicUsize::new(0),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(handle).with_state(shop.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, shop)
}

fn client_with(addr: SocketAddr, secret: &str, retries: u32) -> HttpOrders {
    let mut config = HttpOrdersConfig::new(format!("http://{addr}"), secret);
    config.allow_loopback_http = true;
    config.timeout = Duration::from_millis(2_000);
    config.retries = retries;
    config.backoff = Duration::from_millis(1);
    config.max_backoff = Duration::from_millis(5);
    HttpOrders::new(config).unwrap()
}

/// A client with these limits (ms) for a slow shop.
fn patient_client(addr: SocketAddr, timeout: u64, deadline: u64, retries: u32) -> HttpOrders {
    let mut config = HttpOrdersConfig::new(format!("http://{addr}"), SECRET);
    config.allow_loopback_http = true;
    config.timeout = Duration::from_millis(timeout);
    config.deadline = Duration::from_millis(deadline);
    config.retries = retries;
    config.backoff = Duration::from_millis(1);
    HttpOrders::new(config).unwrap()
}

fn client(addr: SocketAddr) -> HttpOrders {
    client_with(addr, SECRET, 2)
}

fn unavailable<T: std::fmt::Debug>(result: Result<T, OrdersError>) -> String {
    match result {
        Err(OrdersError::Unavailable(message)) => message,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

fn secret(value: &str) -> Proof {
    Proof::Secret(value.into())
}

#[tokio::test]
async fn all_five_operations_work_end_to_end() {
    let (addr, shop) = start(Behaviour::default()).await;
    let orders = client(addr);

    let order = orders.find("KM0000000001").await.unwrap().unwrap();
    assert_eq!(order.status, OrderStatus::Delivered);
    assert_eq!(order.amount_cents, 10_000);
    assert_eq!(order.redeem.as_deref(), Some("Redeem in the Steam client"));
    let identity = Proof::Identity {
        channel: "telegram".into(),
        user: "42".into(),
    };
    assert!(orders.verify("KM0000000001", &identity).await.unwrap());
    assert!(orders
        .verify("KM0000000001", &secret("pass1234"))
        .await
        .unwrap());
    assert!(orders
        .verify("KM0000000001", &secret(" Buyer@Example.com"))
        .await
        .unwrap());
    assert!(!orders
        .verify("KM0000000001", &secret("wrong"))
        .await
        .unwrap());
    assert_eq!(
        orders.card_keys("KM0000000001").await.unwrap(),
        ["AAAA-BBBB-CCCC", "DDDD-EEEE-FFFF"]
    );

    // A number with a space and a slash travels as one escaped path segment.
    let odd = orders.find("KM 2/3").await.unwrap().unwrap();
    assert_eq!(odd.product, "Netflix 1 month");
    assert!(orders.verify("KM 2/3", &secret("netflix")).await.unwrap());

    match orders
        .refund("KM 2/3", "never arrived", "k-refund")
        .await
        .unwrap()
    {
        OrderChange::Done(order) => assert_eq!(order.status, OrderStatus::Refunded),
        other => panic!("{other:?}"),
    }
    match orders.cancel("KM0000000003", "k-cancel").await.unwrap() {
        OrderChange::Done(order) => assert_eq!(order.status, OrderStatus::Cancelled),
        other => panic!("{other:?}"),
    }
    assert_eq!(shop.applied_changes.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_unknown_order_is_not_found_and_not_verified() {
    let (addr, _shop) = start(Behaviour::default()).await;
    let orders = client(addr);
    assert_eq!(orders.find("KM9999999999").await.unwrap(), None);
    assert!(!orders
        .verify("KM9999999999", &secret("pass1234"))
        .await
        .unwrap());
}

#[tokio::test]
async fn changes_the_order_state_does_not_allow_are_refused() {
    let (addr, shop) = start(Behaviour::default()).await;
    let orders = client(addr);
    assert_eq!(
        orders.cancel("KM 2/3", "k1").await.unwrap(),
        OrderChange::NotAllowed(OrderStatus::Paid)
    );
    assert_eq!(
        orders
            .refund("KM0000000001", "changed my mind", "k2")
            .await
            .unwrap(),
        OrderChange::NotAllowed(OrderStatus::Delivered)
    );
    assert_eq!(shop.applied_changes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_shop_without_changes_is_unsupported() {
    let (addr, _shop) = start(Behaviour {
        no_changes: true,
        ..Behaviour::default()
    })
    .await;
    let orders = client(addr);
    assert!(matches!(
        orders.cancel("KM0000000003", "k1").await,
        Err(OrdersError::Unsupported(_))
    ));
    assert!(matches!(
        orders.refund("KM 2/3", "late", "k2").await,
        Err(OrdersError::Unsupported(_))
    ));
}

#[tokio::test]
async fn answers_signed_with_another_secret_are_not_trusted() {
    let (addr, _shop) = start(Behaviour {
        sign_with: Some("an attacker's secret".into()),
        believe_everyone: true,
        ..Behaviour::default()
    })
    .await;
    let orders = client(addr);
    // The forged {"verified":true} must not be believed.
    let message = unavailable(orders.verify("KM0000000001", &secret("guess")).await);
    assert!(message.contains("signature"), "{message}");
    assert!(!message.contains("guess"), "{message}");
    unavailable(orders.find("KM0000000001").await);
    unavailable(orders.card_keys("KM0000000001").await);
}

#[tokio::test]
async fn a_client_with_the_wrong_secret_is_refused_without_retrying() {
    let (addr, shop) = start(Behaviour::default()).await;
    let orders = client_with(addr, "not the shared secret", 3);
    let message = unavailable(orders.find("KM0000000001").await);
    assert!(message.contains("401"), "{message}");
    assert!(!message.contains("not the shared secret"), "{message}");
    assert_eq!(shop.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn attempts_that_time_out_are_retried_then_given_up() {
    let (addr, shop) = start(Behaviour {
        sleep: Some(Duration::from_secs(5)),
        ..Behaviour::default()
    })
    .await;
    let orders = patient_client(addr, 50, 5_000, 2);
    let message = unavailable(orders.find("KM0000000001").await);
    assert!(message.contains("timed out"), "{message}");
    assert!(message.contains("/orders/KM0000000001"), "{message}");
    assert_eq!(shop.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_server_error_is_retried_until_it_succeeds() {
    let (addr, shop) = start(Behaviour {
        fail_first: 2,
        ..Behaviour::default()
    })
    .await;
    let orders = client(addr);
    assert!(orders.find("KM0000000001").await.unwrap().is_some());
    assert_eq!(shop.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_server_that_keeps_failing_is_unavailable_after_every_retry() {
    let (addr, shop) = start(Behaviour {
        fail_first: usize::MAX,
        ..Behaviour::default()
    })
    .await;
    let orders = client_with(addr, SECRET, 3);
    let message = unavailable(orders.verify("KM0000000001", &secret("pass1234")).await);
    assert!(message.contains("503"), "{message}");
    assert!(!message.contains("pass1234"), "{message}");
    assert_eq!(shop.requests.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn nothing_listening_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let orders = client_with(addr, SECRET, 1);
    let message = unavailable(orders.find("KM0000000001").await);
    assert!(message.contains("connect"), "{message}");
}

#[tokio::test]
async fn a_retried_refund_keeps_its_idempotency_key_and_is_applied_once() {
    let (addr, shop) = start(Behaviour {
        lose_first_answers: 2,
        ..Behaviour::default()
    })
    .await;
    let orders = client(addr);
    // The shop refunds on the first attempt, but its answers are lost twice; the retries
    // carry the same key, so the third attempt gets the first one's result.
    match orders
        .refund("KM 2/3", "never arrived", "key-of-this-refund")
        .await
        .unwrap()
    {
        OrderChange::Done(order) => assert_eq!(order.status, OrderStatus::Refunded),
        other => panic!("{other:?}"),
    }
    assert_eq!(shop.applied_changes.load(Ordering::SeqCst), 1);
    let keys = shop.idempotency_keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 3);
    assert!(keys
        .iter()
        .all(|k| k.as_deref() == Some("key-of-this-refund")));

    // The caller's key is what travels (the engine derives it from the customer's message, so
    // a turn run again sends the same one); reads carry none.
    orders.cancel("KM0000000003", "another-key").await.unwrap();
    orders.find("KM0000000003").await.unwrap();
    let keys = shop.idempotency_keys.lock().unwrap().clone();
    assert_eq!(keys[3].as_deref(), Some("another-key"));
    assert_eq!(keys[4], None);
    // Every attempt had a fresh nonce: none was refused as a replay.
    assert_eq!(shop.replays.load(Ordering::SeqCst), 0);
}

/// Sends a request signed by hand (as a shop's own checks see it).
async fn send_signed(
    addr: SocketAddr,
    ts: u64,
    nonce: &str,
    path: &str,
    key: Option<&str>,
    body: &'static str,
) -> u16 {
    let signed = Signed {
        timestamp: ts,
        nonce,
        method: "POST",
        path_and_query: path,
        idempotency_key: key,
    };
    let signature = sign_request(SECRET.as_bytes(), &signed, body.as_bytes());
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header(TIMESTAMP_HEADER, ts.to_string())
        .header(NONCE_HEADER, nonce)
        .header(SIGNATURE_HEADER, signature)
        .body(body);
    if let Some(key) = key {
        request = request.header(IDEMPOTENCY_HEADER, key);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn the_shop_refuses_stale_unsigned_or_replayed_requests() {
    let (addr, shop) = start(Behaviour::default()).await;
    let path = "/orders/KM0000000001/verify";
    let body = r#"{"proof":{"type":"secret","value":"pass1234"}}"#;

    let stale = unix_now() - 600;
    assert_eq!(
        send_signed(addr, stale, &new_nonce(), path, None, body).await,
        401
    );
    let unsigned = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);

    // A request that checks out works once; the same request captured and sent again within
    // the clock window is refused.
    let now = unix_now();
    let nonce = new_nonce();
    assert_eq!(send_signed(addr, now, &nonce, path, None, body).await, 200);
    assert_eq!(send_signed(addr, now, &nonce, path, None, body).await, 401);
    assert_eq!(shop.replays.load(Ordering::SeqCst), 1);

    // An idempotency key added to (or swapped in) a signed request breaks its signature.
    let refund = "/orders/KM0000000001/refund";
    let signed = Signed {
        timestamp: now,
        nonce: "0123456789abcdef0123456789abcdef",
        method: "POST",
        path_and_query: refund,
        idempotency_key: Some("k1"),
    };
    let signature = sign_request(SECRET.as_bytes(), &signed, b"{}");
    let swapped = reqwest::Client::new()
        .post(format!("http://{addr}{refund}"))
        .header(TIMESTAMP_HEADER, now.to_string())
        .header(NONCE_HEADER, signed.nonce)
        .header(SIGNATURE_HEADER, signature)
        .header(IDEMPOTENCY_HEADER, "k2")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(swapped.status().as_u16(), 401);
    assert_eq!(shop.applied_changes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_slow_shop_costs_one_deadline_not_every_retry() {
    let (addr, shop) = start(Behaviour {
        sleep: Some(Duration::from_secs(5)),
        ..Behaviour::default()
    })
    .await;
    let orders = patient_client(addr, 300, 400, 5);
    let message = unavailable(orders.verify("KM0000000001", &secret("pass1234")).await);
    assert!(message.contains("timed out"), "{message}");
    // Five retries were allowed, but the deadline leaves room for two attempts at most.
    let tried = shop.requests.load(Ordering::SeqCst);
    assert!((1..=2).contains(&tried), "{tried} attempts");
}

#[tokio::test]
async fn an_order_number_that_is_a_path_is_never_sent() {
    let (addr, shop) = start(Behaviour::default()).await;
    let orders = client(addr);
    // `..` would reach {base}/verify after URL normalisation.
    assert!(!orders.verify("..", &secret("pass1234")).await.unwrap());
    assert_eq!(orders.find(".").await.unwrap(), None);
    assert!(orders.card_keys("..").await.unwrap().is_empty());
    assert!(orders.refund("..", "r", "k").await.is_err());
    assert_eq!(shop.requests.load(Ordering::SeqCst), 0);
}
