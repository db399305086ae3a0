//! The JSON bodies of the order API (see `docs/orders-api.md`), for the client and for servers
//! written in Rust. Orders travel as [`kefu_core::Order`] serializes.

use kefu_core::{Order, OrderChange, OrderStatus, Proof};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};

/// Everything but the unreserved characters of RFC 3986 is escaped in an order number.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// An order number as one escaped path segment (`A/1 2` becomes `A%2F1%202`).
pub fn escape_segment(number: &str) -> String {
    utf8_percent_encode(number, SEGMENT).to_string()
}

/// A proof of buying an order, as sent to `POST /orders/{number}/verify`. Its `Debug` hides
/// the values.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WireProof {
    /// The chat identity the asker writes from.
    Identity {
        /// The channel (`telegram`, `discord`, ...).
        channel: String,
        /// The user's id on it.
        user: String,
    },
    /// A query password, e-mail address or phone number, as the asker typed it.
    Secret {
        /// What they typed.
        value: String,
    },
}

impl std::fmt::Debug for WireProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireProof::Identity { channel, .. } => write!(f, "Identity({channel}, <hidden>)"),
            WireProof::Secret { .. } => f.write_str("Secret(<hidden>)"),
        }
    }
}

impl From<&Proof> for WireProof {
    fn from(proof: &Proof) -> Self {
        match proof {
            Proof::Identity { channel, user } => WireProof::Identity {
                channel: channel.clone(),
                user: user.clone(),
            },
            Proof::Secret(value) => WireProof::Secret {
                value: value.clone(),
            },
        }
    }
}

impl From<WireProof> for Proof {
    fn from(proof: WireProof) -> Self {
        match proof {
            WireProof::Identity { channel, user } => Proof::Identity { channel, user },
            WireProof::Secret { value } => Proof::Secret(value),
        }
    }
}

/// The body of `POST /orders/{number}/verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyRequest {
    /// What the asker offers.
    pub proof: WireProof,
}

/// The answer to `POST /orders/{number}/verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyResponse {
    /// Whether the proof shows the asker bought the order.
    pub verified: bool,
}

/// The answer to `GET /orders/{number}/card_keys`. Its `Debug` hides the keys.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardKeysResponse {
    /// The order's card keys, in order.
    pub card_keys: Vec<String>,
}

impl std::fmt::Debug for CardKeysResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CardKeysResponse({} keys)", self.card_keys.len())
    }
}

/// The body of `POST /orders/{number}/cancel` (`{}`) and `.../refund`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRequest {
    /// Why the customer wants it (refunds); absent for cancellations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The answer to `POST /orders/{number}/cancel` and `.../refund`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ChangeResponse {
    /// Done; the order as it is now.
    Done {
        /// The changed order.
        order: Order,
    },
    /// The order's state does not allow the change.
    NotAllowed {
        /// The state it is in.
        status: OrderStatus,
    },
}

impl From<ChangeResponse> for OrderChange {
    fn from(change: ChangeResponse) -> Self {
        match change {
            ChangeResponse::Done { order } => OrderChange::Done(order),
            ChangeResponse::NotAllowed { status } => OrderChange::NotAllowed(status),
        }
    }
}

impl From<OrderChange> for ChangeResponse {
    fn from(change: OrderChange) -> Self {
        match change {
            OrderChange::Done(order) => ChangeResponse::Done { order },
            OrderChange::NotAllowed(status) => ChangeResponse::NotAllowed { status },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_look_as_documented() {
        let proof = VerifyRequest {
            proof: (&Proof::Identity {
                channel: "telegram".into(),
                user: "42".into(),
            })
                .into(),
        };
        assert_eq!(
            serde_json::to_string(&proof).unwrap(),
            r#"{"proof":{"type":"identity","channel":"telegram","user":"42"}}"#
        );
        let secret = VerifyRequest {
            proof: (&Proof::Secret("pass1234".into())).into(),
        };
        assert_eq!(
            serde_json::to_string(&secret).unwrap(),
            r#"{"proof":{"type":"secret","value":"pass1234"}}"#
        );
        assert!(!format!("{secret:?}").contains("pass1234"));
        let refused = ChangeResponse::NotAllowed {
            status: OrderStatus::Paid,
        };
        assert_eq!(
            serde_json::to_string(&refused).unwrap(),
            r#"{"result":"not_allowed","status":"paid"}"#
        );
        assert_eq!(
            serde_json::to_string(&ChangeRequest::default()).unwrap(),
            "{}"
        );
        assert_eq!(escape_segment("KM-1.2_3~"), "KM-1.2_3~");
        assert_eq!(escape_segment("A/1 2?#%"), "A%2F1%202%3F%23%25");
    }
}
