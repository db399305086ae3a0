//! The chat page, rendered on the server: the conversation so far is in the HTML, so the page
//! works (plainly) without JavaScript and shows everything at once on a reload.

use kefu_core::conversation::{Speaker, TranscriptLine};
use kefu_core::{Locale, QuickReply};
use std::fmt::Write;

/// What the page says, in its two languages.
pub(crate) struct Words {
    pub lang: &'static str,
    pub title: &'static str,
    pub greeting: &'static str,
    pub placeholder: &'static str,
    pub send: &'static str,
    pub bot: &'static str,
    pub agent: &'static str,
    pub you: &'static str,
    pub other_language: (&'static str, &'static str),
    pub typing: &'static str,
    pub failed: &'static str,
    pub offline: &'static str,
    pub too_fast: &'static str,
}

pub(crate) fn words(locale: Locale) -> &'static Words {
    match locale {
        Locale::Zh => &Words {
            lang: "zh-CN",
            title: "在线客服",
            greeting: "您好，我是在线客服助手，24 小时在线。请问有什么可以帮您？可以直接发送订单号查询发货，或输入“转人工”联系客服。",
            placeholder: "输入您的问题…",
            send: "发送",
            bot: "客服助手",
            agent: "人工客服",
            you: "我",
            other_language: ("en", "English"),
            typing: "正在输入…",
            failed: "发送失败，点此重试",
            offline: "连接中断，正在重连…",
            too_fast: "发送太频繁了，请稍后再试。",
        },
        Locale::En => &Words {
            lang: "en",
            title: "Customer support",
            greeting: "Hi! I'm the support assistant, here 24/7. How can I help? You can send your order number to check delivery, or type \"human\" to reach a person.",
            placeholder: "Type your question…",
            send: "Send",
            bot: "Assistant",
            agent: "Agent",
            you: "You",
            other_language: ("zh", "中文"),
            typing: "Typing…",
            failed: "Not sent — tap to try again",
            offline: "Connection lost, reconnecting…",
            too_fast: "You're sending messages too quickly; please wait a moment.",
        },
    }
}

/// What the page is rendered from.
pub(crate) struct Page<'a> {
    pub locale: Locale,
    pub lines: &'a [TranscriptLine],
    pub csrf: &'a str,
    /// A fresh message id for the form (sending without JavaScript).
    pub form_id: &'a str,
    /// The notice to show above the form (a refused message), if any.
    pub notice: Option<&'a str>,
}

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn speaker_class(speaker: Speaker) -> &'static str {
    match speaker {
        Speaker::Customer => "customer",
        Speaker::Bot => "bot",
        Speaker::Agent => "agent",
    }
}

/// What line `i` of `lines` shows: a customer's press of a button shows the button's label
/// (the transcript has what the button sent, such as "1").
pub(crate) fn shown(lines: &[TranscriptLine], i: usize) -> &str {
    let line = &lines[i];
    if line.speaker == Speaker::Customer && i > 0 {
        if let Some(button) = lines[..i]
            .iter()
            .rev()
            .find(|l| l.speaker != Speaker::Customer)
            .and_then(|l| l.quick_replies.iter().find(|b| b.payload == line.text))
        {
            return &button.label;
        }
    }
    &line.text
}

/// The whole page.
pub(crate) fn render(page: &Page<'_>) -> String {
    let w = words(page.locale);
    let mut html = String::with_capacity(4096 + page.lines.len() * 160);
    let _ = write!(
        html,
        r#"<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<link rel="stylesheet" href="/chat/static/chat.css">
<script src="/chat/static/chat.js" defer></script>
</head>
<body>
<main id="chat" data-csrf="{csrf}" data-next="{next}" data-lang="{lang}"
 data-bot="{bot}" data-agent="{agent}" data-you="{you}" data-typing="{typing}"
 data-failed="{failed}" data-offline="{offline}" data-too-fast="{too_fast}">
<header><h1>{title}</h1><a class="lang" href="/chat?lang={other}">{other_name}</a></header>
<p id="status" role="status" hidden></p>
<ol id="log" aria-live="polite">
<li class="msg bot greeting"><span class="who">{bot}</span><p>{greeting}</p></li>
"#,
        lang = w.lang,
        title = w.title,
        csrf = escape(page.csrf),
        next = page.lines.len(),
        bot = w.bot,
        agent = w.agent,
        you = w.you,
        typing = w.typing,
        failed = w.failed,
        offline = w.offline,
        too_fast = w.too_fast,
        other = w.other_language.0,
        other_name = w.other_language.1,
        greeting = escape(w.greeting),
    );
    for (i, line) in page.lines.iter().enumerate() {
        let who = match line.speaker {
            Speaker::Customer => w.you,
            Speaker::Bot => w.bot,
            Speaker::Agent => w.agent,
        };
        let _ = writeln!(
            html,
            r#"<li class="msg {class}"><span class="who">{who}</span><p>{text}</p></li>"#,
            class = speaker_class(line.speaker),
            text = escape(shown(page.lines, i)),
        );
    }
    html.push_str("</ol>\n");
    // The buttons of the last message, if the bot's last word offered any.
    let buttons: &[QuickReply] = match page.lines.last() {
        Some(line) if line.speaker != Speaker::Customer => &line.quick_replies,
        _ => &[],
    };
    let _ = write!(
        html,
        r#"<form id="quick" class="quick" method="post" action="/chat">
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="id" value="{id}q">
"#,
        csrf = escape(page.csrf),
        id = escape(page.form_id),
    );
    for button in buttons {
        let _ = writeln!(
            html,
            r#"<button type="submit" name="text" value="{payload}">{label}</button>"#,
            payload = escape(&button.payload),
            label = escape(&button.label),
        );
    }
    html.push_str("</form>\n");
    if let Some(notice) = page.notice {
        let _ = writeln!(html, r#"<p class="notice">{}</p>"#, escape(notice));
    }
    let _ = write!(
        html,
        r#"<form id="send" method="post" action="/chat">
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="id" value="{id}">
<textarea name="text" rows="1" maxlength="{max}" placeholder="{placeholder}" aria-label="{placeholder}" required autofocus></textarea>
<button type="submit">{send}</button>
</form>
</main>
</body>
</html>
"#,
        csrf = escape(page.csrf),
        id = escape(page.form_id),
        max = crate::MAX_TEXT_CHARS,
        placeholder = w.placeholder,
        send = w.send,
    );
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn the_page_shows_the_conversation_and_the_last_buttons() {
        let mut bot = kefu_core::testing::stores::line(Speaker::Bot, "which <order>?");
        bot.quick_replies = vec![QuickReply::new("DD1 & co", "DD1")];
        let lines = [
            kefu_core::testing::stores::line(Speaker::Customer, "where is my key"),
            bot.clone(),
            kefu_core::testing::stores::line(Speaker::Customer, "DD1"),
            bot,
        ];
        let html = render(&Page {
            locale: Locale::En,
            lines: &lines,
            csrf: "tok",
            form_id: "f1",
            notice: None,
        });
        assert!(html.contains("where is my key"), "{html}");
        assert!(html.contains("which &lt;order&gt;?"), "{html}");
        assert!(
            html.contains(r#"<button type="submit" name="text" value="DD1">DD1 &amp; co</button>"#),
            "{html}"
        );
        assert!(html.contains(r#"data-next="4""#), "{html}");
        assert!(
            html.contains(
                r#"<li class="msg customer"><span class="who">You</span><p>DD1 &amp; co</p></li>"#
            ),
            "a pressed button shows its label: {html}"
        );
        assert!(html.contains(r#"<html lang="en">"#), "{html}");
    }
}
