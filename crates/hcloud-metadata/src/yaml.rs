//! A YAML tree whose scalars keep their exact text. The metadata service's output looks like
//! PyYAML's: a server named `08`, `3e8`, `0o17` or `yes`, or a network named `1e400`, is left
//! unquoted. A schema-typing loader turns those into `8.0`, `300000000.0`, `15`, `true` or an
//! error, so the service parser reads the event stream itself and types nothing: every scalar
//! is text, the caller decides what a key's text means. Only the plain scalars `~`, `null`
//! (any case) and the empty plain scalar are null.

use granit_parser::{Event, Parser, ScalarStyle};

/// One YAML node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Null,
    /// A scalar's text exactly as the YAML means it (quotes and escapes resolved, nothing typed).
    Text(String),
    List(Vec<Node>),
    /// Keys in the order written; a key given twice keeps its last value (see [`Node::get`]).
    Map(Vec<(String, Node)>),
}

/// More nodes than this (aliases count every copy) is not an answer of the service.
const MAX_NODES: usize = 100_000;

impl Node {
    /// The value of `key` in a mapping (the last one when written twice).
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Node::Null)
    }

    /// What this node is, for an error message.
    pub fn describe(&self) -> String {
        match self {
            Node::Null => "nothing".into(),
            Node::Text(s) => format!("the text {s:?}"),
            Node::List(_) => "a list".into(),
            Node::Map(_) => "a mapping".into(),
        }
    }
}

fn is_null_plain(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

struct Builder {
    /// Open collections: a list, or a mapping with its pending key.
    stack: Vec<Open>,
    anchors: Vec<(usize, Node)>,
    count: usize,
    root: Option<Node>,
}

enum Open {
    List(usize, Vec<Node>),
    Map(usize, Vec<(String, Node)>, Option<String>),
}

impl Builder {
    fn push(&mut self, node: Node, anchor: usize) -> Result<(), String> {
        self.count += 1;
        if self.count > MAX_NODES {
            return Err(format!("more than {MAX_NODES} nodes"));
        }
        if anchor != 0 {
            self.anchors.push((anchor, node.clone()));
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Open::List(_, items)) => items.push(node),
            Some(Open::Map(_, entries, pending)) => match pending.take() {
                None => match node {
                    Node::Text(k) => *pending = Some(k),
                    Node::Null => *pending = Some(String::new()),
                    other => return Err(format!("a mapping key is {}", other.describe())),
                },
                Some(k) => entries.push((k, node)),
            },
        }
        Ok(())
    }
}

/// Parse the first document of `text` (an empty text is [`Node::Null`]). The error is the
/// parser's first line, with its position.
pub fn parse(text: &str) -> Result<Node, String> {
    let mut b = Builder {
        stack: Vec::new(),
        anchors: Vec::new(),
        count: 0,
        root: None,
    };
    for next in Parser::new_from_str(text) {
        let (event, _span) = next.map_err(|e| first_line(&e.to_string()))?;
        match event {
            Event::Scalar(value, style, anchor, tag) => {
                let node = if style == ScalarStyle::Plain && tag.is_none() && is_null_plain(&value)
                {
                    Node::Null
                } else {
                    Node::Text(value.into_owned())
                };
                b.push(node, anchor)?;
            }
            Event::SequenceStart(_, anchor, _) => b.stack.push(Open::List(anchor, Vec::new())),
            Event::MappingStart(_, anchor, _) => {
                b.stack.push(Open::Map(anchor, Vec::new(), None));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (anchor, node) = match b.stack.pop() {
                    Some(Open::List(a, items)) => (a, Node::List(items)),
                    Some(Open::Map(a, entries, _)) => (a, Node::Map(entries)),
                    None => return Err("unbalanced collection".into()),
                };
                b.push(node, anchor)?;
            }
            Event::Alias(id) => {
                let node = b
                    .anchors
                    .iter()
                    .rev()
                    .find(|(a, _)| *a == id)
                    .map(|(_, n)| n.clone())
                    .ok_or("an alias to an unknown anchor")?;
                b.count += count(&node);
                b.push(node, 0)?;
            }
            Event::DocumentEnd if b.root.is_some() => break,
            _ => {}
        }
    }
    Ok(b.root.unwrap_or(Node::Null))
}

fn count(n: &Node) -> usize {
    match n {
        Node::List(items) => items.iter().map(count).sum::<usize>() + 1,
        Node::Map(entries) => entries.iter().map(|(_, v)| count(v)).sum::<usize>() + 1,
        _ => 1,
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Node {
        Node::Text(s.into())
    }

    #[test]
    fn scalars_keep_their_text() {
        let n = parse("a: 08\nb: 3e8\nc: 0o17\nd: yes\ne: 1e400\nf: 96:00:00:11:22:33\ng: '07'\nh: ~\ni:\nj: \"\"\n").unwrap();
        assert_eq!(n.get("a"), Some(&text("08")));
        assert_eq!(n.get("b"), Some(&text("3e8")));
        assert_eq!(n.get("c"), Some(&text("0o17")));
        assert_eq!(n.get("d"), Some(&text("yes")));
        assert_eq!(n.get("e"), Some(&text("1e400")));
        assert_eq!(n.get("f"), Some(&text("96:00:00:11:22:33")));
        assert_eq!(n.get("g"), Some(&text("07")));
        assert_eq!(n.get("h"), Some(&Node::Null));
        assert_eq!(n.get("i"), Some(&Node::Null));
        assert_eq!(n.get("j"), Some(&text("")));
    }

    #[test]
    fn collections_anchors_and_the_empty_text() {
        assert_eq!(parse("").unwrap(), Node::Null);
        assert_eq!(parse("  \n").unwrap(), Node::Null);
        let n = parse("x: &a [1, {k: v}]\ny: *a\n").unwrap();
        assert_eq!(n.get("x"), n.get("y"));
        assert_eq!(
            n.get("x"),
            Some(&Node::List(vec![
                text("1"),
                Node::Map(vec![("k".into(), text("v"))])
            ]))
        );
        assert!(parse("a: [1, 2\n").is_err());
        assert!(parse("? [a]\n: b\n").unwrap_err().contains("mapping key"));
    }

    #[test]
    fn an_alias_bomb_is_refused() {
        let mut y = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            y.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(parse(&y).unwrap_err().contains("nodes"));
    }
}
