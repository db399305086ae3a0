//! The console's pages, rendered on the server. Everything from customers, agents or the
//! database is escaped.

use super::conversation_query;
use kefu_core::conversation::{Speaker, TranscriptLine};
use kefu_core::handoff::Held;
use kefu_core::orders::Order;
use kefu_core::tickets::Ticket;
use kefu_core::{Conversation, HandoffRequest, Priority};
use kefu_sql::{Account, ConversationSummary, HandoffRecord, Role, Status};
use kefu_sql::{Report, Slice, Spread};
use std::collections::BTreeMap;
use std::fmt::Write;

pub(crate) use kefu_web::escape;

/// A value's serde name (`requested`, `high`).
fn name_of(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `MM-DD HH:MM` in the shop's time zone.
fn when(ms: u64, offset_minutes: i32) -> String {
    kefu_core::tickets::local_time(ms, offset_minutes)
}

/// A duration the way people read it: `45 s`, `3 min`, `2 h 5 min`.
pub(crate) fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    if secs < 60 {
        format!("{secs} s")
    } else if secs < 3600 {
        format!("{} min {} s", secs / 60, secs % 60)
    } else {
        format!("{} h {} min", secs / 3600, (secs % 3600) / 60)
    }
}

fn head(title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"/console/static/console.css\"></head>",
        escape(title)
    )
}

fn top_bar(me: &Account, csrf: &str) -> String {
    let (status, toggle, label) = match me.status {
        Status::Available => ("available", "away", "Go away"),
        Status::Away => ("away", "available", "Go available"),
    };
    let dashboard = if me.role == Role::Admin {
        "<a href=\"/console/dashboard\">Dashboard</a>"
    } else {
        ""
    };
    format!(
        "<header><a class=\"brand\" href=\"/console\">kefu console</a><nav>\
         <a href=\"/console\">Queue</a>{dashboard}</nav>\
         <span class=\"me\">{name} <span class=\"role\">{role}</span> \
         <span class=\"status {status}\" id=\"my-status\">{status}</span></span>\
         <form method=\"post\" action=\"/console/status\" class=\"inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"status\" value=\"{toggle}\"><button>{label}</button></form>\
         <form method=\"post\" action=\"/console/logout\" class=\"inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button>Log out</button></form>\
         </header>",
        name = escape(&me.name),
        role = me.role.as_str(),
        csrf = escape(csrf),
    )
}

/// A page with one message (errors, refusals).
pub(crate) fn message_page(title: &str, message: &str) -> String {
    format!(
        "{}<body class=\"message\"><main><h1>{}</h1><p id=\"message\">{}</p>\
         <p><a href=\"javascript:history.back()\">Back</a> · <a href=\"/console\">Queue</a></p></main></body></html>",
        head(title),
        escape(title),
        escape(message)
    )
}

/// The log-in page.
pub(crate) fn login_page(notice: Option<&str>) -> String {
    let notice = notice
        .map(|n| format!("<p class=\"notice\" id=\"notice\">{}</p>", escape(n)))
        .unwrap_or_default();
    format!(
        "{}<body class=\"login\"><main><h1>kefu console</h1>{notice}\
         <form method=\"post\" action=\"/console/login\">\
         <label>Name <input name=\"name\" autocomplete=\"username\" required autofocus></label>\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\">Log in</button></form>\
         <p class=\"hint\">Accounts are made with <code>kefu agents add NAME</code>.</p></main></body></html>",
        head("Log in · kefu console")
    )
}

/// What the queue page shows.
pub(crate) struct QueueView {
    pub me: Account,
    /// Waiting requests, most urgent first, with whether they waited past their target.
    pub waiting: Vec<(HandoffRequest, bool)>,
    pub held: Vec<Held>,
    pub overdue: Vec<Ticket>,
    pub team: Vec<Account>,
    pub groups: Vec<String>,
    pub now: u64,
    pub offset_minutes: i32,
}

fn badges(request: &HandoffRequest, late: bool) -> String {
    let mut out = String::new();
    if request.vip {
        out.push_str("<span class=\"badge vip\">VIP</span>");
    }
    if request.priority >= Priority::High {
        let _ = write!(
            out,
            "<span class=\"badge {p}\">{p}</span>",
            p = name_of(&request.priority)
        );
    }
    if late || request.escalated_at.is_some() {
        out.push_str("<span class=\"badge late\">over target</span>");
    }
    out
}

fn last_customer_line(request: &HandoffRequest) -> String {
    request
        .transcript
        .iter()
        .rev()
        .find(|l| l.speaker == Speaker::Customer)
        .map(|l| l.text.chars().take(80).collect())
        .unwrap_or_default()
}

fn conversation_link(request: &HandoffRequest) -> String {
    format!(
        "/console/conversation?{}",
        escape(&conversation_query(&request.conversation))
    )
}

/// The live part of the queue page (replaced as changes arrive).
pub(crate) fn queue_section(view: &QueueView, csrf: &str) -> String {
    let csrf = escape(csrf);
    let mut out = String::from("<div id=\"queue\">");
    let _ = write!(
        out,
        "<section><h2>Waiting <span class=\"count\" id=\"waiting-count\">{}</span></h2>",
        view.waiting.len()
    );
    if view.waiting.is_empty() {
        out.push_str("<p class=\"empty\">Nobody is waiting.</p>");
    } else {
        out.push_str(
            "<table class=\"waiting\"><thead><tr><th>Customer</th><th>Group</th><th>Why</th>\
             <th>Waiting</th><th>Last message</th><th></th></tr></thead><tbody>",
        );
        for (request, late) in &view.waiting {
            let waited = view.now.saturating_sub(request.enqueued_at);
            let _ = write!(
                out,
                "<tr class=\"{cls}\" data-conversation=\"{id}\"><td><a href=\"{link}\">{user}</a> \
                 <span class=\"channel\">{channel}</span> {badges}</td><td>{group}</td><td>{reason}{note}</td>\
                 <td class=\"waited\">{waited}</td><td class=\"said\">{said}</td>\
                 <td><form method=\"post\" action=\"/console/act\" class=\"inline\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <input type=\"hidden\" name=\"op\" value=\"take\">\
                 <input type=\"hidden\" name=\"c\" value=\"{c}\"><input type=\"hidden\" name=\"id\" value=\"{i}\">\
                 <button class=\"take\">Take</button></form></td></tr>",
                cls = if *late { "late" } else { "" },
                id = escape(&super::change_id(&request.conversation)),
                link = conversation_link(request),
                user = escape(&request.user),
                channel = escape(&request.conversation.channel),
                badges = badges(request, *late),
                group = escape(&request.skill_group),
                reason = escape(&name_of(&request.reason)),
                note = request
                    .note
                    .as_ref()
                    .map(|n| format!("<div class=\"note\">{}</div>", escape(n)))
                    .unwrap_or_default(),
                waited = duration(waited),
                said = escape(&last_customer_line(request)),
                c = escape(&request.conversation.channel),
                i = escape(&request.conversation.id),
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("<div class=\"claim\">");
    for group in &view.groups {
        let waiting = view
            .waiting
            .iter()
            .filter(|(r, _)| &r.skill_group == group)
            .count();
        if waiting > 0 {
            let _ = write!(
                out,
                "<form method=\"post\" action=\"/console/act\" class=\"inline\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <input type=\"hidden\" name=\"op\" value=\"claim\">\
                 <input type=\"hidden\" name=\"group\" value=\"{g}\">\
                 <button>Next in {g} ({waiting})</button></form>",
                g = escape(group)
            );
        }
    }
    out.push_str("</div></section>");

    let mine: Vec<&Held> = view
        .held
        .iter()
        .filter(|h| h.agent == view.me.name)
        .collect();
    let _ = write!(
        out,
        "<section><h2>Mine <span class=\"count\">{} / {}</span></h2>",
        mine.len(),
        view.me.capacity
    );
    held_table(&mut out, &mine, view);
    let others: Vec<&Held> = view
        .held
        .iter()
        .filter(|h| h.agent != view.me.name)
        .collect();
    if !others.is_empty() {
        out.push_str("<h2>With colleagues</h2>");
        held_table(&mut out, &others, view);
    }
    out.push_str("</section>");

    out.push_str("<section><h2>Team</h2><ul class=\"team\">");
    for account in &view.team {
        let holding = view.held.iter().filter(|h| h.agent == account.name).count();
        let _ = write!(
            out,
            "<li><span class=\"status {s}\">{s}</span> {name} · {holding}/{cap}{groups}</li>",
            s = account.status.as_str(),
            name = escape(&account.name),
            cap = account.capacity,
            groups = if account.groups.is_empty() {
                String::new()
            } else {
                format!(" · {}", escape(&account.groups.join(", ")))
            }
        );
    }
    out.push_str("</ul></section>");

    if !view.overdue.is_empty() {
        out.push_str("<section><h2 class=\"alert\">Overdue tickets</h2><ul class=\"overdue\">");
        for ticket in &view.overdue {
            let _ = write!(
                out,
                "<li><b>{n}</b> {kind} · {group} · due {due} · {desc}</li>",
                n = escape(&ticket.number),
                kind = escape(&ticket.kind),
                group = escape(&ticket.skill_group),
                due = when(ticket.due_at, view.offset_minutes),
                desc = escape(&ticket.description.chars().take(80).collect::<String>()),
            );
        }
        out.push_str("</ul></section>");
    }
    out.push_str("</div>");
    out
}

fn held_table(out: &mut String, held: &[&Held], view: &QueueView) {
    if held.is_empty() {
        out.push_str("<p class=\"empty\">None.</p>");
        return;
    }
    out.push_str(
        "<table class=\"held\"><thead><tr><th>Customer</th><th>Group</th><th>Agent</th>\
         <th>Taken</th><th>First reply</th><th>Last message</th></tr></thead><tbody>",
    );
    for h in held {
        let r = &h.request;
        let _ = write!(
            out,
            "<tr data-conversation=\"{id}\"><td><a href=\"{link}\">{user}</a> <span class=\"channel\">{channel}</span> {badges}</td>\
             <td>{group}</td><td>{agent}</td><td>{taken}</td><td>{first}</td><td class=\"said\">{said}</td></tr>",
            id = escape(&super::change_id(&r.conversation)),
            link = conversation_link(r),
            user = escape(&r.user),
            channel = escape(&r.conversation.channel),
            badges = badges(r, false),
            group = escape(&r.skill_group),
            agent = escape(&h.agent),
            taken = when(h.claimed_at, view.offset_minutes),
            first = h
                .first_reply_at
                .map(|t| format!("after {}", duration(t.saturating_sub(r.enqueued_at))))
                .unwrap_or_else(|| "<span class=\"alert\">not yet</span>".to_string()),
            said = escape(&last_customer_line(r)),
        );
    }
    out.push_str("</tbody></table>");
}

/// The queue page.
pub(crate) fn queue_page(view: &QueueView, csrf: &str) -> String {
    format!(
        "{}<body data-live=\"queue\">{}<main>{}</main>\
         <script src=\"/console/static/console.js\"></script></body></html>",
        head("Queue · kefu console"),
        top_bar(&view.me, csrf),
        queue_section(view, csrf)
    )
}

/// The part of a conversation's page that follows changes: who holds it and what was said.
pub(crate) struct LiveView {
    /// The agent looking at it.
    pub agent: String,
    pub transcript: Vec<TranscriptLine>,
    pub owner: Option<String>,
    pub waiting: Option<usize>,
    pub offset_minutes: i32,
}

/// What a conversation's page shows.
pub(crate) struct ConversationView {
    pub me: Account,
    pub live: LiveView,
    pub conversation: Conversation,
    pub history: Vec<HandoffRecord>,
    pub earlier: Vec<ConversationSummary>,
    /// The customer's orders, or why they cannot be listed.
    pub orders: Result<Vec<Order>, String>,
    /// Masked card keys by order.
    pub keys: BTreeMap<String, Vec<String>>,
    pub tickets: Vec<Ticket>,
    pub team: Vec<String>,
    pub groups: Vec<String>,
    /// `(title, text)` of the canned replies, filled for this conversation.
    pub canned: Vec<(String, String)>,
    pub now: u64,
    /// Card keys just revealed (order, keys): shown once, on this response only.
    pub revealed: Option<(String, Vec<String>)>,
}

fn transcript_section(view: &LiveView) -> String {
    let mut out = String::from("<ol id=\"transcript\">");
    for line in &view.transcript {
        let speaker = match line.speaker {
            Speaker::Customer => "customer",
            Speaker::Bot => "bot",
            Speaker::Agent => "agent",
        };
        let mut meta = String::new();
        if let Some(decision) = line.decision {
            let _ = write!(
                meta,
                "<span class=\"decision\">{}</span>",
                name_of(&decision)
            );
        }
        if let Some(confidence) = line.confidence {
            let _ = write!(
                meta,
                " <span class=\"confidence\" title=\"how sure the bot was\">{:.0}%</span>",
                confidence * 100.0
            );
        }
        if let Some(entry) = &line.entry {
            let _ = write!(meta, " <span class=\"entry\">{}</span>", escape(entry));
        }
        if let Some(kind) = line.kind {
            let _ = write!(meta, " <span class=\"kind\">{}</span>", name_of(&kind));
        }
        let _ = write!(
            out,
            "<li class=\"line {speaker}\"><div class=\"who\">{speaker} · {at}</div>\
             <p>{text}</p><div class=\"meta\">{meta}</div></li>",
            at = when(line.at, view.offset_minutes),
            text = escape(&line.text),
        );
    }
    out.push_str("</ol>");
    out
}

fn state_line(view: &LiveView) -> String {
    match (&view.owner, view.waiting) {
        (Some(owner), _) if *owner == view.agent => {
            "<p class=\"state mine\" id=\"state\">You are handling this conversation.</p>".to_string()
        }
        (Some(owner), _) => format!(
            "<p class=\"state other\" id=\"state\">{} is handling this conversation.</p>",
            escape(owner)
        ),
        (None, Some(position)) => format!(
            "<p class=\"state waiting\" id=\"state\">Waiting for a person: number {position} in the queue.</p>"
        ),
        (None, None) => {
            "<p class=\"state bot\" id=\"state\">The bot is answering this customer.</p>".to_string()
        }
    }
}

/// The live part of a conversation's page: its state and transcript.
pub(crate) fn live_section(view: &LiveView) -> String {
    format!(
        "<div id=\"live\">{}{}</div>",
        state_line(view),
        transcript_section(view)
    )
}

fn hidden(csrf: &str, key: &kefu_core::ConversationKey, op: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"op\" value=\"{op}\">\
         <input type=\"hidden\" name=\"c\" value=\"{}\"><input type=\"hidden\" name=\"id\" value=\"{}\">",
        escape(csrf),
        escape(&key.channel),
        escape(&key.id)
    )
}

fn actions(view: &ConversationView, csrf: &str) -> String {
    let key = &view.conversation.key;
    let mut out = String::from("<section class=\"actions\">");
    if view.live.owner.is_none() && view.live.waiting.is_some() {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"/console/act\" class=\"inline\">{}<button id=\"take\">Take this conversation</button></form>",
            hidden(csrf, key, "take")
        );
    }
    let mut canned = String::new();
    for (title, text) in &view.canned {
        let _ = write!(
            canned,
            "<li><button type=\"button\" data-text=\"{}\">{}</button></li>",
            escape(text),
            escape(title)
        );
    }
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/console/act\" id=\"reply\">{h}\
         <textarea name=\"text\" rows=\"3\" placeholder=\"Write to the customer…\" required></textarea>\
         <div class=\"row\"><button type=\"submit\">Send</button>\
         <input type=\"search\" id=\"canned-search\" placeholder=\"Canned replies…\"></div>\
         <ul id=\"canned\">{canned}</ul></form>",
        h = hidden(csrf, key, "reply"),
    );
    let groups: String = view
        .groups
        .iter()
        .map(|g| format!("<option value=\"{0}\">{0}</option>", escape(g)))
        .collect();
    let team: String = view
        .team
        .iter()
        .filter(|a| **a != view.me.name)
        .map(|a| format!("<option value=\"{0}\">{0}</option>", escape(a)))
        .collect();
    let _ = write!(
        out,
        "<details><summary>Transfer</summary><form method=\"post\" action=\"/console/act\" id=\"transfer\">{h}\
         <label>Group <select name=\"group\">{groups}</select></label>\
         <label>or agent <select name=\"agent\"><option value=\"\">—</option>{team}</select></label>\
         <label>Note for them <input name=\"note\" maxlength=\"500\"></label>\
         <button>Transfer</button></form></details>",
        h = hidden(csrf, key, "transfer"),
    );
    let order = view
        .conversation
        .entities
        .get("order_no")
        .cloned()
        .unwrap_or_default();
    let _ = write!(
        out,
        "<details><summary>Open a ticket</summary><form method=\"post\" action=\"/console/act\" id=\"ticket\">{h}\
         <input type=\"hidden\" name=\"form\" value=\"{form}\">\
         <label>Kind <select name=\"kind\"><option>card_key</option><option>delivery</option>\
         <option>refund</option><option>recharge</option><option>account</option><option>general</option></select></label>\
         <label>Order <input name=\"order\" value=\"{order}\"></label>\
         <label>Problem <textarea name=\"description\" rows=\"2\" required></textarea></label>\
         <button>Open ticket (the customer is told)</button></form></details>",
        h = hidden(csrf, key, "ticket"),
        form = kefu_web::cookie::random_hex(8),
        order = escape(&order),
    );
    let _ = write!(
        out,
        "<div class=\"row\"><form method=\"post\" action=\"/console/act\" class=\"inline\">{}\
         <button>Hand back to the bot</button></form>\
         <form method=\"post\" action=\"/console/act\" class=\"inline\">{}\
         <button id=\"close\" class=\"primary\">Close (send the survey)</button></form></div>",
        hidden(csrf, key, "release"),
        hidden(csrf, key, "close"),
    );
    out.push_str("</section>");
    out
}

fn context(view: &ConversationView, csrf: &str) -> String {
    let c = &view.conversation;
    let mut out = String::from("<aside id=\"context\">");
    let _ = write!(
        out,
        "<section><h3>Customer</h3><dl><dt>ID</dt><dd id=\"customer\">{user}</dd>\
         <dt>Channel</dt><dd>{channel}</dd><dt>Language</dt><dd>{locale}</dd>\
         <dt>Since</dt><dd>{since}</dd>",
        user = escape(&c.user),
        channel = escape(&c.key.channel),
        locale = c.locale.code(),
        since = when(c.started_at, view.live.offset_minutes),
    );
    for (kind, value) in &c.entities {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(kind), escape(value));
    }
    out.push_str("</dl></section>");

    if !view.history.is_empty() {
        out.push_str("<section><h3>Hand-offs</h3><ol class=\"history\">");
        for record in &view.history {
            let r = &record.request;
            let _ = write!(
                out,
                "<li>{at} · <b>{reason}</b> → {group} {badges}{entry}{who}{note}</li>",
                at = when(r.enqueued_at, view.live.offset_minutes),
                reason = escape(&name_of(&r.reason)),
                group = escape(&r.skill_group),
                badges = badges(r, false),
                entry = r
                    .entry
                    .as_ref()
                    .map(|e| format!(" · {}", escape(e)))
                    .unwrap_or_default(),
                who = match (&record.claimed_by, record.claimed_at) {
                    (Some(agent), Some(at)) => format!(
                        " · taken by {} after {}",
                        escape(agent),
                        duration(at.saturating_sub(r.enqueued_at))
                    ),
                    _ => String::new(),
                },
                note = r
                    .note
                    .as_ref()
                    .map(|n| format!("<div class=\"note\">{}</div>", escape(n)))
                    .unwrap_or_default(),
            );
        }
        out.push_str("</ol></section>");
    }

    out.push_str("<section><h3>Orders</h3>");
    match &view.orders {
        Err(e) => {
            let _ = write!(
                out,
                "<p class=\"alert\">The order system did not answer: {}</p>",
                escape(e)
            );
        }
        Ok(orders) if orders.is_empty() => {
            out.push_str("<p class=\"empty\">No orders linked to this chat identity.</p>")
        }
        Ok(orders) => {
            out.push_str("<ul class=\"orders\">");
            for order in orders.iter().take(20) {
                let keys = view.keys.get(&order.number).cloned().unwrap_or_default();
                let shown = match &view.revealed {
                    Some((number, revealed)) if *number == order.number => format!(
                        "<div class=\"revealed\">Revealed (recorded in the audit log): <code>{}</code></div>",
                        escape(&revealed.join("  "))
                    ),
                    _ if keys.is_empty() => String::new(),
                    _ => format!(
                        "<div class=\"keys\">Keys: <code>{}</code>\
                         <form method=\"post\" action=\"/console/act\" class=\"inline reveal\">{h}\
                         <input type=\"hidden\" name=\"order\" value=\"{n}\">\
                         <input name=\"reason\" placeholder=\"why (audited)\" required>\
                         <button>Reveal</button></form></div>",
                        escape(&keys.join("  ")),
                        h = hidden(csrf, &c.key, "reveal"),
                        n = escape(&order.number),
                    ),
                };
                let _ = write!(
                    out,
                    "<li><b>{n}</b> {product} · {status} · {amount}{paid}{shown}</li>",
                    n = escape(&order.number),
                    product = escape(&order.product),
                    status = order.status.as_str(),
                    amount = escape(&kefu_core::flows::refund_request::money(
                        order.amount_cents,
                        &order.currency
                    )),
                    paid = order
                        .paid_at
                        .map(|t| format!(" · paid {}", when(t, view.live.offset_minutes)))
                        .unwrap_or_default(),
                );
            }
            out.push_str("</ul>");
        }
    }
    out.push_str("</section>");

    out.push_str("<section><h3>Tickets</h3>");
    if view.tickets.is_empty() {
        out.push_str("<p class=\"empty\">None.</p>");
    } else {
        out.push_str("<ul class=\"tickets\">");
        for t in &view.tickets {
            let late = !t.status.is_final() && t.due_at < view.now;
            let options: String = kefu_core::tickets::TicketStatus::ALL
                .iter()
                .map(|st| {
                    format!(
                        "<option value=\"{0}\"{1}>{0}</option>",
                        st.as_str(),
                        if *st == t.status { " selected" } else { "" }
                    )
                })
                .collect();
            let update = format!(
                "<form method=\"post\" action=\"/console/act\" class=\"ticket-update\">{h}\
                 <input type=\"hidden\" name=\"ticket\" value=\"{n}\">\
                 <select name=\"status\">{options}</select>\
                 <input name=\"note\" placeholder=\"note for the customer\" maxlength=\"500\">\
                 <button>Update</button></form>",
                h = hidden(csrf, &c.key, "ticket_update"),
                n = escape(&t.number),
            );
            let _ = write!(
                out,
                "<li><b>{n}</b> {kind} · {status} · due {due}{late}<div>{desc}</div>{update}</li>",
                n = escape(&t.number),
                kind = escape(&t.kind),
                status = t.status.as_str(),
                due = when(t.due_at, view.live.offset_minutes),
                late = if late {
                    " <span class=\"badge late\">overdue</span>"
                } else {
                    ""
                },
                desc = escape(&t.description),
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");

    out.push_str("<section><h3>Ratings</h3>");
    if c.ratings.is_empty() {
        out.push_str("<p class=\"empty\">None yet.</p>");
    } else {
        out.push_str("<ul class=\"ratings\">");
        for rating in &c.ratings {
            let _ = write!(
                out,
                "<li>{stars} {score}/5{agent}{comment}</li>",
                stars = "★".repeat(usize::from(rating.score.min(5))),
                score = rating.score,
                agent = rating
                    .agent
                    .as_ref()
                    .map(|a| format!(" · {}", escape(a)))
                    .unwrap_or_default(),
                comment = rating
                    .comment
                    .as_ref()
                    .map(|t| format!(" · “{}”", escape(t)))
                    .unwrap_or_default(),
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");

    if !view.earlier.is_empty() {
        out.push_str("<section><h3>Earlier conversations</h3><ul class=\"earlier\">");
        for earlier in &view.earlier {
            let _ = write!(
                out,
                "<li><a href=\"/console/conversation?{q}\">{channel} · {at}</a> ({holder})</li>",
                q = escape(&conversation_query(&earlier.key)),
                channel = escape(&earlier.key.channel),
                at = when(earlier.updated_at, view.live.offset_minutes),
                holder = escape(&earlier.holder),
            );
        }
        out.push_str("</ul></section>");
    }
    out.push_str("</aside>");
    out
}

/// A conversation's page.
pub(crate) fn conversation_page(view: &ConversationView, csrf: &str) -> String {
    format!(
        "{head}<body data-live=\"conversation\" data-key=\"{key}\" data-query=\"{query}\">{top}\
         <main class=\"conversation\"><div class=\"talk\"><h1>{user} <span class=\"channel\">{channel}</span></h1>\
         {public}{live}{actions}</div>{context}</main>\
         <script src=\"/console/static/console.js\"></script></body></html>",
        head = head(&format!("{} · kefu console", view.conversation.user)),
        key = escape(&super::change_id(&view.conversation.key)),
        query = escape(&conversation_query(&view.conversation.key)),
        top = top_bar(&view.me, csrf),
        user = escape(&view.conversation.user),
        channel = escape(&view.conversation.key.channel),
        public = if in_a_group(&view.conversation.key) {
            "<p class=\"notice\" id=\"group-chat\">Group chat: your replies are posted in the \
             group, where everyone in it reads them. Never send card keys or personal details \
             here; ask the customer to message the bot privately.</p>"
        } else {
            ""
        },
        live = live_section(&view.live),
        actions = actions(view, csrf),
        context = context(view, csrf),
    )
}

/// Whether the conversation is one member's in a group chat (Telegram's and Discord's
/// `chat:user` keys), where the customer's replies are public.
fn in_a_group(key: &kefu_core::ConversationKey) -> bool {
    matches!(key.channel.as_str(), "telegram" | "discord") && key.id.contains(':')
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_string(), |v| format!("{:.0}%", v * 100.0))
}

fn spread(s: &Spread) -> String {
    match (s.p50_ms, s.p90_ms) {
        (Some(p50), Some(p90)) => format!("{} / {}", duration(p50), duration(p90)),
        _ => "—".to_string(),
    }
}

fn slice_rows(out: &mut String, title: &str, slices: &BTreeMap<String, Slice>) {
    let _ = write!(
        out,
        "<section><h2>{title}</h2><table class=\"slices\"><thead><tr><th></th><th>Hand-offs</th>\
         <th>First reply p50 / p90</th><th>Queue wait p50 / p90</th><th>Resolution p50 / p90</th>\
         <th>FCR</th><th>CSAT</th><th>Ratings</th></tr></thead><tbody>"
    );
    for (name, s) in slices {
        let _ = write!(
            out,
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            s.handoffs,
            spread(&s.first_reply),
            spread(&s.queue_wait),
            spread(&s.resolution),
            percent(s.fcr),
            s.csat_average
                .map_or_else(|| "—".to_string(), |v| format!("{v:.2}")),
            s.ratings
        );
    }
    out.push_str("</tbody></table></section>");
}

/// The admins' dashboard over the last `days` days.
pub(crate) fn dashboard_page(me: &Account, report: &Report, days: u64, csrf: &str) -> String {
    let mut out = format!(
        "{}<body data-live=\"\">{}<main class=\"dashboard\"><h1>Service over the last {days} day(s)</h1>\
         <form method=\"get\" action=\"/console/dashboard\" class=\"inline\"><select name=\"days\">",
        head("Dashboard · kefu console"),
        top_bar(me, csrf)
    );
    for d in [1, 7, 30, 90] {
        let _ = write!(
            out,
            "<option value=\"{d}\"{}>{d} day(s)</option>",
            if d == days { " selected" } else { "" }
        );
    }
    out.push_str("</select><button>Show</button></form>");
    let reasons: Vec<String> = report
        .handoff_reasons
        .iter()
        .map(|(r, n)| format!("{} {n}", escape(r)))
        .collect();
    let tiles = [
        (
            "conversations",
            "Conversations",
            report.conversations.to_string(),
        ),
        (
            "containment",
            "Solved by the bot",
            percent(report.containment()),
        ),
        ("handoffs", "Hand-offs", report.handoffs.to_string()),
        (
            "handoff-rate",
            "Hand-off rate",
            percent(
                (report.conversations > 0)
                    .then(|| report.handoffs as f64 / report.conversations as f64),
            ),
        ),
        (
            "reasons",
            "Why",
            if reasons.is_empty() {
                "—".to_string()
            } else {
                reasons.join(", ")
            },
        ),
        (
            "first-reply",
            "First human reply p50 / p90",
            spread(&report.first_reply),
        ),
        (
            "queue-wait",
            "Queue wait p50 / p90",
            spread(&report.queue_wait),
        ),
        (
            "resolution",
            "Resolution p50 / p90",
            spread(&report.resolution),
        ),
        ("fcr", "First-contact resolution", percent(report.fcr)),
        (
            "csat",
            "CSAT (average of 5)",
            report
                .csat_average
                .map_or_else(|| "—".to_string(), |v| format!("{v:.2}")),
        ),
        ("ratings", "Ratings", report.ratings.to_string()),
        (
            "response-rate",
            "Survey response rate",
            percent(report.response_rate),
        ),
        (
            "overdue",
            "Tickets overdue",
            report.tickets_overdue.to_string(),
        ),
    ];
    out.push_str("<div class=\"tiles\">");
    for (id, label, value) in tiles {
        let _ = write!(
            out,
            "<div class=\"tile\" id=\"{id}\"><div class=\"label\">{label}</div><div class=\"value\">{value}</div></div>"
        );
    }
    out.push_str("</div>");
    slice_rows(&mut out, "By group", &report.groups);
    slice_rows(&mut out, "By agent", &report.agents);
    out.push_str("<p class=\"hint\">The same figures: <code>kefu report --since 7d</code> and <code>/metrics</code>.</p></main></body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_read_naturally() {
        // 2026-12-03 04:00 UTC is 12:00 in UTC+8.
        assert_eq!(when(1_796_270_400_000, 480), "12-03 12:00");
        assert_eq!(when(0, 0), "01-01 00:00");
        assert_eq!(duration(42_000), "42 s");
        assert_eq!(duration(185_000), "3 min 5 s");
        assert_eq!(duration(7_500_000), "2 h 5 min");
    }

    #[test]
    fn markup_from_customers_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
