//! kefu-orders-file: reading order files for `kefu orders import FILE`.
//!
//! Shops without an order system of their own keep their orders in kefu's embedded order
//! tables, filled from a CSV, JSON or JSON Lines file. This crate only parses and validates
//! such a file into [`OrderRecord`]s; storing them is `kefu_sql::SqlOrders::import`.
//!
//! The rule is all or nothing: [`parse_orders`] returns every record when every row is good,
//! and otherwise every problem of every row, each with the line it stands on, so the
//! operator can fix the whole file in one go and nothing half-imported is left behind.
//!
//! ```
//! use kefu_orders_file::{parse_orders, ImportOptions};
//! use std::path::Path;
//!
//! let text = "order_no,product,status,amount,card_keys\n\
//!             A1001,Steam 100,已发货,100,KEY-1;KEY-2\n";
//! let records = parse_orders(Path::new("orders.csv"), text, &ImportOptions::default()).unwrap();
//! assert_eq!(records[0].order.amount_cents, 10_000);
//! assert_eq!(records[0].card_keys, ["KEY-1", "KEY-2"]);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
use kefu_core::similar::edit_distance;
use kefu_core::{Buyer, Order, OrderStatus};
use serde_json::Value;

/// One order of an import file: the order, who bought it, and its card keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    /// The 1-based line where the order's row (CSV, JSON Lines) or object (JSON) starts.
    pub line: usize,
    /// The order. Its number is trimmed, without whitespace inside, at most 64 characters;
    /// the amount is 0, the currency `CNY` (else a 3-letter upper-case code) and the quantity
    /// 1 when the file gives none.
    pub order: Order,
    /// Who bought it: e-mail lower-cased, phone digits only, channel lower-cased (channel and
    /// user are given together or not at all).
    pub buyer: Buyer,
    /// The order's query password (查询密码) as given, trimmed. Stored hashed.
    pub query_password: Option<String>,
    /// The order's card keys (卡密), in file order: trimmed, non-empty, no duplicates.
    pub card_keys: Vec<String>,
}

/// One problem of an import file: a bad row, or a problem of the whole file.
///
/// Displays as `file:line: message`. `line` is the line of the row or of the problem; it is 0
/// when the problem has no line (an unreadable file, an unknown file type).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct RowError {
    /// The file, as given.
    pub path: String,
    /// The 1-based line of the problem, or 0 for the whole file.
    pub line: usize,
    /// What is wrong and what to do about it.
    pub message: String,
}

/// The format of an import file, told by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `.csv`: a header line naming the columns, then one row per order.
    Csv,
    /// `.json`: an array of order objects.
    Json,
    /// `.jsonl` or `.ndjson`: one order object per line.
    JsonLines,
}

impl Format {
    /// The format of the file at `path`, by its extension (case-insensitive), or `None` when
    /// the extension is none of `.csv`, `.json`, `.jsonl` and `.ndjson`.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            "jsonl" | "ndjson" => Some(Format::JsonLines),
            _ => None,
        }
    }
}

/// How an import file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportOptions {
    /// The UTC offset, in seconds, of times written without one (`2026-11-23 14:05`).
    /// Must be less than a day either way. Default: `+08:00` (China), 28 800.
    pub naive_offset_seconds: i32,
}

impl Default for ImportOptions {
    /// Naive times are China time, `+08:00`.
    fn default() -> Self {
        ImportOptions {
            naive_offset_seconds: 8 * 3600,
        }
    }
}

/// Parses and validates a whole import file whose content is `text`; the format comes from
/// `path`'s extension (see [`Format::from_path`]) and `path` names the file in errors.
///
/// Returns every record when every row is good; otherwise every problem found, in line
/// order, and no records. A UTF-8 byte order mark is ignored; CRLF line ends are fine.
pub fn parse_orders(
    path: &Path,
    text: &str,
    options: &ImportOptions,
) -> Result<Vec<OrderRecord>, Vec<RowError>> {
    let shown = path.display().to_string();
    let whole_file = |line: usize, message: String| {
        vec![RowError {
            path: shown.clone(),
            line,
            message,
        }]
    };
    let Some(format) = Format::from_path(path) else {
        return Err(whole_file(0, unknown_format_message(path)));
    };
    let Some(offset) = FixedOffset::east_opt(options.naive_offset_seconds) else {
        return Err(whole_file(
            0,
            format!(
                "the time zone offset {} s is out of range — give an offset of less than a day, \
                 e.g. 28800 for +08:00",
                options.naive_offset_seconds
            ),
        ));
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        let what = match format {
            Format::Csv => {
                "a header line naming the columns (order_no,product,status,...) and one row \
                 per order"
            }
            Format::Json => "a JSON array of order objects: [{\"order_no\": ...}, ...]",
            Format::JsonLines => "one JSON order object per line",
        };
        return Err(whole_file(
            1,
            format!("the file is empty — it needs {what}"),
        ));
    }

    let mut problems = Problems::default();
    let rows = match format {
        Format::Csv => csv_rows(text, &mut problems),
        Format::Json => json_rows(text, &mut problems),
        Format::JsonLines => json_lines_rows(text, &mut problems),
    };
    let mut seen = HashMap::new();
    let mut records = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(record) = build_record(row, offset, &mut seen, &mut problems) {
            records.push(record);
        }
    }
    if problems.list.is_empty() {
        Ok(records)
    } else {
        let mut list = problems.list;
        list.sort_by_key(|(line, _)| *line);
        Err(list
            .into_iter()
            .map(|(line, message)| RowError {
                path: shown.clone(),
                line,
                message,
            })
            .collect())
    }
}

/// Reads the file at `path` and [parses](parse_orders) it.
///
/// A file that cannot be read, or whose extension is not one of `.csv`, `.json`, `.jsonl`
/// and `.ndjson`, is one [`RowError`] with line 0; a file that is not UTF-8 (a GBK export,
/// say) is one error at the line of the first bad byte.
pub fn read_orders(
    path: &Path,
    options: &ImportOptions,
) -> Result<Vec<OrderRecord>, Vec<RowError>> {
    let error = |line: usize, message: String| {
        vec![RowError {
            path: path.display().to_string(),
            line,
            message,
        }]
    };
    if Format::from_path(path).is_none() {
        return Err(error(0, unknown_format_message(path)));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        error(
            0,
            format!("cannot read the file: {e} — check the path and that you may read it"),
        )
    })?;
    match String::from_utf8(bytes) {
        Ok(text) => parse_orders(path, &text, options),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let line = 1 + e.as_bytes()[..valid]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            Err(error(
                line,
                "the file is not UTF-8 text (it may be GBK, as Excel saves CSV on Chinese \
                 Windows) — save it as UTF-8, e.g. with Excel's \"CSV UTF-8 (逗号分隔)\""
                    .to_string(),
            ))
        }
    }
}

fn unknown_format_message(path: &Path) -> String {
    format!(
        "cannot tell the format of \"{}\" from its name — use a .csv, .json, .jsonl or .ndjson \
         file",
        path.display()
    )
}

/// Problems found so far, with their lines.
#[derive(Default)]
struct Problems {
    list: Vec<(usize, String)>,
}

impl Problems {
    fn push(&mut self, line: usize, message: String) {
        self.list.push((line, message));
    }
}

/// The fields of an order, as named in CSV headers and JSON keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Field {
    OrderNo,
    Product,
    Status,
    Amount,
    Currency,
    Quantity,
    BuyerEmail,
    BuyerPhone,
    QueryPassword,
    BuyerChannel,
    BuyerUser,
    CreatedAt,
    PaidAt,
    DeliveredAt,
    DeliveryDueAt,
    CardKeys,
    Redeem,
}

const FIELDS: [Field; 17] = [
    Field::OrderNo,
    Field::Product,
    Field::Status,
    Field::Amount,
    Field::Currency,
    Field::Quantity,
    Field::BuyerEmail,
    Field::BuyerPhone,
    Field::QueryPassword,
    Field::BuyerChannel,
    Field::BuyerUser,
    Field::CreatedAt,
    Field::PaidAt,
    Field::DeliveredAt,
    Field::DeliveryDueAt,
    Field::CardKeys,
    Field::Redeem,
];

const REQUIRED: [Field; 3] = [Field::OrderNo, Field::Product, Field::Status];

/// Names that are not fields but that people use for one: suggested, never accepted.
const HINTS: [(&str, Field); 24] = [
    ("order", Field::OrderNo),
    ("order_number", Field::OrderNo),
    ("订单号", Field::OrderNo),
    ("订单编号", Field::OrderNo),
    ("商品", Field::Product),
    ("商品名称", Field::Product),
    ("state", Field::Status),
    ("状态", Field::Status),
    ("订单状态", Field::Status),
    ("price", Field::Amount),
    ("total", Field::Amount),
    ("金额", Field::Amount),
    ("qty", Field::Quantity),
    ("数量", Field::Quantity),
    ("email", Field::BuyerEmail),
    ("邮箱", Field::BuyerEmail),
    ("phone", Field::BuyerPhone),
    ("手机", Field::BuyerPhone),
    ("password", Field::QueryPassword),
    ("查询密码", Field::QueryPassword),
    ("keys", Field::CardKeys),
    ("cards", Field::CardKeys),
    ("卡密", Field::CardKeys),
    ("下单时间", Field::CreatedAt),
];

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::OrderNo => "order_no",
            Field::Product => "product",
            Field::Status => "status",
            Field::Amount => "amount",
            Field::Currency => "currency",
            Field::Quantity => "quantity",
            Field::BuyerEmail => "buyer_email",
            Field::BuyerPhone => "buyer_phone",
            Field::QueryPassword => "query_password",
            Field::BuyerChannel => "buyer_channel",
            Field::BuyerUser => "buyer_user",
            Field::CreatedAt => "created_at",
            Field::PaidAt => "paid_at",
            Field::DeliveredAt => "delivered_at",
            Field::DeliveryDueAt => "delivery_due_at",
            Field::CardKeys => "card_keys",
            Field::Redeem => "redeem",
        }
    }

    /// The field a header cell or key names: trimmed, case-insensitive, spaces and dashes
    /// read as underscores; `number` is `order_no`.
    fn lookup(key: &str) -> Option<Field> {
        let key = normalize_key(key);
        if key == "number" {
            return Some(Field::OrderNo);
        }
        FIELDS.into_iter().find(|f| f.name() == key)
    }

    /// Fields kept as text, where a JSON number must be exact.
    fn is_text(self) -> bool {
        !matches!(
            self,
            Field::Amount
                | Field::Quantity
                | Field::CreatedAt
                | Field::PaidAt
                | Field::DeliveredAt
                | Field::DeliveryDueAt
        )
    }
}

fn normalize_key(key: &str) -> String {
    key.trim().to_lowercase().replace([' ', '-'], "_")
}

/// "unknown column "prodcut" — did you mean "product"? ..." for `kind` "column" or "key".
fn unknown_key_message(kind: &str, key: &str) -> String {
    let key_shown = key.trim();
    match suggest(&normalize_key(key)) {
        Some(name) => format!(
            "unknown {kind} \"{key_shown}\" — did you mean \"{name}\"? Rename it, or remove it"
        ),
        None => {
            let names: Vec<&str> = FIELDS.iter().map(|f| f.name()).collect();
            format!(
                "unknown {kind} \"{key_shown}\" — remove it, or rename it to one of {}",
                names.join(", ")
            )
        }
    }
}

/// The field name closest to `key` (edit distance at most 2), or the one a common other
/// name stands for.
fn suggest(key: &str) -> Option<&'static str> {
    let names = FIELDS.iter().map(|f| (f.name(), f.name()));
    let hints = HINTS.iter().map(|(hint, field)| (*hint, field.name()));
    let mut best: Option<(usize, &'static str)> = None;
    for (candidate, name) in names.chain([("number", "number")]).chain(hints) {
        // Every field name is long enough for 2 edits; short other names allow fewer.
        let allowed = match candidate.chars().count() {
            0..=2 => 0,
            3..=4 => 1,
            _ => 2,
        };
        let distance = edit_distance(key, candidate);
        if distance <= allowed && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, name));
        }
    }
    best.map(|(_, name)| name)
}

/// A field's value as the file gives it.
#[derive(Debug)]
enum Raw {
    /// Text, trimmed and non-empty (a CSV cell, a JSON string or number).
    Text(String),
    /// A JSON array of card keys.
    List(Vec<String>),
}

/// A row or object of the file, before validation.
#[derive(Debug)]
struct RawRow {
    line: usize,
    values: BTreeMap<Field, Raw>,
}

impl RawRow {
    fn text(&self, field: Field) -> Option<&str> {
        match self.values.get(&field) {
            Some(Raw::Text(text)) => Some(text),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CSV

/// The separator of a CSV file: a comma unless the header line has more tabs or semicolons.
fn sniff_delimiter(text: &str) -> u8 {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let count = |c: char| first.matches(c).count();
    let (commas, tabs, semicolons) = (count(','), count('\t'), count(';'));
    if tabs > commas && tabs >= semicolons {
        b'\t'
    } else if semicolons > commas && semicolons > tabs {
        b';'
    } else {
        b','
    }
}

fn csv_rows(text: &str, problems: &mut Problems) -> Vec<RawRow> {
    let delimiter = sniff_delimiter(text);
    let separator = match delimiter {
        b'\t' => "a tab",
        b';' => "a semicolon",
        _ => "a comma",
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let mut record = csv::StringRecord::new();
    let lines = LineIndex::new(text);
    let record_line = |record: &csv::StringRecord| csv_line(text, &lines, record.position());

    // The header.
    match reader.read_record(&mut record) {
        Ok(true) => {}
        Ok(false) => {
            problems.push(1, "the file is empty — it needs a header line".to_string());
            return Vec::new();
        }
        Err(e) => {
            problems.push(csv_line(text, &lines, e.position()), csv_error_message(&e));
            return Vec::new();
        }
    }
    let header_line = record_line(&record).max(1);
    let mut columns: Vec<Option<Field>> = Vec::with_capacity(record.len());
    let mut unnamed = Vec::new();
    let mut named: HashMap<Field, String> = HashMap::new();
    for (index, name) in record.iter().enumerate() {
        if name.trim().is_empty() {
            columns.push(None);
            unnamed.push(index);
            continue;
        }
        match Field::lookup(name) {
            Some(field) => {
                if let Some(first) = named.get(&field) {
                    problems.push(
                        header_line,
                        format!(
                            "the columns \"{first}\" and \"{}\" both give {} — keep one of them",
                            name.trim(),
                            field.name()
                        ),
                    );
                    columns.push(None);
                } else {
                    named.insert(field, name.trim().to_string());
                    columns.push(Some(field));
                }
            }
            None => {
                problems.push(header_line, unknown_key_message("column", name));
                columns.push(None);
            }
        }
    }
    let missing: Vec<&str> = REQUIRED
        .iter()
        .filter(|f| !named.contains_key(f))
        .map(|f| f.name())
        .collect();
    if !missing.is_empty() {
        let what = if missing.len() == 1 {
            format!("column {}", missing[0])
        } else {
            format!("columns {}", missing.join(", "))
        };
        problems.push(
            header_line,
            format!(
                "the header has no {what} — the first line must name the columns, at least \
                 order_no, product and status (e.g. order_no,product,status,amount,card_keys)"
            ),
        );
        return Vec::new();
    }

    // The rows.
    let mut rows = Vec::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                problems.push(csv_line(text, &lines, e.position()), csv_error_message(&e));
                break;
            }
        }
        let line = record_line(&record);
        if record.iter().all(|cell| cell.trim().is_empty()) {
            continue;
        }
        if record.len() > columns.len()
            && record
                .iter()
                .skip(columns.len())
                .any(|cell| !cell.trim().is_empty())
        {
            problems.push(
                line,
                format!(
                    "this row has {} cells but the header names {} columns — a value that \
                     contains {separator} must be put in double quotes",
                    record.len(),
                    columns.len()
                ),
            );
            continue;
        }
        let mut values = BTreeMap::new();
        for (index, cell) in record.iter().enumerate() {
            let cell = cell.trim();
            if cell.is_empty() {
                continue;
            }
            match columns.get(index) {
                Some(Some(field)) => {
                    values.insert(*field, Raw::Text(cell.to_string()));
                }
                Some(None) if unnamed.contains(&index) => problems.push(
                    line,
                    format!(
                        "column {} has a value but no name in the header — name the column, or \
                         delete the value",
                        index + 1
                    ),
                ),
                _ => {}
            }
        }
        rows.push(RawRow { line, values });
    }
    rows
}

/// The line where a record starts.
///
/// Not `Position::line()`: the csv crate's position is where the reader stood before the
/// record, which is still on the previous line after a CRLF line end and on any blank line
/// skipped before the record, and its line count misses CRLFs inside quoted cells. The byte
/// offset is exact, so the line is counted from there, past any line breaks.
fn csv_line(text: &str, lines: &LineIndex, position: Option<&csv::Position>) -> usize {
    let bytes = text.as_bytes();
    let mut offset = position.map_or(0, |p| usize::try_from(p.byte()).unwrap_or(usize::MAX));
    offset = offset.min(bytes.len());
    while offset < bytes.len() && matches!(bytes[offset], b'\r' | b'\n') {
        offset += 1;
    }
    lines.line_of(offset)
}

fn csv_error_message(error: &csv::Error) -> String {
    format!("this is not readable CSV ({error}) — check the quotes of this line")
}

// ---------------------------------------------------------------------------------------------
// JSON

/// Byte offsets of line starts, to turn offsets into 1-based lines.
struct LineIndex {
    newlines: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        LineIndex {
            newlines: text
                .bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&nl| nl < offset) + 1
    }
}

/// The byte offsets where the elements of the top-level JSON array of `text` start.
///
/// A scanner, not a parser: it keeps track of strings (with their escapes) and of nesting,
/// and notes the first byte of each value directly inside the outermost brackets. Run on text
/// serde_json accepted, it finds exactly one start per element.
fn element_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut expecting = false;
    for (i, byte) in text.bytes().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        let mut mark = |starts: &mut Vec<usize>| {
            if depth == 1 && expecting {
                starts.push(i);
                expecting = false;
            }
        };
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'"' => {
                mark(&mut starts);
                in_string = true;
            }
            b'[' | b'{' => {
                mark(&mut starts);
                depth += 1;
                if depth == 1 {
                    expecting = byte == b'[';
                }
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                expecting = false;
            }
            b',' => {
                if depth == 1 {
                    expecting = true;
                }
            }
            _ => mark(&mut starts),
        }
    }
    starts
}

/// serde_json's message without its "at line L column C", plus the column.
fn json_error_text(error: &serde_json::Error) -> String {
    let full = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full);
    format!("{message}, column {}", error.column())
}

fn json_rows(text: &str, problems: &mut Problems) -> Vec<RawRow> {
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(e) => {
            let hint = if e.to_string().starts_with("trailing characters") {
                " — a .json file holds one array of orders; for one object per line, name the \
                 file .jsonl"
            } else {
                " — fix the syntax here (a missing comma, quote or bracket is the usual cause)"
            };
            problems.push(
                e.line().max(1),
                format!("this is not valid JSON ({}){hint}", json_error_text(&e)),
            );
            return Vec::new();
        }
    };
    let lines = LineIndex::new(text);
    let Value::Array(items) = value else {
        let first = text.find(|c: char| !c.is_whitespace()).unwrap_or(0);
        let hint = if value.is_object() {
            "put the orders in an array: [{...}, {...}], or name the file .jsonl for one object \
             per line"
        } else {
            "write the orders as an array of objects: [{\"order_no\": ...}, ...]"
        };
        problems.push(
            lines.line_of(first),
            format!("the file is not a JSON array of orders — {hint}"),
        );
        return Vec::new();
    };
    let starts = element_starts(text);
    let mut rows = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let line = starts.get(index).map_or(1, |&offset| lines.line_of(offset));
        if let Some(row) = object_row(item, line, Some(index + 1), problems) {
            rows.push(row);
        }
    }
    rows
}

fn json_lines_rows(text: &str, problems: &mut Problems) -> Vec<RawRow> {
    let mut rows = Vec::new();
    for (index, content) in text.lines().enumerate() {
        let line = index + 1;
        if content.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(content) {
            Ok(value) => {
                if let Some(row) = object_row(value, line, None, problems) {
                    rows.push(row);
                }
            }
            Err(e) => problems.push(
                line,
                format!(
                    "this line is not valid JSON ({}) — each line must be one whole order \
                     object, {{\"order_no\": ...}}",
                    json_error_text(&e)
                ),
            ),
        }
    }
    rows
}

/// The fields of one JSON order object; `None` (with problems noted) when it is no object.
fn object_row(
    value: Value,
    line: usize,
    item: Option<usize>,
    problems: &mut Problems,
) -> Option<RawRow> {
    let Value::Object(map) = value else {
        let what = match item {
            Some(n) => format!("item {n} of the array is {}", json_kind(&value)),
            None => format!("this line is {}", json_kind(&value)),
        };
        problems.push(
            line,
            format!("{what}, not an order — each order is an object: {{\"order_no\": ...}}"),
        );
        return None;
    };
    let mut values = BTreeMap::new();
    let mut named: HashMap<Field, String> = HashMap::new();
    for (key, value) in map {
        let Some(field) = Field::lookup(&key) else {
            problems.push(line, unknown_key_message("key", &key));
            continue;
        };
        if let Some(first) = named.get(&field) {
            problems.push(
                line,
                format!(
                    "the keys \"{first}\" and \"{key}\" both give {} — keep one of them",
                    field.name()
                ),
            );
            continue;
        }
        named.insert(field, key);
        match json_raw(field, value) {
            Ok(Some(raw)) => {
                values.insert(field, raw);
            }
            Ok(None) => {}
            Err(message) => problems.push(line, message),
        }
    }
    Some(RawRow { line, values })
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A JSON value as a field's raw value; `None` for null and empty strings.
fn json_raw(field: Field, value: Value) -> Result<Option<Raw>, String> {
    let name = field.name();
    match value {
        Value::Null => Ok(None),
        Value::String(s) => {
            let s = s.trim();
            Ok((!s.is_empty()).then(|| Raw::Text(s.to_string())))
        }
        Value::Number(n) => {
            if field.is_text() && !(n.is_i64() || n.is_u64()) {
                Err(format!(
                    "{name} is the number {n}, which JSON cannot keep exactly — write it as text \
                     in quotes"
                ))
            } else {
                Ok(Some(Raw::Text(n.to_string())))
            }
        }
        Value::Array(items) if field == Field::CardKeys => {
            let mut keys = Vec::with_capacity(items.len());
            let mut bad = Vec::new();
            for (index, item) in items.into_iter().enumerate() {
                match item {
                    Value::String(s) if !s.trim().is_empty() => keys.push(s.trim().to_string()),
                    Value::Number(n) if n.is_i64() || n.is_u64() => keys.push(n.to_string()),
                    _ => bad.push(index + 1),
                }
            }
            if bad.is_empty() {
                Ok((!keys.is_empty()).then_some(Raw::List(keys)))
            } else {
                let items: Vec<String> = bad.iter().map(|n| n.to_string()).collect();
                let which = if bad.len() == 1 { "item" } else { "items" };
                Err(format!(
                    "card_keys has an empty or non-text key ({which} {} of the list) — give each \
                     key as a non-empty string",
                    items.join(", ")
                ))
            }
        }
        other => {
            let expected = if field == Field::CardKeys {
                "a list of strings, or one string"
            } else if field.is_text() {
                "a string"
            } else {
                "a number or a string"
            };
            Err(format!("{name} is {} — give {expected}", json_kind(&other)))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validation

/// Validates one row; `None` (with its problems noted) when anything is wrong with it.
/// `seen` maps the order numbers met so far to their lines.
fn build_record(
    row: RawRow,
    offset: FixedOffset,
    seen: &mut HashMap<String, usize>,
    problems: &mut Problems,
) -> Option<OrderRecord> {
    let mut errors: Vec<String> = Vec::new();

    let number = required(
        &mut errors,
        row.text(Field::OrderNo),
        "order_no is missing — give the order number of every order",
        parse_number,
    );
    if let Some(number) = &number {
        match seen.get(number) {
            Some(first) => errors.push(format!(
                "order number \"{number}\" is already on line {first} — each order may appear \
                 once; merge the two (all of an order's keys go in one card_keys)"
            )),
            None => {
                seen.insert(number.clone(), row.line);
            }
        }
    }
    let product = required(
        &mut errors,
        row.text(Field::Product),
        "product is missing — give what was bought",
        |s| Ok(s.to_string()),
    );
    let status = required(
        &mut errors,
        row.text(Field::Status),
        "status is missing — give one of awaiting_payment, paid, delivering, delivered, failed, \
         refunded, cancelled (or 待付款, 已付款, 发货中, 已发货, 失败, 已退款, 已取消)",
        parse_status,
    );
    let amount_cents = optional(&mut errors, row.text(Field::Amount), parse_amount).unwrap_or(0);
    let currency = optional(&mut errors, row.text(Field::Currency), parse_currency)
        .unwrap_or_else(|| "CNY".to_string());
    let quantity = optional(&mut errors, row.text(Field::Quantity), parse_quantity).unwrap_or(1);
    let buyer_email = optional(&mut errors, row.text(Field::BuyerEmail), parse_email);
    let buyer_phone = optional(&mut errors, row.text(Field::BuyerPhone), parse_phone);
    let query_password = row.text(Field::QueryPassword).map(str::to_string);
    let buyer_channel = optional(&mut errors, row.text(Field::BuyerChannel), parse_channel);
    let buyer_user = row.text(Field::BuyerUser).map(str::to_string);
    let time = |errors: &mut Vec<String>, field: Field| {
        optional(errors, row.text(field), |s| parse_time(field, s, offset))
    };
    let created_at = time(&mut errors, Field::CreatedAt);
    let paid_at = time(&mut errors, Field::PaidAt);
    let delivered_at = time(&mut errors, Field::DeliveredAt);
    let delivery_due_at = time(&mut errors, Field::DeliveryDueAt);
    let card_keys = match row.values.get(&Field::CardKeys) {
        None => Vec::new(),
        Some(Raw::Text(text)) => split_keys(text),
        Some(Raw::List(keys)) => keys.clone(),
    };
    if let Some(message) = duplicate_key(&card_keys) {
        errors.push(message);
    }
    let redeem = row.text(Field::Redeem).map(str::to_string);

    // Rules across fields.
    if status == Some(OrderStatus::AwaitingPayment) && !card_keys.is_empty() {
        errors.push(
            "an unpaid order cannot carry card keys — set its status to paid or delivered, or \
             remove its card_keys"
                .to_string(),
        );
    }
    match (
        row.text(Field::BuyerChannel).is_some(),
        buyer_user.is_some(),
    ) {
        (true, false) => errors.push(
            "buyer_channel is given without buyer_user — give both (the channel and the buyer's \
             user id on it) or neither"
                .to_string(),
        ),
        (false, true) => errors.push(
            "buyer_user is given without buyer_channel — give both (the channel, e.g. telegram, \
             and the buyer's user id on it) or neither"
                .to_string(),
        ),
        _ => {}
    }
    if let (Some(created), Some(paid)) = (created_at, paid_at) {
        if paid < created {
            errors.push(format!(
                "paid_at \"{}\" is before created_at \"{}\" — an order is paid after it is \
                 created; check both times and their time zones",
                row.text(Field::PaidAt).unwrap_or_default(),
                row.text(Field::CreatedAt).unwrap_or_default(),
            ));
        }
    }

    let line = row.line;
    if !errors.is_empty() {
        for message in errors {
            problems.push(line, message);
        }
        return None;
    }
    let (Some(number), Some(product), Some(status)) = (number, product, status) else {
        return None;
    };
    Some(OrderRecord {
        line,
        order: Order {
            number,
            product,
            status,
            amount_cents,
            currency,
            quantity,
            created_at,
            paid_at,
            delivered_at,
            delivery_due_at,
            redeem,
        },
        buyer: Buyer {
            email: buyer_email,
            phone: buyer_phone,
            channel: buyer_channel,
            user: buyer_user,
        },
        query_password,
        card_keys,
    })
}

/// `parse` of a required value; notes `missing` when there is none.
fn required<T>(
    errors: &mut Vec<String>,
    value: Option<&str>,
    missing: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    match value {
        None => {
            errors.push(missing.to_string());
            None
        }
        Some(value) => parse(value).map_err(|e| errors.push(e)).ok(),
    }
}

/// `parse` of an optional value; `None` when absent or bad (and then noted).
fn optional<T>(
    errors: &mut Vec<String>,
    value: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    parse(value?).map_err(|e| errors.push(e)).ok()
}

fn parse_number(s: &str) -> Result<String, String> {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "order number \"{s}\" contains whitespace — an order number is one word; remove \
             the spaces"
        ));
    }
    if looks_shortened(s) {
        return Err(format!(
            "order number \"{s}\" looks like a long number a spreadsheet shortened — format the \
             column as text in the spreadsheet, type the numbers again and export again"
        ));
    }
    let length = s.chars().count();
    if length > 64 {
        return Err(format!(
            "order number \"{s}\" is {length} characters long — at most 64 are allowed; check \
             that the column holds the order number"
        ));
    }
    Ok(s.to_string())
}

/// Whether `s` is a number in a spreadsheet's scientific notation, like `2.02611E+13`.
fn looks_shortened(s: &str) -> bool {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let Some((mantissa, exponent)) = s.split_once(['E', 'e']) else {
        return false;
    };
    let exponent = exponent.strip_prefix('+').unwrap_or(exponent);
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(mantissa),
    };
    mantissa_ok && digits(exponent)
}

const STATUS_WORDS: [(&str, OrderStatus); 29] = [
    ("awaiting_payment", OrderStatus::AwaitingPayment),
    ("paid", OrderStatus::Paid),
    ("delivering", OrderStatus::Delivering),
    ("delivered", OrderStatus::Delivered),
    ("failed", OrderStatus::Failed),
    ("refunded", OrderStatus::Refunded),
    ("待付款", OrderStatus::AwaitingPayment),
    ("待支付", OrderStatus::AwaitingPayment),
    ("未付款", OrderStatus::AwaitingPayment),
    ("已付款", OrderStatus::Paid),
    ("已支付", OrderStatus::Paid),
    ("待发货", OrderStatus::Paid),
    ("发货中", OrderStatus::Delivering),
    ("充值中", OrderStatus::Delivering),
    ("处理中", OrderStatus::Delivering),
    ("已发货", OrderStatus::Delivered),
    ("已完成", OrderStatus::Delivered),
    ("已交付", OrderStatus::Delivered),
    ("交易成功", OrderStatus::Delivered),
    ("已充值", OrderStatus::Delivered),
    ("失败", OrderStatus::Failed),
    ("发货失败", OrderStatus::Failed),
    ("充值失败", OrderStatus::Failed),
    ("已退款", OrderStatus::Refunded),
    ("退款成功", OrderStatus::Refunded),
    ("cancelled", OrderStatus::Cancelled),
    ("canceled", OrderStatus::Cancelled),
    ("已取消", OrderStatus::Cancelled),
    ("已关闭", OrderStatus::Cancelled),
];

fn parse_status(s: &str) -> Result<OrderStatus, String> {
    let word = normalize_key(s);
    STATUS_WORDS
        .iter()
        .find(|(name, _)| *name == word)
        .map(|(_, status)| *status)
        .ok_or_else(|| {
            format!(
                "status \"{s}\" is not known — use one of awaiting_payment, paid, delivering, \
                 delivered, failed, refunded, cancelled (or 待付款, 已付款, 发货中, 已发货, 失败, 已退款, 已取消)"
            )
        })
}

fn parse_amount(s: &str) -> Result<i64, String> {
    let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let (whole, fraction) = match s.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (s, None),
    };
    if let Some(rest) = whole.strip_prefix('-') {
        if all_digits(rest) && fraction.is_none_or(all_digits) {
            return Err(format!(
                "amount \"{s}\" is negative — give what the buyer paid, 0 or more (a refund is \
                 status refunded, not a negative amount)"
            ));
        }
    }
    if !all_digits(whole) || !fraction.is_none_or(all_digits) {
        return Err(format!(
            "amount \"{s}\" is not a number — write it like 12.50, without a currency sign or \
             thousands separators (the currency goes in the currency column)"
        ));
    }
    let fraction = fraction.unwrap_or("");
    let (cents, rest) = fraction.split_at(fraction.len().min(2));
    if rest.bytes().any(|b| b != b'0') {
        return Err(format!(
            "amount \"{s}\" has more than 2 decimals — give it in yuan (or dollars, ...) with at \
             most 2 decimals, e.g. 12.35"
        ));
    }
    let too_large = || format!("amount \"{s}\" is too large — check the amount column");
    let whole: i64 = whole.parse().map_err(|_| too_large())?;
    let cents: i64 = format!("{cents:0<2}").parse().map_err(|_| too_large())?;
    whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(cents))
        .ok_or_else(too_large)
}

fn parse_currency(s: &str) -> Result<String, String> {
    if s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(s.to_ascii_uppercase())
    } else {
        Err(format!(
            "currency \"{s}\" is not a 3-letter currency code — use a code like CNY (人民币), \
             USD or HKD, or leave it empty for CNY"
        ))
    }
}

fn parse_quantity(s: &str) -> Result<i64, String> {
    match s.parse::<i64>() {
        Ok(n) if n >= 1 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!(
            "quantity \"{s}\" is not a whole number of 1 or more — give how many items were \
             bought, e.g. 1 or 3, or leave it empty for 1"
        )),
    }
}

fn parse_email(s: &str) -> Result<String, String> {
    let email = s.to_lowercase();
    let plausible = !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.len() <= 254
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains("..")
                    && !email.contains([',', ';'])
            }
            None => false,
        };
    if plausible {
        Ok(email)
    } else {
        Err(format!(
            "buyer_email \"{s}\" does not look like an e-mail address — write one address like \
             name@example.com, or leave it empty"
        ))
    }
}

fn parse_phone(s: &str) -> Result<String, String> {
    let body = s.strip_prefix('+').unwrap_or(s);
    if !body
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')'))
    {
        return Err(format!(
            "buyer_phone \"{s}\" has characters other than digits — write the number with \
             digits only (a leading +, spaces and dashes are fine)"
        ));
    }
    let digits: String = body.chars().filter(char::is_ascii_digit).collect();
    if !(5..=20).contains(&digits.len()) {
        return Err(format!(
            "buyer_phone \"{s}\" has {} digits — a phone number has 5 to 20; check the number",
            digits.len()
        ));
    }
    Ok(digits)
}

fn parse_channel(s: &str) -> Result<String, String> {
    let channel = s.to_ascii_lowercase();
    if channel
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(channel)
    } else {
        Err(format!(
            "buyer_channel \"{s}\" is not a channel name — use the channel's name in lower-case \
             letters, like telegram, discord or wechat"
        ))
    }
}

/// 2000-01-01T00:00:00Z and 2100-01-01T00:00:00Z: times outside are taken for mistakes.
const EARLIEST_MS: i64 = 946_684_800_000;
const LATEST_MS: i64 = 4_102_444_800_000;

fn parse_time(field: Field, s: &str, offset: FixedOffset) -> Result<u64, String> {
    let name = field.name();
    let millis = if s.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = s.parse().map_err(|_| {
            format!("{name} \"{s}\" is too large for a time — give seconds or milliseconds")
        })?;
        if n < 100_000_000_000 {
            n * 1000
        } else {
            n
        }
    } else if let Ok(time) = DateTime::parse_from_rfc3339(s) {
        time.timestamp_millis()
    } else if let Some(naive) = parse_naive(s) {
        naive
            .and_local_timezone(offset)
            .single()
            .map(|t| t.timestamp_millis())
            .ok_or_else(|| format!("{name} \"{s}\" is not a valid time — check it"))?
    } else {
        return Err(format!(
            "{name} \"{s}\" is not a time that can be read — write it like 2026-11-23 14:05 \
             (read as UTC{offset}), 2026-11-23T14:05:00+08:00, or as unix seconds"
        ));
    };
    if !(EARLIEST_MS..LATEST_MS).contains(&millis) {
        let shown = DateTime::from_timestamp_millis(millis).map_or_else(
            || "far from now".to_string(),
            |t| format!("{}", t.with_timezone(&offset).format("%Y-%m-%d %H:%M")),
        );
        return Err(format!(
            "{name} \"{s}\" reads as {shown}, which cannot be an order time — if a spreadsheet \
             turned it into a date number, format the column as text like 2026-11-23 14:05"
        ));
    }
    // Within the range checked above, so positive.
    Ok(millis.unsigned_abs())
}

/// `YYYY-MM-DD HH:MM[:SS]`, `YYYY/MM/DD HH:MM[:SS]`, a `T` instead of the space, or a date.
fn parse_naive(s: &str) -> Option<NaiveDateTime> {
    const TIMES: [&str; 6] = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y/%m/%d %H:%M:%S%.f",
        "%Y/%m/%d %H:%M",
    ];
    const DATES: [&str; 2] = ["%Y-%m-%d", "%Y/%m/%d"];
    TIMES
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(s, format).ok())
        .or_else(|| {
            DATES
                .iter()
                .find_map(|format| NaiveDate::parse_from_str(s, format).ok())
                .and_then(|date| date.and_hms_opt(0, 0, 0))
        })
}

/// The keys of one text value: separated by line breaks, `;` or `|`, trimmed, empty pieces
/// dropped.
fn split_keys(text: &str) -> Vec<String> {
    text.split(['\n', '\r', ';', '|'])
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .map(str::to_string)
        .collect()
}

/// A message for the first card key given twice, if any.
fn duplicate_key(keys: &[String]) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    keys.iter()
        .find(|key| !seen.insert(key.as_str()))
        .map(|key| {
            format!(
                "card key \"{key}\" appears twice in this order — each key is delivered once; \
             remove the duplicate"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ImportOptions {
        ImportOptions::default()
    }

    fn csv(text: &str) -> Result<Vec<OrderRecord>, Vec<RowError>> {
        parse_orders(Path::new("orders.csv"), text, &opts())
    }

    fn json(text: &str) -> Result<Vec<OrderRecord>, Vec<RowError>> {
        parse_orders(Path::new("orders.json"), text, &opts())
    }

    fn jsonl(text: &str) -> Result<Vec<OrderRecord>, Vec<RowError>> {
        parse_orders(Path::new("orders.jsonl"), text, &opts())
    }

    fn failures(result: Result<Vec<OrderRecord>, Vec<RowError>>) -> Vec<RowError> {
        match result {
            Ok(records) => panic!("expected errors, got {records:#?}"),
            Err(errors) => errors,
        }
    }

    fn good(result: Result<Vec<OrderRecord>, Vec<RowError>>) -> Vec<OrderRecord> {
        match result {
            Ok(records) => records,
            Err(errors) => panic!("expected records, got {errors:#?}"),
        }
    }

    /// The only error of a result, checked for its line and a piece of its message.
    fn one_error(result: Result<Vec<OrderRecord>, Vec<RowError>>, line: usize, piece: &str) {
        let errors = failures(result);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].line, line, "{errors:#?}");
        assert!(
            errors[0].message.contains(piece),
            "{:?} does not contain {piece:?}",
            errors[0].message
        );
    }

    /// A one-order CSV with the given extra column and value.
    fn csv_with(column: &str, value: &str) -> Result<Vec<OrderRecord>, Vec<RowError>> {
        csv(&format!(
            "order_no,product,status,{column}\nA1,Steam 100,paid,{value}\n"
        ))
    }

    // 2026-11-23 14:05 at +08:00 (`date -d "2026-11-23 14:05 +0800" +%s` = 1795413900).
    const NOV23_1405_CN: u64 = 1_795_413_900_000;

    #[test]
    fn good_csv_with_chinese_statuses_keys_and_multi_line_cells() {
        let text = "order_no,product,status,amount,quantity,buyer_email,buyer_phone,query_password,buyer_channel,buyer_user,created_at,paid_at,card_keys,redeem\n\
            A1001,Steam 100 元,已发货,100,2,Buyer@Example.COM,+86 138-0013-8000,pw 123,Telegram,12345,2026-11-23 14:05,2026-11-23 14:06,KEY-1;KEY-2,https://store.steampowered.com/account/redeemwalletcode\n\
            A1002,\"Netflix, 1 month\",待付款,30,,,,,,,,,,\n\
            A1003,App Store 50,已完成,50.00,,,,,,,,,\"K-AAA\nK-BBB\n K-CCC \",\"Open the App Store,\nthen Redeem\"\n\
            A1004,Spotify,充值中,12.5,,,,,,,,,,\n\
            A1005,Xbox,退款成功,0,,,,,,,,,,\n";
        let records = good(csv(text));
        assert_eq!(records.len(), 5);
        let a = &records[0];
        assert_eq!(a.line, 2);
        assert_eq!(a.order.number, "A1001");
        assert_eq!(a.order.product, "Steam 100 元");
        assert_eq!(a.order.status, OrderStatus::Delivered);
        assert_eq!(a.order.amount_cents, 10_000);
        assert_eq!(a.order.currency, "CNY");
        assert_eq!(a.order.quantity, 2);
        assert_eq!(a.buyer.email.as_deref(), Some("buyer@example.com"));
        assert_eq!(a.buyer.phone.as_deref(), Some("8613800138000"));
        assert_eq!(a.query_password.as_deref(), Some("pw 123"));
        assert_eq!(a.buyer.channel.as_deref(), Some("telegram"));
        assert_eq!(a.buyer.user.as_deref(), Some("12345"));
        assert_eq!(a.order.created_at, Some(NOV23_1405_CN));
        assert_eq!(a.order.paid_at, Some(NOV23_1405_CN + 60_000));
        assert_eq!(a.order.delivered_at, None);
        assert_eq!(a.card_keys, ["KEY-1", "KEY-2"]);
        assert_eq!(
            a.order.redeem.as_deref(),
            Some("https://store.steampowered.com/account/redeemwalletcode")
        );

        let b = &records[1];
        assert_eq!((b.line, b.order.number.as_str()), (3, "A1002"));
        assert_eq!(b.order.product, "Netflix, 1 month");
        assert_eq!(b.order.status, OrderStatus::AwaitingPayment);
        assert_eq!(b.order.quantity, 1);
        assert!(b.card_keys.is_empty());
        assert_eq!(b.buyer.email, None);

        let c = &records[2];
        assert_eq!(c.line, 4);
        assert_eq!(c.order.status, OrderStatus::Delivered);
        assert_eq!(c.order.amount_cents, 5_000);
        assert_eq!(c.card_keys, ["K-AAA", "K-BBB", "K-CCC"]);
        assert_eq!(
            c.order.redeem.as_deref(),
            Some("Open the App Store,\nthen Redeem")
        );

        // The quoted cells of A1003 span lines 4 to 7; the next rows follow on.
        let d = &records[3];
        assert_eq!((d.line, d.order.number.as_str()), (8, "A1004"));
        assert_eq!(d.order.status, OrderStatus::Delivering);
        assert_eq!(d.order.amount_cents, 1_250);
        let e = &records[4];
        assert_eq!((e.line, e.order.number.as_str()), (9, "A1005"));
        assert_eq!(e.order.status, OrderStatus::Refunded);
        assert_eq!(e.order.amount_cents, 0);
    }

    #[test]
    fn every_status_word() {
        for (word, status) in STATUS_WORDS {
            let records = good(csv(&format!("order_no,product,status\nA1,P,{word}\n")));
            assert_eq!(records[0].order.status, status, "{word}");
        }
        for (word, status) in [
            ("Awaiting_Payment", OrderStatus::AwaitingPayment),
            ("PAID", OrderStatus::Paid),
            ("awaiting payment", OrderStatus::AwaitingPayment),
            (" Delivered ", OrderStatus::Delivered),
        ] {
            let records = good(csv(&format!("order_no,product,status\nA1,P,{word}\n")));
            assert_eq!(records[0].order.status, status, "{word}");
        }
    }

    #[test]
    fn unknown_status_names_the_accepted_words() {
        let errors = failures(csv("order_no,product,status\nA1,P,paid\nA2,P,shipped\n"));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 3);
        assert_eq!(
            errors[0].to_string(),
            "orders.csv:3: status \"shipped\" is not known — use one of awaiting_payment, paid, \
             delivering, delivered, failed, refunded, cancelled (or 待付款, 已付款, 发货中, 已发货, \
             失败, 已退款, 已取消)"
        );
    }

    #[test]
    fn good_json_array_pretty_printed() {
        let text = r#"[
  {
    "order_no": "A1001",
    "product": "Steam 100",
    "status": "delivered",
    "amount": 100,
    "card_keys": ["KEY-1", "KEY-2"],
    "redeem": "text with \"quotes\", [brackets] and {braces}",
    "created_at": "2026-11-23T14:05:00+08:00"
  },
  {
    "number": "A1002",
    "product": "Netflix",
    "status": "已付款",
    "amount": "12.50",
    "quantity": "3",
    "card_keys": "K1;K2|K3",
    "paid_at": 1795413900,
    "buyer_phone": 13800138000,
    "buyer_channel": "discord",
    "buyer_user": 998877665544332211
  },

  {"order_no": "A1003", "product": "X", "status": "awaiting_payment", "amount": 12.5,
   "buyer_email": null, "card_keys": [], "currency": "usd", "delivered_at": ""}
]"#;
        let records = good(json(text));
        let lines: Vec<usize> = records.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 11, 24]);
        assert_eq!(records[0].card_keys, ["KEY-1", "KEY-2"]);
        assert_eq!(records[0].order.amount_cents, 10_000);
        assert_eq!(
            records[0].order.redeem.as_deref(),
            Some("text with \"quotes\", [brackets] and {braces}")
        );
        assert_eq!(records[0].order.created_at, Some(NOV23_1405_CN));
        assert_eq!(records[1].order.number, "A1002");
        assert_eq!(records[1].order.status, OrderStatus::Paid);
        assert_eq!(records[1].order.amount_cents, 1_250);
        assert_eq!(records[1].order.quantity, 3);
        assert_eq!(records[1].card_keys, ["K1", "K2", "K3"]);
        assert_eq!(records[1].order.paid_at, Some(NOV23_1405_CN));
        assert_eq!(records[1].buyer.phone.as_deref(), Some("13800138000"));
        assert_eq!(records[1].buyer.user.as_deref(), Some("998877665544332211"));
        assert_eq!(records[2].order.amount_cents, 1_250);
        assert_eq!(records[2].order.currency, "USD");
        assert!(records[2].card_keys.is_empty());
        assert_eq!(records[2].order.delivered_at, None);
    }

    #[test]
    fn json_element_lines_with_tricky_strings() {
        // Brackets, braces, commas and escaped quotes inside strings do not move the starts.
        let text = "[{\"order_no\":\"A1\",\"product\":\"a \\\"}]\\\\\",\"status\":\"paid\"},\n\
                    \n\
                    {\"order_no\":\"A2\",\"product\":\"[{,\",\"status\":\"paid\"}, {\"order_no\":\"A3\",\n\
                    \"product\":\"p\",\"status\":\"paid\"}\n]";
        let records = good(json(text));
        let lines: Vec<usize> = records.iter().map(|r| r.line).collect();
        assert_eq!(lines, [1, 3, 3]);
        assert_eq!(records[0].order.product, "a \"}]\\");
        assert_eq!(
            element_starts("[1, \"a,b\", [2, 3], {\"x\": [4]}, null]"),
            [1, 4, 11, 19, 31]
        );
        assert_eq!(element_starts("[]"), Vec::<usize>::new());
    }

    #[test]
    fn json_errors_at_the_object_line() {
        let text = "[\n  {\"order_no\": \"A1\", \"product\": \"P\", \"status\": \"paid\"},\n  {\"order_no\": \"A2\",\n   \"product\": \"P\", \"status\": \"shipped\"},\n  {\"order_no\": \"A3\", \"prodcut\": \"P\", \"status\": \"paid\"}\n]\n";
        let errors = failures(json(text));
        let summary: Vec<(usize, bool)> = errors
            .iter()
            .map(|e| (e.line, e.message.contains("did you mean \"product\"")))
            .collect();
        assert_eq!(summary, [(3, false), (5, true), (5, false)], "{errors:#?}");
        assert!(errors[0].message.starts_with("status \"shipped\""));
        assert!(errors[2].message.starts_with("product is missing"));
    }

    #[test]
    fn json_syntax_error_at_serde_line() {
        let text = "[\n  {\"order_no\": \"A1\", \"product\": \"P\", \"status\": \"paid\"}\n  {\"order_no\": \"A2\"}\n]";
        one_error(json(text), 3, "this is not valid JSON (expected `,` or `]`");
        one_error(json("[\n {\"order_no\": \"A1\",\n"), 3, "not valid JSON");
        let ndjson_named_json = "{\"order_no\":\"A1\",\"product\":\"P\",\"status\":\"paid\"}\n{\"order_no\":\"A2\",\"product\":\"P\",\"status\":\"paid\"}\n";
        one_error(json(ndjson_named_json), 2, "name the file .jsonl");
    }

    #[test]
    fn json_not_an_array_or_not_objects() {
        one_error(
            json("\n\n{\"order_no\":\"A1\",\"product\":\"P\",\"status\":\"paid\"}"),
            3,
            "not a JSON array of orders — put the orders in an array",
        );
        let errors = failures(json(
            "[\n\"A1\",\n 5,\n {\"order_no\":\"A1\",\"product\":\"P\",\"status\":\"paid\"}\n]",
        ));
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3]);
        assert!(errors[0]
            .message
            .starts_with("item 1 of the array is a string, not an order"));
        assert!(errors[1]
            .message
            .starts_with("item 2 of the array is a number"));
        assert_eq!(good(json("[]")), Vec::new());
        assert_eq!(good(json(" [ ] \n")), Vec::new());
    }

    #[test]
    fn json_value_types() {
        let base = |extra: &str| {
            json(&format!(
                "[{{\"order_no\":\"A1\",\"product\":\"P\",\"status\":\"paid\"{extra}}}]"
            ))
        };
        one_error(
            base(",\"amount\":true"),
            1,
            "amount is true or false — give a number or a string",
        );
        one_error(
            base(",\"redeem\":[\"x\"]"),
            1,
            "redeem is a list — give a string",
        );
        one_error(
            base(",\"redeem\":{\"a\":1}"),
            1,
            "redeem is an object — give a string",
        );
        one_error(
            base(",\"buyer_user\":1.5e20"),
            1,
            "write it as text in quotes",
        );
        one_error(
            base(",\"card_keys\":[\"K1\",\"\",7.5]"),
            1,
            "(items 2, 3 of the list)",
        );
        one_error(
            base(",\"card_keys\":{\"k\":1}"),
            1,
            "card_keys is an object — give a list of strings",
        );
        one_error(
            base(",\"quantity\":2.5"),
            1,
            "quantity \"2.5\" is not a whole number",
        );
        one_error(
            base(",\"number\":\"A2\""),
            1,
            "both give order_no — keep one of them",
        );
        // null, empty strings and empty lists are absent.
        let records = good(base(
            ",\"amount\":null,\"currency\":\"\",\"quantity\":\" \",\"card_keys\":[],\"redeem\":null",
        ));
        assert_eq!(
            (
                records[0].order.amount_cents,
                records[0].order.currency.as_str(),
                records[0].order.quantity
            ),
            (0, "CNY", 1)
        );
        // Keys are case-insensitive; spaces and dashes read as underscores.
        let records = good(json(
            "[{\"Order No\":\"A1\",\"PRODUCT\":\"P\",\"status\":\"paid\",\"card-keys\":\"K\"}]",
        ));
        assert_eq!(records[0].card_keys, ["K"]);
    }

    #[test]
    fn json_lines() {
        let text = "{\"order_no\":\"A1\",\"product\":\"P\",\"status\":\"paid\",\"card_keys\":[\"K1\"]}\r\n\
                    \r\n\
                    {\"order_no\":\"A2\",\"product\":\"P\",\"status\":\"已发货\"}\r\n\
                    \n   \n\
                    {\"order_no\":\"A3\",\"product\":\"P\",\"status\":\"failed\",\"amount\":\"9.9\"}";
        let records = good(jsonl(text));
        let lines: Vec<(usize, &str)> = records
            .iter()
            .map(|r| (r.line, r.order.number.as_str()))
            .collect();
        assert_eq!(lines, [(1, "A1"), (3, "A2"), (6, "A3")]);
        assert_eq!(records[2].order.amount_cents, 990);
        let ndjson = good(parse_orders(Path::new("x.NDJSON"), text, &opts()));
        assert_eq!(ndjson, records);
    }

    #[test]
    fn json_lines_errors_on_their_lines() {
        let text = "{\"order_no\":\"A1\",\"product\":\"P\",\"status\":\"paid\"}\n\
                    {\"order_no\":\"A2\",\"product\":\"P\",\"status\":\"paid\"\n\
                    [1]\n\
                    {\"order_no\":\"A1\",\"product\":\"P\",\"status\":\"paid\"}\n\
                    {\"order_no\":\"A4\",\"product\":\"P\",\"status\":\"paid\",\"colour\":\"red\"}\n";
        let errors = failures(jsonl(text));
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4, 5], "{errors:#?}");
        assert!(errors[0]
            .message
            .starts_with("this line is not valid JSON (EOF while parsing an object, column "));
        assert!(errors[1]
            .message
            .starts_with("this line is a list, not an order"));
        assert!(errors[2].message.contains("is already on line 1"));
        assert!(errors[3].message.starts_with(
            "unknown key \"colour\" — remove it, or rename it to one of order_no, product,"
        ));
    }

    #[test]
    fn bom_and_crlf() {
        let text = "\u{feff}order_no,product,status,card_keys\r\nA1,P,paid,\"K1\r\nK2\"\r\nA2,P,paid,K3\r\n";
        let records = good(csv(text));
        assert_eq!(records[0].card_keys, ["K1", "K2"]);
        assert_eq!(
            (records[1].line, records[1].card_keys.clone()),
            (4, vec!["K3".to_string()])
        );
        let records = good(json(
            "\u{feff}[\r\n{\"order_no\":\"A1\",\"product\":\"P\",\"status\":\"paid\"}\r\n]",
        ));
        assert_eq!(records[0].line, 2);
        let records = good(jsonl(
            "\u{feff}{\"order_no\":\"A1\",\"product\":\"P\",\"status\":\"paid\"}\r\n",
        ));
        assert_eq!(records[0].line, 1);
        // An error after CRLF lines still has the right line.
        one_error(
            csv("order_no,product,status\r\nA1,P,paid\r\n\r\nA2,P,nope\r\n"),
            4,
            "status \"nope\"",
        );
        // Blank lines between rows are skipped, and counted.
        let records = good(csv(
            "\n\norder_no,product,status\n\nA1,P,paid\n\n\n\nA2,P,paid\r\n\r\nA3,P,paid",
        ));
        let lines: Vec<usize> = records.iter().map(|r| r.line).collect();
        assert_eq!(lines, [5, 9, 11]);
        one_error(
            csv("\n\norder_no,product,status,stat\nA1,P,paid\n"),
            3,
            "unknown column \"stat\"",
        );
    }

    #[test]
    fn empty_files() {
        for text in ["", "\u{feff}", " \n\r\n "] {
            one_error(csv(text), 1, "the file is empty — it needs a header line");
            one_error(json(text), 1, "the file is empty — it needs a JSON array");
            one_error(
                jsonl(text),
                1,
                "the file is empty — it needs one JSON order object per line",
            );
        }
        assert_eq!(good(csv("order_no,product,status\n")), Vec::new());
        assert_eq!(good(csv("order_no,product,status\n,,\n \n")), Vec::new());
    }

    #[test]
    fn header_problems() {
        one_error(
            csv("order_no,product\nA1,P\n"),
            1,
            "the header has no column status — the first line must name the columns, at least \
             order_no, product and status",
        );
        let errors = failures(csv("order_no,prodcut,staus\nA1,P,paid\nA2,P,paid\n"));
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages.len(), 3, "{messages:#?}");
        assert!(errors.iter().all(|e| e.line == 1));
        assert_eq!(
            messages[0],
            "unknown column \"prodcut\" — did you mean \"product\"? Rename it, or remove it"
        );
        assert_eq!(
            messages[1],
            "unknown column \"staus\" — did you mean \"status\"? Rename it, or remove it"
        );
        assert!(messages[2].starts_with("the header has no columns product, status — "));

        // An unknown column is reported once, at the header, and the rows are still checked.
        let errors = failures(csv(
            "order_no,product,status,emial\nA1,P,paid,x\nA2,P,bad,y\nA3,P,paid,z\n",
        ));
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 3]);
        assert_eq!(
            errors[0].to_string(),
            "orders.csv:1: unknown column \"emial\" — did you mean \"buyer_email\"? Rename it, or \
             remove it"
        );

        one_error(
            csv("order_no,product,status,order_id\nA1,P,paid,x\n"),
            1,
            "unknown column \"order_id\" — did you mean \"order_no\"?",
        );
        one_error(
            csv("order_no,product,status,卡密\nA1,P,paid,x\n"),
            1,
            "unknown column \"卡密\" — did you mean \"card_keys\"?",
        );
        one_error(
            csv("order_no,product,status,number\nA1,P,paid,A1\n"),
            1,
            "the columns \"order_no\" and \"number\" both give order_no — keep one of them",
        );
        one_error(
            csv("order_no,product,status,status\nA1,P,paid,paid\n"),
            1,
            "both give status",
        );
        // `number` alone is the order number; header names are case-insensitive.
        let records = good(csv("Number,Product,STATUS,Card Keys\nA1,P,paid,K\n"));
        assert_eq!(
            (records[0].order.number.as_str(), records[0].card_keys.len()),
            ("A1", 1)
        );
    }

    #[test]
    fn unnamed_columns_and_cell_counts() {
        // Excel's trailing empty columns are fine while empty.
        let records = good(csv("order_no,product,status,,\nA1,P,paid,,\nA2,P,paid\n"));
        assert_eq!(records.len(), 2);
        one_error(
            csv("order_no,product,status,\nA1,P,paid,oops\n"),
            2,
            "column 4 has a value but no name in the header",
        );
        one_error(
            csv("order_no,product,status\nA1,P,paid\nA2,Netflix, 1 month,paid\n"),
            3,
            "this row has 4 cells but the header names 3 columns — a value that contains a comma must be put in double quotes",
        );
        // Trailing empty cells beyond the header are fine.
        assert_eq!(good(csv("order_no,product,status\nA1,P,paid,,\n")).len(), 1);
    }

    #[test]
    fn other_separators() {
        let records = good(csv(
            "order_no\tproduct\tstatus\tcard_keys\nA1\tP, with comma\tpaid\tK1;K2\n",
        ));
        assert_eq!(records[0].order.product, "P, with comma");
        assert_eq!(records[0].card_keys, ["K1", "K2"]);
        let records = good(csv("order_no;product;status;amount\nA1;P;paid;1.5\n"));
        assert_eq!(records[0].order.amount_cents, 150);
    }

    #[test]
    fn required_fields() {
        let errors = failures(csv("order_no,product,status\n,,paid\nA2,P,\n"));
        let summary: Vec<(usize, &str)> =
            errors.iter().map(|e| (e.line, &e.message[..12])).collect();
        assert_eq!(
            summary,
            [
                (2, "order_no is "),
                (2, "product is m"),
                (3, "status is mi")
            ]
        );
        one_error(
            json("[{\"order_no\":\"A1\",\"product\":\"P\"}]"),
            1,
            "status is missing — give one of awaiting_payment",
        );
    }

    #[test]
    fn order_numbers() {
        assert_eq!(
            good(csv_with("redeem", "x"))[0].order.redeem.as_deref(),
            Some("x")
        );
        one_error(
            csv("order_no,product,status\nA 1,P,paid\n"),
            2,
            "order number \"A 1\" contains whitespace",
        );
        let long = "X".repeat(65);
        one_error(
            csv(&format!("order_no,product,status\n{long},P,paid\n")),
            2,
            "is 65 characters long — at most 64",
        );
        one_error(
            csv("order_no,product,status\n2.02611E+13,P,paid\n"),
            2,
            "order number \"2.02611E+13\" looks like a long number a spreadsheet shortened",
        );
        assert_eq!(
            good(csv("order_no,product,status\nE2E-7,P,paid\n"))[0]
                .order
                .number,
            "E2E-7"
        );
        let ok = "订".repeat(64);
        assert_eq!(
            good(csv(&format!("order_no,product,status\n {ok} ,P,paid\n")))[0]
                .order
                .number,
            ok
        );
    }

    #[test]
    fn duplicate_order_numbers() {
        let errors = failures(csv(
            "order_no,product,status\nA1,P,paid\nA2,P,paid\nA1,P,paid\nA1,Q,bad\n",
        ));
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [4, 5, 5], "{errors:#?}");
        assert_eq!(
            errors[0].message,
            "order number \"A1\" is already on line 2 — each order may appear once; merge the two \
             (all of an order's keys go in one card_keys)"
        );
        assert!(errors[1].message.contains("already on line 2"));
        assert!(errors[2].message.starts_with("status \"bad\""));
    }

    #[test]
    fn amounts() {
        for (value, cents) in [
            ("12.5", 1_250),
            ("12.50", 1_250),
            ("30", 3_000),
            ("0", 0),
            ("0.01", 1),
            ("12.500", 1_250),
            ("007.1", 710),
            ("92233720368547758.07", i64::MAX),
        ] {
            assert_eq!(
                good(csv_with("amount", value))[0].order.amount_cents,
                cents,
                "{value}"
            );
        }
        one_error(
            csv_with("amount", "12.345"),
            2,
            "amount \"12.345\" has more than 2 decimals",
        );
        one_error(csv_with("amount", "-1"), 2, "amount \"-1\" is negative");
        one_error(csv_with("amount", "-0.5"), 2, "is negative");
        for bad in ["¥12", "1,234.00", "12.", ".5", "abc", "1e3", "+5", "--1"] {
            one_error(
                csv_with("amount", &format!("\"{bad}\"")),
                2,
                &format!("amount \"{bad}\" is not a number — write it like 12.50"),
            );
        }
        one_error(
            csv_with("amount", "92233720368547758.08"),
            2,
            "is too large",
        );
        one_error(
            csv_with("amount", "99999999999999999999"),
            2,
            "is too large",
        );
        // JSON numbers.
        let records = good(json(
            "[{\"order_no\":\"A1\",\"product\":\"P\",\"status\":\"paid\",\"amount\":12.5},\
              {\"order_no\":\"A2\",\"product\":\"P\",\"status\":\"paid\",\"amount\":30}]",
        ));
        assert_eq!(
            (records[0].order.amount_cents, records[1].order.amount_cents),
            (1_250, 3_000)
        );
        one_error(
            json("[{\"order_no\":\"A1\",\"product\":\"P\",\"status\":\"paid\",\"amount\":12.345}]"),
            1,
            "more than 2 decimals",
        );
        one_error(
            json("[{\"order_no\":\"A1\",\"product\":\"P\",\"status\":\"paid\",\"amount\":-1}]"),
            1,
            "is negative",
        );
    }

    #[test]
    fn currency_and_quantity() {
        assert_eq!(good(csv_with("currency", " usd "))[0].order.currency, "USD");
        one_error(
            csv_with("currency", "人民币"),
            2,
            "currency \"人民币\" is not a 3-letter",
        );
        one_error(csv_with("currency", "US"), 2, "is not a 3-letter");
        assert_eq!(good(csv_with("quantity", "12"))[0].order.quantity, 12);
        for bad in ["0", "-2", "1.5", "two", "+3"] {
            one_error(
                csv_with("quantity", bad),
                2,
                &format!("quantity \"{bad}\" is not a whole number of 1 or more"),
            );
        }
    }

    #[test]
    fn buyer_contacts() {
        assert_eq!(
            good(csv_with("buyer_email", " Li.Lei@Mail.QQ.com "))[0]
                .buyer
                .email
                .as_deref(),
            Some("li.lei@mail.qq.com")
        );
        for bad in [
            "lilei",
            "li@lei",
            "a@b.com;c@d.com",
            "a b@c.com",
            "@c.com",
            "a@.com",
            "a@b..com",
        ] {
            one_error(
                csv_with("buyer_email", bad),
                2,
                &format!("buyer_email \"{bad}\" does not look like an e-mail address"),
            );
        }
        for (phone, digits) in [
            ("13800138000", "13800138000"),
            ("+86 138-0013-8000", "8613800138000"),
            ("(010) 1234-5678", "01012345678"),
            ("12345", "12345"),
        ] {
            assert_eq!(
                good(csv_with("buyer_phone", phone))[0]
                    .buyer
                    .phone
                    .as_deref(),
                Some(digits)
            );
        }
        one_error(
            csv_with("buyer_phone", "1234"),
            2,
            "has 4 digits — a phone number has 5 to 20",
        );
        one_error(csv_with("buyer_phone", &"1".repeat(21)), 2, "has 21 digits");
        one_error(
            csv_with("buyer_phone", "138x0013"),
            2,
            "has characters other than digits",
        );
        one_error(
            csv_with("buyer_phone", "1.38E+10"),
            2,
            "has characters other than digits",
        );
        one_error(
            csv_with("buyer_phone", "86+138000"),
            2,
            "has characters other than digits",
        );
        assert_eq!(
            good(csv_with("query_password", "  秘密 1 "))[0]
                .query_password
                .as_deref(),
            Some("秘密 1")
        );
    }

    #[test]
    fn buyer_channel_and_user_go_together() {
        let header = "order_no,product,status,buyer_channel,buyer_user\n";
        let records = good(csv(&format!(
            "{header}A1,P,paid,WeChat,wxid_abc\nA2,P,paid,,\n"
        )));
        assert_eq!(records[0].buyer.channel.as_deref(), Some("wechat"));
        assert_eq!(records[0].buyer.user.as_deref(), Some("wxid_abc"));
        assert_eq!(
            (
                records[1].buyer.channel.clone(),
                records[1].buyer.user.clone()
            ),
            (None, None)
        );
        one_error(
            csv(&format!("{header}A1,P,paid,telegram,\n")),
            2,
            "buyer_channel is given without buyer_user",
        );
        one_error(
            csv(&format!("{header}A1,P,paid,,42\n")),
            2,
            "buyer_user is given without buyer_channel",
        );
        // A bad channel is reported as such, not also as missing.
        one_error(
            csv(&format!("{header}A1,P,paid,微信,42\n")),
            2,
            "buyer_channel \"微信\" is not a channel name",
        );
        let errors = failures(csv(&format!("{header}A1,P,paid,微信,\n")));
        assert_eq!(errors.len(), 2);
        assert!(errors[0].message.contains("is not a channel name"));
        assert!(errors[1]
            .message
            .contains("buyer_channel is given without buyer_user"));
    }

    #[test]
    fn timestamps_in_every_form() {
        for (value, millis) in [
            ("2026-11-23 14:05", NOV23_1405_CN),
            ("2026-11-23 14:05:00", NOV23_1405_CN),
            ("2026-11-23 14:05:30", NOV23_1405_CN + 30_000),
            ("2026-11-23 14:05:30.250", NOV23_1405_CN + 30_250),
            ("2026/11/23 14:05", NOV23_1405_CN),
            ("2026/11/23 14:05:00", NOV23_1405_CN),
            ("2026-11-23T14:05", NOV23_1405_CN),
            ("2026-11-23T14:05:00+08:00", NOV23_1405_CN),
            ("2026-11-23T06:05:00Z", NOV23_1405_CN),
            ("2026-11-23T06:05:00.5z", NOV23_1405_CN + 500),
            ("2026-11-23T01:05:00-05:00", NOV23_1405_CN),
            ("2026-11-23 14:05:00+08:00", NOV23_1405_CN),
            // `date -d "2026-11-23 00:00 +0800" +%s` = 1795363200
            ("2026-11-23", 1_795_363_200_000),
            ("2026/11/23", 1_795_363_200_000),
            ("1795413900", NOV23_1405_CN),
            ("1795413900000", NOV23_1405_CN),
            ("1795413900123", NOV23_1405_CN + 123),
            // 10^11 - 1 seconds would be year 5138: out of range, see below; 10^11 is ms.
        ] {
            assert_eq!(
                good(csv_with("created_at", value))[0].order.created_at,
                Some(millis),
                "{value}"
            );
        }
        // Naive times in another offset: `date -d "2026-11-23 14:05 +0000" +%s` = 1795442700.
        let utc = ImportOptions {
            naive_offset_seconds: 0,
        };
        let records = good(parse_orders(
            Path::new("o.csv"),
            "order_no,product,status,paid_at,delivered_at\nA1,P,paid,2026-11-23 14:05,2026-11-23T14:05:00+08:00\n",
            &utc,
        ));
        assert_eq!(records[0].order.paid_at, Some(1_795_442_700_000));
        assert_eq!(records[0].order.delivered_at, Some(NOV23_1405_CN));
        // JSON numbers and strings, every time field.
        let records = good(json(
            "[{\"order_no\":\"A1\",\"product\":\"P\",\"status\":\"delivered\",\
               \"created_at\":1795413900,\"paid_at\":\"1795413900000\",\
               \"delivered_at\":\"2026-11-23 14:06\",\"delivery_due_at\":1795413960000}]",
        ));
        let r = &records[0];
        assert_eq!(
            (
                r.order.created_at,
                r.order.paid_at,
                r.order.delivered_at,
                r.order.delivery_due_at
            ),
            (
                Some(NOV23_1405_CN),
                Some(NOV23_1405_CN),
                Some(NOV23_1405_CN + 60_000),
                Some(NOV23_1405_CN + 60_000)
            )
        );
    }

    #[test]
    fn bad_timestamps() {
        for bad in [
            "23/11/2026",
            "2026-13-01",
            "2026-11-23 25:00",
            "yesterday",
            "2026-11-23 14",
            "-1795413900",
            "1795413900.5",
        ] {
            one_error(
                csv_with("paid_at", bad),
                2,
                &format!("paid_at \"{bad}\" is not a time that can be read — write it like 2026-11-23 14:05 (read as UTC+08:00)"),
            );
        }
        one_error(
            csv_with("delivery_due_at", "46349"),
            2,
            "delivery_due_at \"46349\" reads as 1970-01-01 20:52, which cannot be an order time",
        );
        one_error(csv_with("created_at", "99999999999"), 2, "reads as 5138-");
        one_error(
            csv_with("created_at", "99999999999999999999"),
            2,
            "is too large for a time",
        );
        one_error(
            csv_with("created_at", "1999-12-31"),
            2,
            "which cannot be an order time",
        );
        one_error(
            json("[{\"order_no\":\"A1\",\"product\":\"P\",\"status\":\"paid\",\"paid_at\":1795413900.5}]"),
            1,
            "paid_at \"1795413900.5\" is not a time",
        );
        let bad_offset = ImportOptions {
            naive_offset_seconds: 86_400,
        };
        let errors = failures(parse_orders(
            Path::new("o.csv"),
            "order_no,product,status\n",
            &bad_offset,
        ));
        assert_eq!((errors.len(), errors[0].line), (1, 0));
    }

    #[test]
    fn paid_before_created() {
        let header = "order_no,product,status,created_at,paid_at\n";
        one_error(
            csv(&format!(
                "{header}A1,P,paid,2026-11-23 14:05,2026-11-23 14:04\n"
            )),
            2,
            "paid_at \"2026-11-23 14:04\" is before created_at \"2026-11-23 14:05\"",
        );
        // Same instant written two ways is fine.
        assert_eq!(
            good(csv(&format!(
                "{header}A1,P,paid,2026-11-23 14:05,2026-11-23T06:05:00Z\n"
            )))
            .len(),
            1
        );
    }

    #[test]
    fn card_keys() {
        let records = good(csv_with("card_keys", "\" K1 | K2 ;K3;\n\n K4 ;\""));
        assert_eq!(records[0].card_keys, ["K1", "K2", "K3", "K4"]);
        one_error(
            csv_with("card_keys", "K1;K2;K1;K2"),
            2,
            "card key \"K1\" appears twice in this order",
        );
        one_error(
            json("[{\"order_no\":\"A1\",\"product\":\"P\",\"status\":\"paid\",\"card_keys\":[\"K1\",\" K1 \"]}]"),
            1,
            "card key \"K1\" appears twice",
        );
        // The same key in two orders is not this module's business.
        assert_eq!(
            good(csv(
                "order_no,product,status,card_keys\nA1,P,paid,K\nA2,P,paid,K\n"
            ))
            .len(),
            2
        );
        one_error(
            csv("order_no,product,status,card_keys\nA1,P,待付款,K1\n"),
            2,
            "an unpaid order cannot carry card keys",
        );
        // JSON: array items are kept whole, separators and all.
        let records = good(json("[{\"order_no\":\"A1\",\"product\":\"P\",\"status\":\"paid\",\"card_keys\":[\"a;b\", 12345]}]"));
        assert_eq!(records[0].card_keys, ["a;b", "12345"]);
    }

    #[test]
    fn several_errors_reported_together() {
        let text =
            "order_no,product,status,amount,quantity,buyer_email,created_at,paid_at,card_keys\n\
                    A1,P,paid,1,1,a@b.com,2026-11-23,2026-11-23 08:00,K1\n\
                    A2,,shipped,12.345,0,nope,,,\n\
                    A3,P,paid,,,,,,\n\
                    A1,P,待付款,,,,2026-11-23 10:00,2026-11-23 09:00,K9\n";
        let errors = failures(csv(text));
        let got: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        let starts = [
            "orders.csv:3: product is missing",
            "orders.csv:3: status \"shipped\" is not known",
            "orders.csv:3: amount \"12.345\" has more than 2 decimals",
            "orders.csv:3: quantity \"0\" is not a whole number",
            "orders.csv:3: buyer_email \"nope\" does not look like",
            "orders.csv:5: order number \"A1\" is already on line 2",
            "orders.csv:5: an unpaid order cannot carry card keys",
            "orders.csv:5: paid_at \"2026-11-23 09:00\" is before created_at \"2026-11-23 10:00\"",
        ];
        assert_eq!(got.len(), starts.len(), "{got:#?}");
        for (got, start) in got.iter().zip(starts) {
            assert!(
                got.starts_with(start),
                "{got:?} should start with {start:?}"
            );
        }
    }

    /// The examples of docs/orders-import.md.
    #[test]
    fn documented_examples() {
        let records = good(csv(
            r#"order_no,product,status,amount,buyer_email,query_password,created_at,paid_at,card_keys,redeem
A20261123001,Steam 钱包 100 元,已发货,100,lilei@example.com,8866,2026-11-23 14:05,2026-11-23 14:06,STEAM-AAAA-1111;STEAM-BBBB-2222,https://store.steampowered.com/account/redeemwalletcode
A20261123002,Netflix 1 个月,待付款,30,hanmei@example.com,,2026-11-23 15:20,,,
A20261123003,App Store 50,delivered,50.00,,,2026-11-23 16:00,2026-11-23 16:01,"APPLE-XXXX
APPLE-YYYY",打开 App Store，点头像，选择「兑换充值卡或代码」
"#,
        ));
        let lines: Vec<usize> = records.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert_eq!(records[0].card_keys, ["STEAM-AAAA-1111", "STEAM-BBBB-2222"]);
        assert_eq!(records[0].order.status, OrderStatus::Delivered);
        assert_eq!(records[0].order.created_at, Some(NOV23_1405_CN));
        assert_eq!(records[1].order.status, OrderStatus::AwaitingPayment);
        assert_eq!(records[1].order.amount_cents, 3_000);
        assert_eq!(records[2].card_keys, ["APPLE-XXXX", "APPLE-YYYY"]);

        let from_json = good(json(
            r#"[
  {
    "order_no": "A20261123001",
    "product": "Steam 钱包 100 元",
    "status": "delivered",
    "amount": 100,
    "buyer_email": "lilei@example.com",
    "buyer_channel": "telegram",
    "buyer_user": "123456789",
    "created_at": "2026-11-23T14:05:00+08:00",
    "paid_at": 1795413960,
    "card_keys": ["STEAM-AAAA-1111", "STEAM-BBBB-2222"],
    "redeem": "https://store.steampowered.com/account/redeemwalletcode"
  },
  {
    "order_no": "A20261123002",
    "product": "Netflix 1 个月",
    "status": "待付款",
    "amount": "30.00"
  }
]
"#,
        ));
        assert_eq!(
            from_json.iter().map(|r| r.line).collect::<Vec<_>>(),
            [2, 15]
        );
        assert_eq!(from_json[0].card_keys, records[0].card_keys);
        assert_eq!(from_json[0].order.created_at, Some(NOV23_1405_CN));
        assert_eq!(from_json[0].order.paid_at, Some(NOV23_1405_CN + 60_000));
        assert_eq!(from_json[1].order.amount_cents, 3_000);

        let from_jsonl = good(jsonl(
            r#"{"order_no": "A20261123001", "product": "Steam 钱包 100 元", "status": "delivered", "amount": 100, "card_keys": ["STEAM-AAAA-1111", "STEAM-BBBB-2222"]}
{"order_no": "A20261123002", "product": "Netflix 1 个月", "status": "待付款", "amount": "30.00"}
"#,
        ));
        assert_eq!(from_jsonl.len(), 2);
        assert_eq!(from_jsonl[1].order.status, OrderStatus::AwaitingPayment);
    }

    #[test]
    fn format_from_path() {
        assert_eq!(
            Format::from_path(Path::new("a/orders.csv")),
            Some(Format::Csv)
        );
        assert_eq!(
            Format::from_path(Path::new("orders.CSV")),
            Some(Format::Csv)
        );
        assert_eq!(
            Format::from_path(Path::new("orders.json")),
            Some(Format::Json)
        );
        assert_eq!(
            Format::from_path(Path::new("orders.jsonl")),
            Some(Format::JsonLines)
        );
        assert_eq!(
            Format::from_path(Path::new("orders.ndjson")),
            Some(Format::JsonLines)
        );
        assert_eq!(Format::from_path(Path::new("orders.xlsx")), None);
        assert_eq!(Format::from_path(Path::new("orders")), None);
        let errors = failures(parse_orders(Path::new("orders.xlsx"), "x", &opts()));
        assert_eq!(
            errors[0].to_string(),
            "orders.xlsx:0: cannot tell the format of \"orders.xlsx\" from its name — use a .csv, \
             .json, .jsonl or .ndjson file"
        );
    }

    #[test]
    fn read_orders_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.csv");
        std::fs::write(&path, "order_no,product,status\nA1,P,paid\n").unwrap();
        let records = good(read_orders(&path, &opts()));
        assert_eq!(records[0].order.number, "A1");

        let missing = dir.path().join("missing.csv");
        let errors = failures(read_orders(&missing, &opts()));
        assert_eq!((errors.len(), errors[0].line), (1, 0));
        assert!(errors[0].message.starts_with("cannot read the file"));

        let xlsx = dir.path().join("orders.xlsx");
        std::fs::write(&xlsx, "whatever").unwrap();
        let errors = failures(read_orders(&xlsx, &opts()));
        assert_eq!(errors[0].line, 0);
        assert!(errors[0].message.contains(".csv, .json, .jsonl or .ndjson"));

        // "已发货" in GBK on line 2.
        let gbk = dir.path().join("gbk.csv");
        let mut bytes = b"order_no,product,status\nA1,P,".to_vec();
        bytes.extend_from_slice(&[0xD2, 0xD1, 0xB7, 0xA2, 0xBB, 0xF5, b'\n']);
        std::fs::write(&gbk, bytes).unwrap();
        let errors = failures(read_orders(&gbk, &opts()));
        assert_eq!((errors.len(), errors[0].line), (1, 2));
        assert!(errors[0]
            .message
            .starts_with("the file is not UTF-8 text (it may be GBK"));
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("prodcut"), Some("product"));
        assert_eq!(suggest("card_key"), Some("card_keys"));
        assert_eq!(suggest("paidat"), Some("paid_at"));
        assert_eq!(suggest("numbr"), Some("number"));
        assert_eq!(suggest("email"), Some("buyer_email"));
        assert_eq!(suggest("colour"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("状态", "状太"), 1);
    }

    #[test]
    fn never_panics_on_odd_input() {
        let odd = [
            "\"",
            "\"\n\"\"\"",
            "order_no,product,status\n\"A1,P,paid\n",
            "order_no,product,status\nA1,P,paid,\"",
            "[",
            "[{",
            "]",
            "{\"a\":",
            "[\"\\",
            "[{\"order_no\":\"\\u00\"}]",
            "\u{0}\u{1}",
            "order_no\n\n\n",
            "[[[[[[]]]]]]",
            "null",
            "[null, true, 1e400]",
            "\r\r\r",
            "\u{feff}\u{feff}",
        ];
        for text in odd {
            for path in ["x.csv", "x.json", "x.jsonl"] {
                let _ = parse_orders(Path::new(path), text, &opts());
            }
        }
        // An unterminated quote swallows the rest of the file into one cell: the row is bad.
        one_error(
            csv("order_no,product,status\nA1,\"P,paid\nA2,P,paid\n"),
            2,
            "status is missing",
        );
    }
}
