//! A YAML tree that remembers where each node stands.
//!
//! [`parse`] runs `yaml-rust2`'s event parser and builds a small tree of [`Node`]s, each with the
//! 1-based line and column of its first character, so that validation can point editors at the
//! exact spot of a problem. Scalars keep the text as written (`404` stays `"404"`), together with
//! the type YAML would give a plain scalar, so callers can accept numbers as question text but
//! still insist that an `id` is text.
//!
//! Choices worth knowing:
//!
//! - **Aliases** (`*name`) are resolved to a copy of the anchored node (`&name`); the copy keeps
//!   the locations of the anchored original except for its top node, which stands at the alias.
//!   To keep a hostile file from exploding memory ("billion laughs", or a few long texts
//!   aliased thousands of times), expansion stops with a problem once the copies would hold
//!   more than [`ALIAS_EXPANSION_BYTES`]: each copied node counts its text plus
//!   [`NODE_BYTES`], about what it takes in memory.
//! - **One document per file**: a second `---` document is a problem; only the first is used.
//! - **Empty values** (`key:` with nothing after it, or a bare `-`) are [`Kind::Null`] and stand
//!   at their key or dash rather than at the next token, which is where the parser puts them.
//! - A leading byte-order mark is ignored.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};
use yaml_rust2::Yaml;

/// How many bytes alias expansion may copy in one file before it is stopped.
pub(crate) const ALIAS_EXPANSION_BYTES: usize = 4 * 1024 * 1024;

/// What one copied node costs besides its text (about its size in memory).
pub(crate) const NODE_BYTES: usize = 64;

/// One node of the tree, with the 1-based line and column (in characters) where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// What the node holds.
    pub kind: Kind,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

/// What a [`Node`] holds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// `~`, `null`, or nothing at all.
    Null,
    /// A scalar's text as written, and the type YAML gives it.
    Scalar(String, ScalarType),
    /// A sequence (list).
    Seq(Vec<Node>),
    /// A mapping's key/value pairs in file order; duplicate keys are kept for the caller to report.
    Map(Vec<(Node, Node)>),
}

/// The type of a scalar under YAML's core schema (quoted scalars are always text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScalarType {
    /// Text.
    Str,
    /// An integer such as `404`.
    Int,
    /// A float such as `1.5` or `.inf`.
    Float,
    /// `true` or `false`.
    Bool,
}

impl ScalarType {
    /// How the type is called in messages for editors.
    pub fn describe(self) -> &'static str {
        match self {
            ScalarType::Str => "text",
            ScalarType::Int | ScalarType::Float => "a number",
            ScalarType::Bool => "a true/false value",
        }
    }
}

impl Kind {
    /// How the kind is called in messages for editors ("a list", "a mapping", ...).
    pub fn describe(&self) -> &'static str {
        match self {
            Kind::Null => "nothing",
            Kind::Scalar(_, ty) => ty.describe(),
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

/// A problem found while reading the YAML itself (not the FAQ structure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

/// The result of [`parse`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Parsed {
    /// The first document's root, or `None` for an empty file or a syntax error.
    pub root: Option<Node>,
    /// Syntax errors and other problems of the YAML itself.
    pub problems: Vec<Problem>,
}

impl Parsed {
    /// Whether the YAML could not be read at all (a syntax error), so its content is unknown.
    pub fn failed(&self) -> bool {
        self.root.is_none() && !self.problems.is_empty()
    }
}

/// Parses `text` into a located tree; never panics, never fails: problems are returned.
pub(crate) fn parse(text: &str) -> Parsed {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut builder = Builder::new(text);
    let mut parser = Parser::new_from_str(text);
    // Event by event rather than `Parser::load`, which recurses once per level of nesting: a
    // file of 100,000 `[` would overflow the stack.
    let mut read = || loop {
        let (event, marker) = parser.next_token()?;
        let end = event == Event::StreamEnd;
        builder.on_event(event, marker);
        if end {
            return Ok::<(), ScanError>(());
        }
    };
    match read() {
        Ok(()) => Parsed {
            root: builder.root,
            problems: builder.problems,
        },
        Err(e) => {
            let mut problems = builder.problems;
            problems.push(syntax_problem(&e));
            Parsed {
                root: None,
                problems,
            }
        }
    }
}

/// Turns the parser's error into a problem with a hint that fits the usual causes.
fn syntax_problem(e: &ScanError) -> Problem {
    let info = e.info();
    // "while parsing a block mapping, did not find expected key" -> "did not find expected key"
    let what = match info.split_once(", ") {
        Some((context, rest)) if context.starts_with("while ") => rest,
        _ => info,
    };
    Problem {
        line: e.marker().line().max(1),
        column: e.marker().col() + 1,
        message: format!("invalid YAML: {what}"),
        fix: syntax_fix(info).to_string(),
    }
}

/// A hint for a parser error message.
fn syntax_fix(info: &str) -> &'static str {
    if info.contains("tab") {
        "indent with spaces, not tabs"
    } else if info.contains("mapping values are not allowed") {
        "put quotes around text that contains `: ` (for example \"时间: 9点\"), \
         or check the indentation of this line and the one above"
    } else if info.contains("quoted scalar") {
        "close the quote; inside '...' write '' for a quote, inside \"...\" write \\\""
    } else if info.contains("unknown anchor") {
        "define `&name` before using `*name`, or quote the text if the `*` is meant literally"
    } else if info.contains("flow") || info.contains("':'") {
        "close every `[` with `]` and every `{` with `}` on the same item, \
         or quote text that contains `[`, `{`, `:` or `,`"
    } else {
        "check indentation near here: keys of one mapping start in the same column, \
         list items start with `- ` in the same column, and nested items are indented further"
    }
}

/// A collection being built.
enum Open {
    Seq {
        marker: Marker,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        marker: Marker,
        anchor: usize,
        pairs: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

/// Receives the parser's events and assembles the tree.
struct Builder<'t> {
    lines: Vec<&'t str>,
    stack: Vec<Open>,
    /// Anchored nodes, with what a copy of each costs ([`cost`]).
    anchors: HashMap<usize, (Node, usize)>,
    root: Option<Node>,
    documents: usize,
    expanded: usize,
    problems: Vec<Problem>,
    /// How deep inside a collection nested beyond [`MAX_DEPTH`] the parser is (0: not).
    too_deep: usize,
}

/// How deeply lists and mappings may nest. FAQ files need four or five levels; a tree much
/// deeper than this would only exhaust the stack of whatever walks it.
pub(crate) const MAX_DEPTH: usize = 64;

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, event: Event, marker: Marker) {
        if self.too_deep > 0 {
            // Inside a collection nested too deeply: skipped up to its end, which stands in
            // the tree as nothing.
            match event {
                Event::SequenceStart(..) | Event::MappingStart(..) => self.too_deep += 1,
                Event::SequenceEnd | Event::MappingEnd => {
                    self.too_deep -= 1;
                    if self.too_deep == 0 {
                        self.complete(at(Kind::Null, marker), 0, false);
                    }
                }
                _ => {}
            }
            return;
        }
        if matches!(event, Event::SequenceStart(..) | Event::MappingStart(..))
            && self.stack.len() >= MAX_DEPTH
        {
            self.too_deep = 1;
            self.problems.push(Problem {
                line: marker.line(),
                column: marker.col() + 1,
                message: format!("lists and mappings nest more than {MAX_DEPTH} levels deep here"),
                fix: "an FAQ file needs only a few levels: check the brackets and indentation"
                    .to_string(),
            });
            return;
        }
        match event {
            Event::DocumentStart => self.document_start(marker),
            Event::Scalar(text, style, anchor, tag) => {
                let implicit = text.is_empty() && style == TScalarStyle::Plain;
                let kind = scalar_kind(text, style, tag.is_some_and(|t| t.suffix == "str"));
                self.complete(at(kind, marker), anchor, implicit);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Open::Seq {
                marker,
                anchor,
                items: Vec::new(),
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Open::Map {
                marker,
                anchor,
                pairs: Vec::new(),
                key: None,
            }),
            Event::SequenceEnd | Event::MappingEnd => self.close(),
            Event::Alias(id) => self.alias(id, marker),
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

impl<'t> Builder<'t> {
    fn new(text: &'t str) -> Self {
        Builder {
            lines: text.lines().collect(),
            stack: Vec::new(),
            anchors: HashMap::new(),
            root: None,
            documents: 0,
            expanded: 0,
            problems: Vec::new(),
            too_deep: 0,
        }
    }

    fn document_start(&mut self, marker: Marker) {
        self.documents += 1;
        if self.documents == 2 {
            self.problems.push(Problem {
                line: marker.line(),
                column: marker.col() + 1,
                message: "a second YAML document starts here".to_string(),
                fix: "keep one document per file: remove this `---` line, \
                      or move what follows into a file of its own"
                    .to_string(),
            });
        }
    }

    /// Finishes the innermost open collection.
    fn close(&mut self) {
        let Some(open) = self.stack.pop() else {
            return;
        };
        let (node, anchor) = match open {
            Open::Seq {
                marker,
                anchor,
                items,
            } => (at(Kind::Seq(items), marker), anchor),
            Open::Map {
                marker,
                anchor,
                pairs,
                ..
            } => {
                // A block mapping's start marker stands after its first key; a flow mapping's
                // at its `{`. The earlier of the two is where the mapping really starts.
                let mut node = at(Kind::Map(Vec::new()), marker);
                if let Some((first, _)) = pairs.first() {
                    if (first.line, first.column) < (node.line, node.column) {
                        (node.line, node.column) = (first.line, first.column);
                    }
                }
                node.kind = Kind::Map(pairs);
                (node, anchor)
            }
        };
        self.complete(node, anchor, false);
    }

    /// Copies the node anchored as `id` to where the alias stands.
    fn alias(&mut self, id: usize, marker: Marker) {
        let node = match self.anchors.get(&id) {
            Some((anchored, cost)) if self.expanded + cost <= ALIAS_EXPANSION_BYTES => {
                self.expanded += cost;
                let mut copy = anchored.clone();
                copy.line = marker.line();
                copy.column = marker.col() + 1;
                copy
            }
            Some(_) => {
                if self.expanded <= ALIAS_EXPANSION_BYTES {
                    self.expanded = ALIAS_EXPANSION_BYTES + 1;
                    self.problems.push(Problem {
                        line: marker.line(),
                        column: marker.col() + 1,
                        message: "aliases expand to too much content".to_string(),
                        fix: format!(
                            "write the text out instead of nesting `*aliases`; copies made by \
                             aliases may hold at most {} MiB per file",
                            ALIAS_EXPANSION_BYTES / (1024 * 1024)
                        ),
                    });
                }
                at(Kind::Null, marker)
            }
            // The parser itself rejects unknown anchors; keep going if it ever does not.
            None => at(Kind::Null, marker),
        };
        self.complete(node, 0, false);
    }

    /// Hands a finished node to its parent (or makes it the root).
    fn complete(&mut self, mut node: Node, anchor: usize, implicit_null: bool) {
        if anchor != 0 {
            let cost = cost(&node);
            self.anchors.insert(anchor, (node.clone(), cost));
        }
        match self.stack.last_mut() {
            Some(Open::Seq { items, .. }) => {
                if implicit_null {
                    if let Some((line, column)) = dash_before(&self.lines, &node) {
                        (node.line, node.column) = (line, column);
                    }
                }
                items.push(node);
            }
            Some(Open::Map { pairs, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => {
                    if implicit_null {
                        // Nothing after `key:`: the parser places the empty value at the next
                        // token, possibly lines later; the key is where the editor should look.
                        (node.line, node.column) = (k.line, k.column);
                    }
                    pairs.push((k, node));
                }
            },
            None => {
                if self.documents <= 1 && self.root.is_none() {
                    self.root = Some(node);
                }
            }
        }
    }
}

/// The kind of a scalar event's node.
fn scalar_kind(text: String, style: TScalarStyle, tagged_str: bool) -> Kind {
    if style != TScalarStyle::Plain || tagged_str {
        return Kind::Scalar(text, ScalarType::Str);
    }
    let ty = match Yaml::from_str(&text) {
        Yaml::Null => return Kind::Null,
        Yaml::Integer(_) => ScalarType::Int,
        Yaml::Real(_) => ScalarType::Float,
        Yaml::Boolean(_) => ScalarType::Bool,
        _ => ScalarType::Str,
    };
    Kind::Scalar(text, ty)
}

/// A node at a parser marker (whose line is 1-based and column 0-based).
fn at(kind: Kind, marker: Marker) -> Node {
    Node {
        kind,
        line: marker.line().max(1),
        column: marker.col() + 1,
    }
}

/// How many nodes a subtree holds.
/// What a copy of `node` costs against [`ALIAS_EXPANSION_BYTES`]: [`NODE_BYTES`] per node
/// plus the length of its texts. Walks the tree with a stack of its own, so no nesting depth
/// can overflow the thread's stack.
fn cost(node: &Node) -> usize {
    let mut total = 0usize;
    let mut todo = vec![node];
    while let Some(node) = todo.pop() {
        total = total.saturating_add(NODE_BYTES);
        match &node.kind {
            Kind::Null => {}
            Kind::Scalar(text, _) => total = total.saturating_add(text.len()),
            Kind::Seq(items) => todo.extend(items),
            Kind::Map(pairs) => todo.extend(pairs.iter().flat_map(|(k, v)| [k, v])),
        }
    }
    total
}

/// The `-` of an empty list item whose empty value the parser placed at `node`.
///
/// The parser puts it after the next token (the next item's `- `, or the line after the list),
/// so the dash is the one ending the nearest earlier line that holds more than blanks and
/// comments. At the very end of the input the dash may stand on the node's own line.
fn dash_before(lines: &[&str], node: &Node) -> Option<(usize, usize)> {
    for line in (1..node.line).rev() {
        let text = lines.get(line - 1)?;
        let content = text.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        if let Some(column) = trailing_dash(text) {
            return Some((line, column));
        }
        break;
    }
    let here = lines.get(node.line.checked_sub(1)?)?;
    let prefix: String = here.chars().take(node.column - 1).collect();
    trailing_dash(&prefix).map(|column| (node.line, column))
}

/// The 1-based column of a `-` that ends `line` (ignoring a trailing comment and blanks), if any.
fn trailing_dash(line: &str) -> Option<usize> {
    let code = match line.find(" #") {
        Some(i) => &line[..i],
        None => line,
    };
    let code = code.trim_end();
    let chars: Vec<char> = code.chars().collect();
    let last = chars.len().checked_sub(1)?;
    let separated = last == 0 || chars[last - 1].is_whitespace();
    (chars[last] == '-' && separated).then_some(last + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        let parsed = parse(text);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        parsed.root.expect("a root")
    }

    fn pairs(node: &Node) -> &[(Node, Node)] {
        match &node.kind {
            Kind::Map(pairs) => pairs,
            other => panic!("not a mapping: {other:?}"),
        }
    }

    fn items(node: &Node) -> &[Node] {
        match &node.kind {
            Kind::Seq(items) => items,
            other => panic!("not a list: {other:?}"),
        }
    }

    fn pos(node: &Node) -> (usize, usize) {
        (node.line, node.column)
    }

    #[test]
    fn nodes_stand_at_their_first_character() {
        let text = "# topic\nentries:\n  - id: refund.policy\n    questions:\n      - 怎么退款\n      - \"404\"\n";
        let top = root(text);
        assert_eq!(pos(&top), (2, 1));
        let (key, list) = &pairs(&top)[0];
        assert_eq!(pos(key), (2, 1));
        assert_eq!(pos(list), (3, 3));
        let entry = &items(list)[0];
        assert_eq!(
            pos(entry),
            (3, 5),
            "a block mapping starts at its first key"
        );
        let (id_key, id) = &pairs(entry)[0];
        assert_eq!((pos(id_key), pos(id)), ((3, 5), (3, 9)));
        let questions = items(&pairs(entry)[1].1);
        assert_eq!(pos(&questions[0]), (5, 9));
        assert_eq!(
            questions[1].kind,
            Kind::Scalar("404".into(), ScalarType::Str)
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let top = root("问题: 退款\n");
        let (key, value) = &pairs(&top)[0];
        assert_eq!((pos(key), pos(value)), ((1, 1), (1, 5)));
    }

    #[test]
    fn plain_scalars_keep_their_text_and_type() {
        let top = root("a: 404\nb: true\nc: 1.5\nd: '12'\ne: !!str 7\nf: ~\ng: text\n");
        let kinds: Vec<&Kind> = pairs(&top).iter().map(|(_, v)| &v.kind).collect();
        assert_eq!(kinds[0], &Kind::Scalar("404".into(), ScalarType::Int));
        assert_eq!(kinds[1], &Kind::Scalar("true".into(), ScalarType::Bool));
        assert_eq!(kinds[2], &Kind::Scalar("1.5".into(), ScalarType::Float));
        assert_eq!(kinds[3], &Kind::Scalar("12".into(), ScalarType::Str));
        assert_eq!(kinds[4], &Kind::Scalar("7".into(), ScalarType::Str));
        assert_eq!(kinds[5], &Kind::Null);
        assert_eq!(kinds[6], &Kind::Scalar("text".into(), ScalarType::Str));
    }

    #[test]
    fn empty_values_stand_at_their_key_or_dash() {
        let text = "a:\n  -\n  - # nothing\n\n  - x\nb:\nc: 1\n";
        let top = root(text);
        let list = items(&pairs(&top)[0].1);
        assert_eq!((list[0].kind.clone(), pos(&list[0])), (Kind::Null, (2, 3)));
        assert_eq!((list[1].kind.clone(), pos(&list[1])), (Kind::Null, (3, 3)));
        assert_eq!(pos(&list[2]), (5, 5));
        let (b, b_value) = &pairs(&top)[1];
        assert_eq!((b_value.kind.clone(), pos(b_value)), (Kind::Null, pos(b)));
    }

    #[test]
    fn flow_mapping_starts_at_its_brace() {
        let top = root("- {id: a.b, questions: [q]}\n");
        let entry = &items(&top)[0];
        assert_eq!(pos(entry), (1, 3));
        assert_eq!(pos(&pairs(entry)[1].1), (1, 24));
    }

    #[test]
    fn aliases_are_resolved_at_the_alias() {
        let top = root("a: &tags [x, y]\nb: *tags\n");
        let (_, b) = &pairs(&top)[1];
        assert_eq!(pos(b), (2, 4));
        assert_eq!(items(b).len(), 2);
    }

    #[test]
    fn alias_bombs_are_stopped() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let parsed = parse(&text);
        assert!(parsed.root.is_some());
        assert_eq!(parsed.problems.len(), 1, "{:?}", parsed.problems);
        assert!(parsed.problems[0].message.contains("too much"));
    }

    #[test]
    fn long_texts_aliased_many_times_are_stopped_by_their_size() {
        // Few nodes (about 10,000, far from any node count limit), but each copy carries a
        // 4 KB text: 40 MB if expanded. A file like this (410 KB) once took about 1 GB.
        let long = "卡密".repeat(700);
        let mut text = format!("a: &long \"{long}\"\nb: &list [");
        text.push_str(&vec!["*long"; 100].join(", "));
        text.push_str("]\nc: [");
        text.push_str(&vec!["*list"; 100].join(", "));
        text.push_str("]\n");
        assert!(text.len() < 10_000);
        let parsed = parse(&text);
        assert_eq!(parsed.problems.len(), 1, "{:?}", parsed.problems);
        assert!(parsed.problems[0].message.contains("too much"));
        let kept = parsed.root.as_ref().map_or(0, cost);
        assert!(
            kept <= ALIAS_EXPANSION_BYTES + text.len() * 4,
            "{kept} bytes kept"
        );
    }

    #[test]
    fn deep_nesting_is_a_problem_not_a_crash() {
        for text in ["[".repeat(200_000), "- ".repeat(100_000) + "x\n"] {
            let parsed = parse(&text);
            assert!(parsed.failed() || parsed.root.is_some());
        }
    }

    #[test]
    fn empty_and_comment_only_files_have_no_root() {
        for text in ["", "# just a comment\n", "\u{feff}"] {
            let parsed = parse(text);
            assert_eq!(parsed.root, None);
            assert!(parsed.problems.is_empty());
            assert!(!parsed.failed());
        }
    }

    #[test]
    fn syntax_errors_are_located_one_based() {
        let parsed = parse("entries:\n  - id: a.b\n    questions:\n      - x\n     - y\n");
        assert!(parsed.failed());
        let p = &parsed.problems[0];
        assert_eq!((p.line, p.column), (5, 6));
        assert_eq!(p.message, "invalid YAML: did not find expected key");
        assert!(p.fix.contains("indentation"));
    }

    #[test]
    fn tabs_get_a_tab_hint() {
        let parsed = parse("entries:\n\t- id: a\n");
        let p = &parsed.problems[0];
        assert_eq!((p.line, p.column), (2, 2));
        assert!(p.fix.contains("tabs"));
    }

    #[test]
    fn a_second_document_is_a_problem() {
        let parsed = parse("a: 1\n---\nb: 2\n");
        assert_eq!(parsed.problems.len(), 1);
        assert_eq!((parsed.problems[0].line, parsed.problems[0].column), (2, 1));
        let top = parsed.root.expect("first document");
        assert_eq!(pairs(&top).len(), 1);
    }
}
