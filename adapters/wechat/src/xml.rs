//! The callbacks' XML: what WeChat posts (a message, an event, or the encrypted envelope
//! around one) and the passive replies kefu answers with.
//!
//! Parsing goes through quick-xml's serde support, which expands no DTD and no external
//! entity; every field is optional on the wire and checked here, so any input is either a
//! message or an [`XmlError`] — never a panic.

use serde::Deserialize;

/// Why a body is not a message WeChat could have sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XmlError {
    /// The body is not UTF-8.
    #[error("the body is not UTF-8")]
    NotUtf8,
    /// The body is not well-formed XML of the expected shape.
    #[error("the body is not WeChat message XML: {0}")]
    Syntax(String),
    /// A field every message has is missing or empty.
    #[error("the message has no {0}")]
    Missing(&'static str),
    /// A field has a value it cannot have.
    #[error("the message's {0} is not valid")]
    Invalid(&'static str),
}

/// Every field kefu reads, as the wire has them (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Wire {
    #[serde(rename = "ToUserName")]
    to_user_name: Option<String>,
    #[serde(rename = "FromUserName")]
    from_user_name: Option<String>,
    #[serde(rename = "CreateTime")]
    create_time: Option<String>,
    #[serde(rename = "MsgType")]
    msg_type: Option<String>,
    #[serde(rename = "Content")]
    content: Option<String>,
    #[serde(rename = "MsgId")]
    msg_id: Option<String>,
    #[serde(rename = "Event")]
    event: Option<String>,
    #[serde(rename = "EventKey")]
    event_key: Option<String>,
    #[serde(rename = "Encrypt")]
    encrypt: Option<String>,
    #[serde(rename = "AgentID")]
    agent_id: Option<String>,
}

fn read(body: &[u8]) -> Result<Wire, XmlError> {
    let text = std::str::from_utf8(body).map_err(|_| XmlError::NotUtf8)?;
    if !text.trim_start().starts_with('<') {
        return Err(XmlError::Syntax("it does not start with an element".into()));
    }
    quick_xml::de::from_str::<Wire>(text).map_err(|e| {
        let mut message = e.to_string();
        if message.len() > 200 {
            let cut = (0..=200)
                .rev()
                .find(|i| message.is_char_boundary(*i))
                .unwrap_or(0);
            message.truncate(cut);
        }
        XmlError::Syntax(message)
    })
}

fn present(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// What a message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A text message and what it says.
    Text(String),
    /// An event (`subscribe`, `unsubscribe`, `CLICK`, ...), as WeChat spells it, and its
    /// `EventKey` if any.
    Event {
        /// The `Event` field.
        event: String,
        /// The `EventKey` field.
        key: Option<String>,
    },
    /// Any other type (`image`, `voice`, `video`, `location`, `link`, ...).
    Other(String),
}

/// A decoded message or event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The account it was sent to (the Official Account's original id `gh_...`, or the
    /// CorpID).
    pub to_user: String,
    /// The sender: an OpenID, or a WeCom UserID.
    pub from_user: String,
    /// When it was sent (seconds since the epoch).
    pub create_time: u64,
    /// What it is.
    pub kind: Kind,
    /// The message's id (events have none).
    pub msg_id: Option<String>,
    /// The WeCom application it was sent to.
    pub agent_id: Option<String>,
}

impl Message {
    /// The key WeChat's retries of this message share: the `MsgId`, or for an event (which
    /// has none) the sender and `CreateTime`, as WeChat's documentation recommends.
    pub fn dedupe_key(&self) -> String {
        match &self.msg_id {
            Some(id) => format!("msg:{id}"),
            None => {
                let event = match &self.kind {
                    Kind::Event { event, .. } => event.as_str(),
                    Kind::Text(_) => "text",
                    Kind::Other(kind) => kind.as_str(),
                };
                format!("evt:{}:{}:{}", self.from_user, self.create_time, event)
            }
        }
    }
}

/// What a POST body carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// The `Encrypt` field (safe and compatible mode).
    pub encrypt: Option<String>,
    /// The plaintext message, when the body has one (plaintext and compatible mode).
    pub message: Option<Message>,
}

/// Reads a POST body: the `Encrypt` field and the plaintext message, whichever are there.
/// Fails when it is not XML, or has neither.
pub fn parse_body(body: &[u8]) -> Result<Body, XmlError> {
    let wire = read(body)?;
    let encrypt = present(wire.encrypt.clone());
    let message = if wire.msg_type.is_some() || wire.from_user_name.is_some() {
        Some(message_from(wire)?)
    } else {
        None
    };
    if encrypt.is_none() && message.is_none() {
        return Err(XmlError::Missing("MsgType or Encrypt"));
    }
    Ok(Body { encrypt, message })
}

/// Reads a plaintext message (a plaintext-mode body, or what an `Encrypt` decrypts to).
pub fn parse_message(xml: &[u8]) -> Result<Message, XmlError> {
    message_from(read(xml)?)
}

fn message_from(wire: Wire) -> Result<Message, XmlError> {
    let to_user = present(wire.to_user_name).ok_or(XmlError::Missing("ToUserName"))?;
    let from_user = present(wire.from_user_name).ok_or(XmlError::Missing("FromUserName"))?;
    if from_user.len() > 128 {
        return Err(XmlError::Invalid("FromUserName"));
    }
    let create_time = present(wire.create_time)
        .ok_or(XmlError::Missing("CreateTime"))?
        .parse::<u64>()
        .map_err(|_| XmlError::Invalid("CreateTime"))?;
    let msg_type = present(wire.msg_type).ok_or(XmlError::Missing("MsgType"))?;
    let msg_id = present(wire.msg_id);
    if msg_id.as_ref().is_some_and(|id| id.len() > 64) {
        return Err(XmlError::Invalid("MsgId"));
    }
    let kind = match msg_type.as_str() {
        "text" => Kind::Text(wire.content.unwrap_or_default()),
        "event" => Kind::Event {
            event: present(wire.event).ok_or(XmlError::Missing("Event"))?,
            key: present(wire.event_key),
        },
        _ => Kind::Other(msg_type),
    };
    Ok(Message {
        to_user,
        from_user,
        create_time,
        kind,
        msg_id,
        agent_id: present(wire.agent_id),
    })
}

/// `text` as a CDATA section: a `]]>` inside is split across two sections, characters XML
/// 1.0 cannot carry (control characters other than tab and newlines) are dropped, and line
/// ends become LF.
pub fn cdata(text: &str) -> String {
    let clean: String = text
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
        .filter(|c| !matches!(c, '\u{FFFE}' | '\u{FFFF}'))
        .collect();
    // XML readers turn CR LF and lone CRs into LF; doing it here keeps the text the same
    // whichever reader WeChat uses.
    let clean = clean.replace("\r\n", "\n").replace('\r', "\n");
    format!("<![CDATA[{}]]>", clean.replace("]]>", "]]]]><![CDATA[>"))
}

/// The passive reply to a message: a text message from `from` (the account) to `to` (the
/// customer).
pub fn text_reply(to: &str, from: &str, create_time: u64, content: &str) -> String {
    format!(
        "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{create_time}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content>{}</Content></xml>",
        cdata(to),
        cdata(from),
        cdata(content)
    )
}

/// The envelope of an encrypted passive reply.
pub fn encrypted_reply(encrypt: &str, msg_signature: &str, timestamp: &str, nonce: &str) -> String {
    format!(
        "<xml><Encrypt>{}</Encrypt><MsgSignature>{}</MsgSignature><TimeStamp>{}</TimeStamp><Nonce>{}</Nonce></xml>",
        cdata(encrypt),
        cdata(msg_signature),
        timestamp.chars().filter(char::is_ascii_digit).collect::<String>(),
        cdata(nonce)
    )
}

/// The fields of an encrypted reply envelope (for tests and tools checking a reply).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct ReplyEnvelope {
    /// The encrypted reply.
    #[serde(rename = "Encrypt")]
    pub encrypt: String,
    /// Its `msg_signature`.
    #[serde(rename = "MsgSignature")]
    pub msg_signature: String,
    /// The timestamp signed.
    #[serde(rename = "TimeStamp")]
    pub timestamp: String,
    /// The nonce signed.
    #[serde(rename = "Nonce")]
    pub nonce: String,
}

/// Reads an encrypted reply envelope.
pub fn parse_reply_envelope(xml: &[u8]) -> Result<ReplyEnvelope, XmlError> {
    let text = std::str::from_utf8(xml).map_err(|_| XmlError::NotUtf8)?;
    quick_xml::de::from_str(text).map_err(|e| XmlError::Syntax(e.to_string()))
}

/// A text reply's fields (for tests and tools checking a reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextReply {
    /// The customer.
    pub to_user: String,
    /// The account.
    pub from_user: String,
    /// What it says.
    pub content: String,
}

/// Reads a passive text reply.
pub fn parse_text_reply(xml: &[u8]) -> Result<TextReply, XmlError> {
    let message = parse_message(xml)?;
    match message.kind {
        Kind::Text(content) => Ok(TextReply {
            to_user: message.to_user,
            from_user: message.from_user,
            content,
        }),
        _ => Err(XmlError::Invalid("MsgType")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_text_message() {
        let xml = "<xml><ToUserName><![CDATA[gh_1]]></ToUserName>\n  <FromUserName><![CDATA[oU]]></FromUserName><CreateTime>1348831860</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[this is a test]]></Content><MsgId>1234567890123456</MsgId><Unknown>x</Unknown></xml>";
        let body = parse_body(xml.as_bytes()).unwrap();
        assert_eq!(body.encrypt, None);
        let m = body.message.unwrap();
        assert_eq!(m.to_user, "gh_1");
        assert_eq!(m.from_user, "oU");
        assert_eq!(m.create_time, 1348831860);
        assert_eq!(m.kind, Kind::Text("this is a test".into()));
        assert_eq!(m.dedupe_key(), "msg:1234567890123456");
    }

    #[test]
    fn reads_events_and_other_types_and_escaped_text() {
        let xml = b"<xml><ToUserName>gh</ToUserName><FromUserName>oU</FromUserName><CreateTime>12</CreateTime><MsgType>event</MsgType><Event>subscribe</Event></xml>";
        let m = parse_message(xml).unwrap();
        assert_eq!(
            m.kind,
            Kind::Event {
                event: "subscribe".into(),
                key: None
            }
        );
        assert_eq!(m.dedupe_key(), "evt:oU:12:subscribe");
        let xml = b"<xml><ToUserName>gh</ToUserName><FromUserName>oU</FromUserName><CreateTime>12</CreateTime><MsgType>image</MsgType><PicUrl>http://x</PicUrl><MsgId>5</MsgId></xml>";
        assert_eq!(
            parse_message(xml).unwrap().kind,
            Kind::Other("image".into())
        );
        let xml = b"<xml><ToUserName>gh</ToUserName><FromUserName>oU</FromUserName><CreateTime>12</CreateTime><MsgType>text</MsgType><Content>a &lt;b&gt; &amp; c</Content><MsgId>5</MsgId></xml>";
        assert_eq!(
            parse_message(xml).unwrap().kind,
            Kind::Text("a <b> & c".into())
        );
    }

    #[test]
    fn reads_the_encrypted_envelope_and_compatible_mode() {
        let xml = b"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Encrypt><![CDATA[abc=]]></Encrypt></xml>";
        let body = parse_body(xml).unwrap();
        assert_eq!(body.encrypt.as_deref(), Some("abc="));
        assert_eq!(body.message, None);
        let xml = b"<xml><ToUserName>gh</ToUserName><FromUserName>oU</FromUserName><CreateTime>12</CreateTime><MsgType>text</MsgType><Content>hi</Content><MsgId>5</MsgId><Encrypt>abc=</Encrypt></xml>";
        let body = parse_body(xml).unwrap();
        assert_eq!(body.encrypt.as_deref(), Some("abc="));
        assert!(body.message.is_some());
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for bad in [
            &b""[..],
            b"   ",
            b"hello",
            b"{\"json\": true}",
            b"<xml>",
            b"<xml><ToUserName>gh</ToUserName></xml>",
            b"<xml><ToUserName>gh</ToUserName><FromUserName>oU</FromUserName><CreateTime>soon</CreateTime><MsgType>text</MsgType></xml>",
            b"<xml><ToUserName>gh</ToUserName><FromUserName>oU</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType></xml>",
            b"<xml><Content>&xxe;</Content></xml>",
            b"<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><xml><ToUserName>&e;</ToUserName></xml>",
            b"<xml><ToUserName>\xff\xfe</ToUserName></xml>",
            b"<xml><Encrypt></Encrypt></xml>",
        ] {
            assert!(parse_body(bad).is_err(), "{:?} parsed", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn replies_survive_cdata_terminators_and_control_characters() {
        let content = "a ]]> b <c> & \u{0} \u{1b} 中文\n";
        let xml = text_reply("oU", "gh_1", 99, content);
        assert!(!xml.contains('\u{0}'));
        let parsed = parse_text_reply(xml.as_bytes()).unwrap();
        assert_eq!(parsed.content, "a ]]> b <c> &   中文\n");
        assert_eq!(parsed.to_user, "oU");
        assert_eq!(parsed.from_user, "gh_1");
        let env = encrypted_reply("e]]>x", "sig", "123", "n");
        let parsed = parse_reply_envelope(env.as_bytes()).unwrap();
        assert_eq!(parsed.encrypt, "e]]>x");
        assert_eq!(parsed.timestamp, "123");
    }
}
