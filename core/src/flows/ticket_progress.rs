//! Ticket progress: where a customer's after-sales tickets stand.
//!
//! By ticket number (shown only to the customer who opened it, or to the proven buyer of its
//! order; anybody else hears that no such ticket of theirs exists), by order number (after the
//! ownership check: the order's tickets), or — asked without a number — the customer's own
//! tickets. Each shows its status, who owns it, when it is due and its history.

use super::{Flow, OrderStep};
use crate::engine::EngineError;
use crate::entities::{ORDER_NO, TICKET_NO};
use crate::locale::Locale;
use crate::orders::Order;
use crate::replies::Reply;
use crate::tickets::{local_time, Ticket, TicketStatus};
use crate::Action;
use async_trait::async_trait;

/// The ticket progress.
pub struct TicketProgress;

#[async_trait]
impl Flow for TicketProgress {
    fn name(&self) -> &'static str {
        "ticket_progress"
    }

    fn action(&self) -> Option<Action> {
        Some(Action::TicketProgress)
    }

    fn slot(&self) -> &'static [&'static str] {
        &[TICKET_NO, ORDER_NO]
    }

    fn ask(&self) -> Reply {
        Reply::AskTicketNo
    }

    /// Asked without a number: the customer's own tickets, if they have any.
    async fn without_slot(&self, cx: &mut OrderStep<'_>) -> Result<bool, EngineError> {
        cx.own_tickets().await
    }

    async fn with_ticket(&self, cx: &mut OrderStep<'_>, number: &str) -> Result<(), EngineError> {
        cx.ticket_by_number(number).await
    }

    async fn proven(&self, cx: &mut OrderStep<'_>, order: &Order) -> Result<(), EngineError> {
        cx.order_tickets(order).await
    }
}

/// A ticket status in the customer's words.
pub fn status_word(status: TicketStatus, locale: Locale) -> &'static str {
    match (status, locale) {
        (TicketStatus::Open, Locale::Zh) => "待处理",
        (TicketStatus::Open, Locale::En) => "waiting to be picked up",
        (TicketStatus::InProgress, Locale::Zh) => "处理中",
        (TicketStatus::InProgress, Locale::En) => "being worked on",
        (TicketStatus::WaitingForCustomer, Locale::Zh) => "等待您回复",
        (TicketStatus::WaitingForCustomer, Locale::En) => "waiting for your reply",
        (TicketStatus::Resolved, Locale::Zh) => "已解决",
        (TicketStatus::Resolved, Locale::En) => "resolved",
        (TicketStatus::Closed, Locale::Zh) => "已关闭",
        (TicketStatus::Closed, Locale::En) => "closed",
    }
}

/// What a ticket is about, in the customer's words (its kind as is when unknown).
pub fn kind_word(kind: &str, locale: Locale) -> &str {
    match (kind, locale) {
        ("refund", Locale::Zh) => "退款申请",
        ("refund", Locale::En) => "refund request",
        ("delivery", Locale::Zh) => "发货问题",
        ("delivery", Locale::En) => "delivery problem",
        ("cancel", Locale::Zh) => "取消订单",
        ("cancel", Locale::En) => "cancellation",
        ("order_lookup", Locale::Zh) => "订单查询",
        ("order_lookup", Locale::En) => "order enquiry",
        ("card_key", Locale::Zh) => "卡密问题",
        ("card_key", Locale::En) => "card key problem",
        (other, _) => other,
    }
}

/// A ticket for its customer: what it is about, status, owner, due time and history, with
/// times at `utc_offset_minutes` from UTC.
pub fn describe(ticket: &Ticket, locale: Locale, utc_offset_minutes: i32) -> String {
    let time = |ms| local_time(ms, utc_offset_minutes);
    let zh = locale == Locale::Zh;
    let mut about = kind_word(&ticket.kind, locale).to_string();
    if let Some(order) = &ticket.order {
        about += &if zh {
            format!("，订单 {order}")
        } else {
            format!(", order {order}")
        };
    }
    let status = status_word(ticket.status, locale);
    let owner = match (&ticket.owner, zh) {
        (Some(agent), true) => format!("客服 {agent}"),
        (Some(agent), false) => format!("agent {agent}"),
        (None, true) => "待分配".to_string(),
        (None, false) => "not assigned yet".to_string(),
    };
    let due = match (ticket.status.is_final(), zh) {
        (true, true) => format!("已于 {} 完成", time(ticket.updated_at)),
        (true, false) => format!("finished {}", time(ticket.updated_at)),
        (false, true) => format!("预计 {} 前处理", time(ticket.due_at)),
        (false, false) => format!("due by {}", time(ticket.due_at)),
    };
    let mut text = if zh {
        format!(
            "工单 {}（{about}）\n状态：{status}；负责人：{owner}；{due}\n进度：",
            ticket.number
        )
    } else {
        format!(
            "Ticket {} ({about})\nStatus: {status}; owner: {owner}; {due}\nHistory:",
            ticket.number
        )
    };
    for (i, event) in ticket.history.iter().enumerate() {
        let what = if i == 0 {
            if zh {
                "已创建"
            } else {
                "opened"
            }
        } else {
            status_word(event.status, locale)
        };
        text += &format!("\n· {} {what}", time(event.at));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::{apply_update, new_ticket, NewTicket, TicketUpdate};

    #[test]
    fn a_ticket_reads_with_status_owner_due_time_and_history() {
        // 2026-11-23T10:00:00Z
        let at = 1_795_428_000_000;
        let mut ticket = new_ticket(
            "T20261123000001".to_string(),
            NewTicket {
                kind: "refund".to_string(),
                order: Some("2024112300017".to_string()),
                conversation: None,
                customer: "u1".to_string(),
                description: "refund please".to_string(),
                skill_group: "refunds".to_string(),
                sla_millis: 4 * 3_600_000,
                by: "bot".to_string(),
                idempotency_key: None,
            },
            at,
        );
        let zh = describe(&ticket, Locale::Zh, 480);
        assert!(
            zh.contains("工单 T20261123000001（退款申请，订单 2024112300017）"),
            "{zh}"
        );
        assert!(
            zh.contains("状态：待处理；负责人：待分配；预计 11-23 22:00 前处理"),
            "{zh}"
        );
        assert!(zh.contains("· 11-23 18:00 已创建"), "{zh}");
        apply_update(
            &mut ticket,
            TicketUpdate {
                status: Some(TicketStatus::Resolved),
                owner: Some("alice".to_string()),
                by: "alice".to_string(),
                note: "refunded".to_string(),
            },
            at + 3_600_000,
        );
        let en = describe(&ticket, Locale::En, 0);
        assert!(
            en.contains("Status: resolved; owner: agent alice; finished 11-23 11:00"),
            "{en}"
        );
        assert!(
            en.ends_with("· 11-23 10:00 opened\n· 11-23 11:00 resolved"),
            "{en}"
        );
    }
}
