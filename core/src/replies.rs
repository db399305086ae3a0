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
    /// Asks for proof of owning order `{order_no}`.
    AskProof,
    /// The proof did not match (also for an order that does not exist) (`{order_no}`).
    ProofFailed,
    /// Too many failed proofs: lookups stop and the risk team takes over.
    VerificationLocked,
    /// What the transcript keeps instead of the proof a customer sent.
    ProofHidden,
    /// Card keys are only sent in a private chat.
    KeysPrivateOnly,
    /// Proof of owning an order is only asked for in a private chat.
    ProofPrivateOnly,
    /// The button that opens a private chat with the bot.
    PrivateChatButton,
    /// The card keys (`{order_no}`, `{product}`, `{keys}`, `{redeem}`).
    CardKeys,
    /// How to redeem when the order says nothing.
    RedeemDefault,
    /// The order system is down (`{order_no}`).
    OrdersUnavailable,
    /// Order status: not paid (`{order_no}`, `{product}`).
    StatusAwaitingPayment,
    /// Order status: paid, waiting for delivery (`{order_no}`, `{product}`, `{expected}`).
    StatusPaid,
    /// Order status: being delivered (`{order_no}`, `{product}`, `{expected}`).
    StatusDelivering,
    /// Order status: delivered (`{order_no}`, `{product}`).
    StatusDelivered,
    /// Order status: delivery failed (`{order_no}`, `{product}`).
    StatusFailed,
    /// Order status: refunded (`{order_no}`, `{product}`).
    StatusRefunded,
    /// Order status: cancelled before payment (`{order_no}`, `{product}`).
    StatusCancelled,
    /// Paid or delivering past its promised time (`{order_no}`, `{product}`, `{late}`).
    StatusOverdue,
    /// `{expected}` when a due time is known (`{minutes}`).
    ExpectedWithin,
    /// `{expected}` when no due time is known.
    ExpectedSoon,
    /// The order was linked to the customer's chat account (`{order_no}`).
    OrderLinked,
    /// The order's card keys were shown too often today; a person checks (`{order_no}`).
    KeyViewLimit,
    /// The button that confirms a change to an order (its payload is a yes word).
    ConfirmButton,
    /// The button that keeps the order as it is (its payload is a no word).
    KeepButton,
    /// Asks to confirm cancelling an unpaid order (`{order_no}`, `{product}`, `{amount}`).
    CancelConfirm,
    /// The order was cancelled (`{order_no}`).
    CancelDone,
    /// A delivered order cannot be cancelled (`{order_no}`, `{product}`).
    CancelDelivered,
    /// Cancelling a paid order means refunding it; the refund offer follows (`{order_no}`).
    CancelBecomesRefund,
    /// The customer declined the change (`{order_no}`).
    ChangeKept,
    /// The answer to a confirmation was neither yes nor no.
    ConfirmReprompt,
    /// The order changed state meanwhile; its status follows (`{order_no}`).
    ChangeRaced,
    /// Asks to confirm an immediate refund (`{order_no}`, `{product}`, `{amount}`).
    RefundConfirm,
    /// The refund was made (`{order_no}`, `{amount}`, `{ticket_no}`).
    RefundDone,
    /// Nothing was paid, so nothing is refunded (`{order_no}`, `{product}`).
    RefundNothingPaid,
    /// A delivered order's refund needs a person to check the keys; precedes the ticket.
    RefundDeliveredNote,
    /// A refund request became a ticket for the refund team (`{order_no}`, `{ticket_no}`,
    /// `{due}`).
    RefundTicketOpened,
    /// A ticket was opened (`{ticket_no}`, `{kind}`, `{due}`).
    TicketOpened,
    /// The order already has an open ticket of that kind (`{order_no}`, `{ticket_no}`,
    /// `{status}`).
    TicketExists,
    /// No ticket with that number belongs to the asker (also when none exists) (`{ticket_no}`).
    TicketNotFound,
    /// The order has no tickets (`{order_no}`).
    NoTickets,
    /// Introduces the customer's own tickets.
    YourTickets,
    /// Closes a list of tickets.
    OtherTickets,
    /// A ticket's status changed (`{ticket_no}`, `{kind}`, `{status}`, `{note}`).
    TicketStatusChanged,
    /// The order system is down; a ticket was opened instead (`{order_no}`, `{ticket_no}`,
    /// `{due}`).
    OrdersDownTicket,
    /// The button that opens a ticket.
    TicketButton,
    /// The button that requests a refund.
    RefundButton,
    /// `/ticket` or `/refund` without an order number.
    CommandNeedsOrder,
    /// A command whose flow this shop has not set up.
    CommandUnavailable,
    /// `/ticket` or `/refund` followed by something that is not an order number (the text
    /// is not repeated back: it may be a secret).
    NotAnOrderNumber,
    /// A message longer than the bot reads (`{max}` characters).
    TooLong,
    /// A flow was waiting for a proof or a confirmation, but order look-ups are no longer
    /// connected: a person takes over (`{order_no}`).
    OrdersGone,
    /// What the bot can do and its commands (`/help`).
    Help,
    /// A message while waiting for a person: passed on (`{position}`).
    QueuedAck,
    /// A message while a person has picked the conversation up but not answered yet.
    QueuedAckClaimed,
    /// The customer left the queue; the bot answers again.
    QueueLeft,
    /// After an answer given while waiting for a person (`{position}`).
    StillQueued,
    /// A hand-off outside support hours: a ticket instead of a queue (`{back}`,
    /// `{ticket_no}`).
    OffHours,
    /// After repeated turns without an answer: a person is offered.
    OfferPerson,
    /// A number that is not one of the offered choices (`{max}`).
    ChooseByNumber,
    /// A bare order number: what to do with it (`{order_no}`).
    OrderNumberWhat,
    /// Something shaped like a ticket number that is not one (`{ticket_no}`).
    TicketNumberInvalid,
    /// The choice that goes back to the flow in progress about an order.
    ContinueOrder,
    /// The choice that goes back to the flow in progress about a ticket.
    ContinueTicket,
    /// A person took the conversation from the queue.
    AgentJoined,
    /// An agent passed the conversation to another team (`{position}`).
    Transferred,
    /// An agent gave the conversation back to the bot.
    ReleasedToBot,
    /// An agent closed the conversation.
    Closed,
    /// An agent passed the conversation to a colleague.
    TransferredToAgent,
    /// Added to a hand-off or transfer when the group's recent waits are known (`{minutes}`).
    EstimatedWait,
    /// The queue moved: where the waiting customer stands now (`{position}`, `{wait}`: an
    /// [`Reply::EstimatedWait`] or nothing).
    QueueMoved,
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
            (HandedOff, Zh) => "已为您转接人工客服，您目前排在第 {position} 位，请稍候。客服能看到您刚才的全部对话，无需重复说明；排队期间可以继续补充情况，回复“取消排队”可退出。客服时间：{support_hours}。",
            (HandedOff, En) => "I've passed you to a person; you are number {position} in line. They can see this whole conversation, so there's no need to repeat anything; you can keep adding details while you wait, or reply \"cancel\" to leave the queue. Support hours: {support_hours}.",
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
            (AskProof, Zh) => "为保护您的订单安全，请回复订单 {order_no} 的查询密码，或下单时填写的邮箱/手机号。要查别的订单请发“换个订单 订单号”，回复“取消”可结束。",
            (AskProof, En) => "To keep your order safe, please reply with the query password of order {order_no}, or the e-mail address or phone number you gave when buying. For a different order, send \"another order\" and its number; reply \"cancel\" to stop.",
            (ProofFailed, Zh) => "订单号 {order_no} 与验证信息不匹配，请核对查询密码（或下单邮箱/手机号）后再试。如果订单号填错了，请发“换个订单 订单号”。",
            (ProofFailed, En) => "Order number {order_no} and that verification detail don't match. Please check the query password (or the e-mail / phone you bought with) and try again. If the order number was wrong, send \"another order\" and the right number.",
            (VerificationLocked, Zh) => "验证失败次数过多，为保护订单安全，自助查询已暂停一小时。正在为您转接风控专员核实身份。",
            (VerificationLocked, En) => "There have been too many failed checks, so self-service lookups are paused for an hour to protect the order. I'm passing you to our risk team to confirm it's you.",
            (ProofHidden, Zh) => "[验证信息已隐藏]",
            (ProofHidden, En) => "[verification details hidden]",
            (KeysPrivateOnly, Zh) => "为了您的资金安全，卡密只在私聊中发送，不会出现在群里。请私聊我并发送订单号，我会在私聊中发给您。",
            (KeysPrivateOnly, En) => "For your safety, card keys are only sent in a private chat, never in a group. Message me privately with your order number and I'll send them there.",
            (ProofPrivateOnly, Zh) => "为保护您的订单安全，核实身份需要在私聊中进行，请不要在群里发送查询密码。请私聊我并发送订单号。",
            (ProofPrivateOnly, En) => "To keep your order safe, checking it's yours happens in a private chat; please don't post your query password in the group. Message me privately with your order number.",
            (PrivateChatButton, Zh) => "私聊我",
            (PrivateChatButton, En) => "Message me privately",
            (CardKeys, Zh) => "订单 {order_no}（{product}）的卡密如下，请勿泄露给他人：\n{keys}\n使用方法：{redeem}",
            (CardKeys, En) => "Here are the card keys for order {order_no} ({product}). Don't share them with anyone:\n{keys}\nHow to redeem: {redeem}",
            (RedeemDefault, Zh) => "在对应平台的“兑换/充值”页面输入卡密即可。",
            (RedeemDefault, En) => "enter the key on the platform's redeem or top-up page.",
            (OrdersUnavailable, Zh) => "非常抱歉，订单系统暂时无法访问，我没能查到订单 {order_no}。已为您转接人工客服，会尽快为您处理。",
            (OrdersUnavailable, En) => "Sorry, the order system can't be reached right now, so I couldn't look up order {order_no}. I'm passing you to a person who will follow up.",
            (StatusAwaitingPayment, Zh) => "订单 {order_no}（{product}）还没有付款成功。付款后会自动发货；如果您已经付款，支付结果可能还在同步，请过几分钟再查。未付款的订单可以直接重新下单。",
            (StatusAwaitingPayment, En) => "Order {order_no} ({product}) hasn't been paid yet. It's delivered automatically once paid; if you have paid, the payment may still be syncing, so please check again in a few minutes.",
            (StatusPaid, Zh) => "订单 {order_no}（{product}）已付款成功，正在排队发货，{expected}。发货后回复“查卡密”即可查看。",
            (StatusPaid, En) => "Order {order_no} ({product}) is paid and queued for delivery; {expected}. Once delivered, ask me for your card key.",
            (StatusDelivering, Zh) => "订单 {order_no}（{product}）正在发货/充值中，{expected}。到账后会自动通知您。",
            (StatusDelivering, En) => "Order {order_no} ({product}) is being delivered right now; {expected}.",
            (StatusDelivered, Zh) => "订单 {order_no}（{product}）已发货完成。卡密类商品回复“查卡密”即可查看；充值类商品请到游戏或平台内查看到账情况。",
            (StatusDelivered, En) => "Order {order_no} ({product}) has been delivered. For card keys, ask me for your card key; for top-ups, check the balance in the game or app.",
            (StatusFailed, Zh) => "订单 {order_no}（{product}）发货失败了，非常抱歉，您的货款不会丢失。可以为您转人工安排补发或退款。",
            (StatusFailed, En) => "Delivery of order {order_no} ({product}) failed. Sorry about that; your money is safe. A person can arrange a redelivery or a refund for you.",
            (StatusRefunded, Zh) => "订单 {order_no}（{product}）已退款，款项一般 1-3 个工作日原路退回。",
            (StatusRefunded, En) => "Order {order_no} ({product}) has been refunded; the money usually reaches your original payment method within 1-3 working days.",
            (StatusCancelled, Zh) => "订单 {order_no}（{product}）已取消，没有产生扣款。如仍需要，请重新下单。",
            (StatusCancelled, En) => "Order {order_no} ({product}) was cancelled before payment, so nothing was charged. Place a new order if you still need it.",
            (StatusOverdue, Zh) => "订单 {order_no}（{product}）已超过预计发货时间 {late}，非常抱歉。可以为您转人工加急处理。",
            (StatusOverdue, En) => "Order {order_no} ({product}) is {late} past its promised delivery time. Sorry about that; a person can chase it for you.",
            (ExpectedWithin, Zh) => "预计 {minutes} 分钟内完成",
            (ExpectedWithin, En) => "it should be done within {minutes} minutes",
            (ExpectedSoon, Zh) => "通常几分钟内完成",
            (ExpectedSoon, En) => "it usually takes a few minutes",
            (OrderLinked, Zh) => "已将订单 {order_no} 与您当前的聊天账号绑定，以后用这个账号查询无需再验证。",
            (OrderLinked, En) => "I've linked order {order_no} to this chat account, so you won't need to verify it again from here.",
            (KeyViewLimit, Zh) => "订单 {order_no} 的卡密今天已经查看过多次，为保护您的卡密安全，这次需要人工客服核实后再发送。正在为您转接。",
            (KeyViewLimit, En) => "The card keys of order {order_no} have been viewed many times today, so to keep them safe a person will check before sending them again. I'm passing you to one now.",
            (ConfirmButton, Zh) => "确认",
            (ConfirmButton, En) => "Confirm",
            (KeepButton, Zh) => "不用了",
            (KeepButton, En) => "No",
            (CancelConfirm, Zh) => "订单 {order_no}（{product}，{amount}）还没有付款。确定要取消这个订单吗？回复“确认”取消，回复“不用了”保留。",
            (CancelConfirm, En) => "Order {order_no} ({product}, {amount}) hasn't been paid. Do you want to cancel it? Reply \"confirm\" to cancel it, or \"no\" to keep it.",
            (CancelDone, Zh) => "订单 {order_no} 已取消，没有产生任何扣款。",
            (CancelDone, En) => "Order {order_no} is cancelled; nothing was charged.",
            (CancelDelivered, Zh) => "订单 {order_no}（{product}）已经发货，无法取消。如果卡密无法使用或有其他问题，可以申请退款，由工作人员审核。",
            (CancelDelivered, En) => "Order {order_no} ({product}) has already been delivered, so it can't be cancelled. If the key doesn't work or something else is wrong, you can request a refund and a person will review it.",
            (CancelBecomesRefund, Zh) => "订单 {order_no} 已经付款，取消就是退款：",
            (CancelBecomesRefund, En) => "Order {order_no} is already paid, so cancelling it means a refund:",
            (ChangeKept, Zh) => "好的，订单 {order_no} 保持不变。还有什么可以帮您？",
            (ChangeKept, En) => "OK, I've left order {order_no} as it is. Anything else I can help with?",
            (ConfirmReprompt, Zh) => "请回复“确认”继续，或回复“不用了”保留订单。",
            (ConfirmReprompt, En) => "Please reply \"confirm\" to go ahead, or \"no\" to keep the order as it is.",
            (ChangeRaced, Zh) => "订单 {order_no} 的状态刚刚发生了变化，这次没能操作成功：",
            (ChangeRaced, En) => "Order {order_no} changed just now, so that didn't go through:",
            (RefundConfirm, Zh) => "订单 {order_no}（{product}）还没有发货，可以立即全额退款 {amount}，原路退回。确定要退款吗？回复“确认”退款，回复“不用了”保留订单。",
            (RefundConfirm, En) => "Order {order_no} ({product}) hasn't been delivered, so I can refund the full {amount} to your original payment method right now. Go ahead? Reply \"confirm\" to refund, or \"no\" to keep the order.",
            (RefundDone, Zh) => "已为订单 {order_no} 全额退款 {amount}，一般 1-3 个工作日原路到账。退款记录工单号：{ticket_no}。",
            (RefundDone, En) => "Order {order_no} is refunded in full ({amount}); it usually reaches your original payment method within 1-3 working days. Your refund's record is ticket {ticket_no}.",
            (RefundNothingPaid, Zh) => "订单 {order_no}（{product}）没有付款成功，不会扣费，也就不需要退款。",
            (RefundNothingPaid, En) => "Order {order_no} ({product}) was never paid, so nothing was charged and there's nothing to refund.",
            (RefundDeliveredNote, Zh) => "这个订单已经发货，退款需要工作人员先核实卡密是否已被使用。",
            (RefundDeliveredNote, En) => "This order has been delivered, so a person needs to check whether its key was used before refunding.",
            (RefundTicketOpened, Zh) => "已为订单 {order_no} 提交退款申请，工单号 {ticket_no}。退款专员会在 {due} 前审核，结果会在这里通知您，也可以随时发送工单号查询进度。",
            (RefundTicketOpened, En) => "I've filed a refund request for order {order_no}: ticket {ticket_no}. Our refunds team will review it by {due}; I'll tell you here when it's decided, and you can send the ticket number any time to check on it.",
            (TicketOpened, Zh) => "已为您创建工单 {ticket_no}（{kind}），工作人员会在 {due} 前处理。进度有变化时我会在这里通知您，也可以随时发送工单号查询。",
            (TicketOpened, En) => "I've opened ticket {ticket_no} ({kind}); the team will handle it by {due}. I'll tell you here whenever it moves, and you can send the ticket number any time to check on it.",
            (TicketExists, Zh) => "订单 {order_no} 已经有一个进行中的工单 {ticket_no}（{status}），不用重复提交，有进展会在这里通知您。",
            (TicketExists, En) => "Order {order_no} already has an open ticket, {ticket_no} ({status}), so there's no need to file another; I'll tell you here when it moves.",
            (TicketNotFound, Zh) => "没有找到您名下的工单 {ticket_no}。请核对工单号，或者发送订单号来查询这个订单的工单。",
            (TicketNotFound, En) => "I can't find a ticket {ticket_no} of yours. Please check the number, or send your order number to see that order's tickets.",
            (NoTickets, Zh) => "订单 {order_no} 目前没有售后工单。如果遇到问题，直接告诉我就好。",
            (NoTickets, En) => "Order {order_no} has no tickets. If something's wrong, just tell me.",
            (YourTickets, Zh) => "这是您最近的工单：",
            (YourTickets, En) => "Here are your recent tickets:",
            (OtherTickets, Zh) => "要查询其他工单，请发送工单号或订单号。",
            (OtherTickets, En) => "To check another ticket, send its number or your order number.",
            (TicketStatusChanged, Zh) => "您的工单 {ticket_no}（{kind}）有新进展：{status}。{note}",
            (TicketStatusChanged, En) => "Update on your ticket {ticket_no} ({kind}): {status}. {note}",
            (OrdersDownTicket, Zh) => "非常抱歉，订单系统暂时无法访问，我没能查到订单 {order_no}。已为您创建工单 {ticket_no}，工作人员会在 {due} 前跟进，有进展会在这里通知您；着急的话可以回复“人工”。",
            (OrdersDownTicket, En) => "Sorry, the order system can't be reached right now, so I couldn't look up order {order_no}. I've opened ticket {ticket_no} and the team will follow up by {due}; I'll tell you here when it moves. If it's urgent, reply \"human\".",
            (TicketButton, Zh) => "提交工单",
            (TicketButton, En) => "Open a ticket",
            (RefundButton, Zh) => "申请退款",
            (RefundButton, En) => "Request a refund",
            (CommandNeedsOrder, Zh) => "请在命令后面加上订单号，例如：/ticket 202411230001",
            (CommandNeedsOrder, En) => "Please add the order number after the command, e.g. /ticket 202411230001",
            (CommandUnavailable, Zh) => "这个功能暂未开通。请直接描述您的问题，或回复“人工”。",
            (CommandUnavailable, En) => "That isn't available here. Please describe your problem, or reply \"human\".",
            (NotAnOrderNumber, Zh) => "命令后面需要跟订单号，您发的内容不像订单号。订单号可以在支付成功页面或订单邮件里找到，例如：/ticket 202411230001",
            (NotAnOrderNumber, En) => "The command needs an order number after it, and that doesn't look like one. It's on the payment confirmation page or in your order e-mail, e.g. /ticket 202411230001",
            (TooLong, Zh) => "您的消息太长了（超过 {max} 字），我没能读完。请把问题简短地再发一次，例如“卡密无效怎么办”。",
            (TooLong, En) => "That message is too long for me (over {max} characters). Please send your question again in a few words, e.g. \"my card key doesn't work\".",
            (OrdersGone, Zh) => "抱歉，自助查单暂时不可用。已记录订单号 {order_no}，正在为您转接人工客服处理。",
            (OrdersGone, En) => "Sorry, order self-service isn't available right now. I've noted order {order_no} and I'm passing you to a person who can look it up.",
            (Help, Zh) => "我是{shop_name}的智能客服，可以帮您：\n• 查卡密、查发货进度（把订单号发给我）\n• 处理充值未到账、卡密无效、取消订单和退款\n• 查询售后工单进度（把工单号发给我）\n• 解答支付、会员、发票等常见问题\n直接用一句话描述您的问题就行。常用命令：\n/human 转人工客服\n/cancel 取消当前操作（排队时为取消排队）\n/lang zh 或 /lang en 切换语言\n/order 订单号 查订单（发货、卡密、退款）\n/ticket 订单号 为订单提交售后工单\n/refund 订单号 申请退款\n/help 查看本帮助",
            (Help, En) => "I'm the {shop_name} support bot. I can:\n• find your card keys and where your order is (send me the order number)\n• help with top-ups that didn't arrive, keys that don't work, cancellations and refunds\n• check an after-sales ticket (send me the ticket number)\n• answer common questions about payment, memberships, invoices and more\nJust describe your problem in a sentence. Commands:\n/human talk to a person\n/cancel stop what we're doing (or leave the queue)\n/lang zh or /lang en switch language\n/order ORDER look up an order (delivery, card keys, refund)\n/ticket ORDER open an after-sales ticket for an order\n/refund ORDER ask for a refund\n/help show this help",
            (QueuedAck, Zh) => "已转达，客服接入后会看到。您目前排在第 {position} 位；回复“取消排队”可退出排队。",
            (QueuedAck, En) => "Got it; the person who picks this up will see it. You're number {position} in line; reply \"cancel\" to leave the queue.",
            (QueuedAckClaimed, Zh) => "已转达，客服马上就会回复您。",
            (QueuedAckClaimed, En) => "Got it; a person will reply to you shortly.",
            (QueueLeft, Zh) => "好的，已为您取消排队。有问题可以随时问我，需要人工时再回复“人工”。",
            (QueueLeft, En) => "OK, you've left the queue. Ask me anything, or reply \"human\" if you'd like a person again.",
            (StillQueued, Zh) => "（您仍在排队等待人工客服，目前排在第 {position} 位。）",
            (StillQueued, En) => "(You're still in line for a person: number {position}.)",
            (OffHours, Zh) => "现在是非工作时间（客服时间：{support_hours}），人工客服会在 {back} 上线。已为您创建工单 {ticket_no}，客服上线后会优先处理并在这里回复您。这期间您也可以继续问我问题。",
            (OffHours, En) => "Our team is offline right now (support hours: {support_hours}); people are back at {back}. I've opened ticket {ticket_no} so they pick this up first, and they'll reply here. Meanwhile you can keep asking me questions.",
            (OfferPerson, Zh) => "抱歉，我还是没能理解您的意思。您可以换个说法，或者回复“人工”让客服来帮您。",
            (OfferPerson, En) => "Sorry, I still don't follow. You can put it another way, or reply \"human\" and a person will help.",
            (ChooseByNumber, Zh) => "请回复 1 到 {max} 之间的序号，或者直接描述您的问题：",
            (ChooseByNumber, En) => "Please reply with a number from 1 to {max}, or just describe your problem:",
            (OrderNumberWhat, Zh) => "收到订单号 {order_no}。您想办理哪一项？回复序号即可：",
            (OrderNumberWhat, En) => "Got order number {order_no}. What would you like to do? Reply with its number:",
            (TicketNumberInvalid, Zh) => "“{ticket_no}”不是有效的工单号。工单号是字母 T 加一串数字（通常 14 位），例如 T20261202000001，可以在创建工单时的通知里找到。也可以直接发订单号，我帮您查这个订单的工单。",
            (TicketNumberInvalid, En) => "\"{ticket_no}\" isn't a valid ticket number. Ticket numbers are the letter T and a run of digits (usually 14), e.g. T20261202000001; it's in the notice you got when the ticket was opened. You can also send your order number and I'll look up that order's tickets.",
            (ContinueOrder, Zh) => "继续办理我的订单",
            (ContinueOrder, En) => "Continue with my order",
            (ContinueTicket, Zh) => "继续查询我的工单",
            (ContinueTicket, En) => "Continue with my ticket",
            (AgentJoined, Zh) => "人工客服已接入，正在查看您之前的对话，请稍候。",
            (AgentJoined, En) => "A member of our support team has joined and is reading this conversation; one moment, please.",
            (TransferredToAgent, Zh) => "已为您转给另一位同事继续处理，之前的对话记录会一并转过去，无需重复说明。",
            (TransferredToAgent, En) => "I've passed you to a colleague who will take it from here. They can see this whole conversation, so there's no need to repeat anything.",
            (EstimatedWait, Zh) => "预计等待约 {minutes} 分钟。",
            (EstimatedWait, En) => "Estimated wait: about {minutes} min.",
            (QueueMoved, Zh) => "排队更新：您现在排在第 {position} 位。{wait}",
            (QueueMoved, En) => "Queue update: you are now number {position} in line. {wait}",
            (Transferred, Zh) => "已为您转给负责这类问题的同事，您目前排在第 {position} 位。之前的对话记录会一并转过去，无需重复说明。",
            (Transferred, En) => "I've passed you to the team that handles this; you are number {position} in line. They can see this whole conversation, so there's no need to repeat anything.",
            (ReleasedToBot, Zh) => "人工客服已结束本次接待，接下来由我（机器人）为您服务；需要人工时随时回复“人工”。",
            (ReleasedToBot, En) => "Our agent has handed you back to me, the bot. Ask me anything, or reply \"human\" any time to reach a person.",
            (Closed, Zh) => "本次服务已结束，感谢您的耐心。如果还有其他问题，随时给我发消息。",
            (Closed, En) => "This conversation is now closed; thank you for your patience. Message me any time if something else comes up.",
        }
    }
}

/// A length of time as a customer reads it: minutes up to two hours, then hours up to two
/// days, then days ("25 分钟", "30 小时", "3 天"; "25 minutes", "30 hours", "3 days").
pub fn span(minutes: u64, locale: Locale) -> String {
    let (n, zh, en) = if minutes < 120 {
        (minutes, "分钟", "minute")
    } else if minutes < 48 * 60 {
        ((minutes + 30) / 60, "小时", "hour")
    } else {
        ((minutes + 720) / 1440, "天", "day")
    };
    match locale {
        Locale::Zh => format!("{n} {zh}"),
        _ if n == 1 => format!("{n} {en}"),
        _ => format!("{n} {en}s"),
    }
}

#[cfg(test)]
mod span_tests {
    use super::*;

    #[test]
    fn spans_read_as_minutes_hours_or_days() {
        assert_eq!(span(25, Locale::Zh), "25 分钟");
        assert_eq!(span(1810, Locale::Zh), "30 小时");
        assert_eq!(span(1810, Locale::En), "30 hours");
        assert_eq!(span(60, Locale::En), "60 minutes");
        assert_eq!(span(1, Locale::En), "1 minute");
        assert_eq!(span(5 * 1440, Locale::Zh), "5 天");
    }
}
