//! What the bot itself says (not FAQ answers), in every locale.
//!
//! Texts may use the configured template variables (`{shop_name}`, ...) and, where noted, the
//! turn's own values (`{position}`, `{order_no}`, `{ticket_no}`).

use crate::locale::Locale;

/// One of the bot's own messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reply {
    /// Greeting on `/start` and `/help`.
    Welcome,
    /// Introduces "did you mean" suggestions.
    SuggestIntro,
    /// The bot cannot answer.
    Decline,
    /// The quick reply that asks for a person.
    HumanButton,
    /// The conversation was queued for a person (`{position}`).
    HandedOff,
    /// A flow asks for the order number.
    AskOrderNo,
    /// A flow asks for the ticket or order number.
    AskTicketNo,
    /// A flow did not get what it asked for.
    Reprompt,
    /// The flow was cancelled.
    Cancelled,
    /// A flow collected the order number and a person takes over (`{order_no}`).
    OrderNoted,
    /// A flow collected the ticket number and a person takes over (`{ticket_no}`).
    TicketNoted,
    /// The language was switched with `/lang`.
    LanguageSet,
    /// `/lang` without a known language.
    LanguageUnknown,
}

impl Reply {
    /// The text in `locale`.
    pub fn text(self, locale: Locale) -> &'static str {
        use Locale::{En, Zh};
        use Reply::*;
        match (self, locale) {
            (Welcome, Zh) => "您好，我是{shop_name}的智能客服 🤖 可以帮您查卡密、查发货进度、处理充值未到账和退款等问题。请直接描述您的问题；需要人工时回复“人工”。",
            (Welcome, En) => "Hi, I'm the {shop_name} support bot 🤖 I can help with card keys, delivery status, top-ups that didn't arrive, refunds and more. Just describe your problem; reply \"human\" any time to reach a person.",
            (SuggestIntro, Zh) => "我不太确定您的意思，您是想问下面哪个问题？回复序号即可：",
            (SuggestIntro, En) => "I'm not quite sure what you mean. Is it one of these? Reply with its number:",
            (Decline, Zh) => "抱歉，这个问题我暂时还回答不了。您可以换个说法再问一次，或者回复“人工”转人工客服。",
            (Decline, En) => "Sorry, I can't answer that yet. You can rephrase it, or reply \"human\" to talk to a person.",
            (HumanButton, Zh) => "转人工",
            (HumanButton, En) => "Talk to a person",
            (HandedOff, Zh) => "已为您转接人工客服，您前面还有 {position} 位，请稍候。客服能看到您刚才的全部对话，无需重复说明。客服时间：{support_hours}。",
            (HandedOff, En) => "I've passed you to a person; you are number {position} in line. They can see this whole conversation, so there's no need to repeat anything. Support hours: {support_hours}.",
            (AskOrderNo, Zh) => "请发送您的订单号（在支付成功页面或订单邮件里可以找到），回复“取消”可结束。",
            (AskOrderNo, En) => "Please send your order number (it's on the payment confirmation page or in your order e-mail), or reply \"cancel\" to stop.",
            (AskTicketNo, Zh) => "请发送您的工单号（以 T 开头）或订单号，回复“取消”可结束。",
            (AskTicketNo, En) => "Please send your ticket number (it starts with T) or your order number, or reply \"cancel\" to stop.",
            (Reprompt, Zh) => "没有识别到单号哦。请直接发送单号（例如 202411230001），或回复“取消”。",
            (Reprompt, En) => "I couldn't find a number in that. Please send just the number (e.g. 202411230001), or reply \"cancel\".",
            (Cancelled, Zh) => "好的，已取消。还有什么可以帮您？",
            (Cancelled, En) => "OK, cancelled. Anything else I can help with?",
            (OrderNoted, Zh) => "已记录订单号 {order_no}，正在为您转接人工客服处理。",
            (OrderNoted, En) => "Got it, order {order_no}. I'm passing this to a person who can look it up.",
            (TicketNoted, Zh) => "已记录单号 {ticket_no}，正在为您转接人工客服查询进度。",
            (TicketNoted, En) => "Got it, {ticket_no}. I'm passing this to a person who can check its progress.",
            (LanguageSet, Zh) => "好的，接下来我会用中文回复您。",
            (LanguageSet, En) => "OK, I'll reply in English from now on.",
            (LanguageUnknown, Zh) => "请用 /lang zh 或 /lang en 选择语言。",
            (LanguageUnknown, En) => "Use /lang zh or /lang en to choose a language.",
        }
    }
}
