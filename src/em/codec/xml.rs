//! A small namespace-aware XML reader for EM bodies: a tree of the elements in EM's namespace
//! (or none), with attributes decoded and entity references resolved. Elements of other
//! namespaces are skipped with their content.

use super::{CodecError, Link, VEEAM_NS};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// One element of a small XML document: its local name, attributes and text, children.
#[derive(Debug, Default)]
pub(super) struct Node {
    pub(super) name: String,
    pub(super) attrs: Vec<(String, String)>,
    pub(super) text: String,
    pub(super) children: Vec<Node>,
}

impl Node {
    pub(super) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub(super) fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
    pub(super) fn child_text(&self, name: &str) -> Option<String> {
        self.child(name).map(|c| c.text.trim().to_string())
    }
}

pub(super) fn in_veeam_ns(ns: &ResolveResult<'_>) -> bool {
    match ns {
        ResolveResult::Unbound => true,
        ResolveResult::Bound(n) => n.as_ref() == VEEAM_NS.as_bytes(),
        ResolveResult::Unknown(_) => false,
    }
}

pub(super) fn start_node(
    reader: &NsReader<&[u8]>,
    e: &BytesStart<'_>,
    what: &'static str,
) -> Result<Node, CodecError> {
    let mut node = Node {
        name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
        ..Node::default()
    };
    for a in e.attributes() {
        let a = a.map_err(|err| CodecError::new(what, err))?;
        let (ns, local) = reader.resolve_attribute(a.key);
        if matches!(ns, ResolveResult::Bound(_)) && !in_veeam_ns(&ns) {
            continue; // xmlns declarations and foreign attributes
        }
        let value = a
            .decode_and_unescape_value(reader.decoder())
            .map_err(|err| CodecError::new(what, err))?;
        node.attrs.push((
            String::from_utf8_lossy(local.as_ref()).into_owned(),
            value.into_owned(),
        ));
    }
    Ok(node)
}

/// The deepest element nesting read. EM's bodies are a few levels deep; a limit keeps a
/// hostile body from building a tree whose drop would overflow the stack.
const MAX_DEPTH: usize = 32;

/// Parses a document into a tree of the elements in EM's namespace (or none); elements of
/// other namespaces are skipped with their content.
pub(super) fn parse_xml(body: &str, what: &'static str) -> Result<Node, CodecError> {
    let mut reader = NsReader::from_str(body);
    let mut tree = Tree::default();
    loop {
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| CodecError::new(what, e))?;
        let ours = in_veeam_ns(&ns);
        if let Some(root) = tree.feed(&reader, event, ours, what)? {
            return Ok(root);
        }
    }
}

/// The elements being read: the open ones, innermost last, and how deep the reader is inside
/// a skipped (foreign) element.
#[derive(Default)]
struct Tree {
    open: Vec<Node>,
    skip_depth: usize,
}

impl Tree {
    /// Takes one event (`ours`: in EM's namespace or none); `Some(root)` once the root closes.
    fn feed(
        &mut self,
        reader: &NsReader<&[u8]>,
        event: Event<'_>,
        ours: bool,
        what: &'static str,
    ) -> Result<Option<Node>, CodecError> {
        let err = |e: &dyn std::fmt::Display| CodecError::new(what, e);
        let in_text = self.skip_depth == 0 && !self.open.is_empty();
        match event {
            Event::Start(e) => self.start(reader, &e, ours, what).map(|()| None),
            Event::Empty(e) if self.skip_depth == 0 && ours => {
                Ok(self.finish(start_node(reader, &e, what)?))
            }
            Event::End(_) => Ok(self.end()),
            Event::Text(t) if in_text => self.text(&t.decode().map_err(|e| err(&e))?),
            Event::CData(t) if in_text => self.text(&t.decode().map_err(|e| err(&e))?),
            Event::GeneralRef(r) if in_text => {
                let entity = format!("&{};", r.decode().map_err(|e| err(&e))?);
                let value = quick_xml::escape::unescape(&entity).map_err(|e| err(&e))?;
                self.text(&value)
            }
            Event::Eof => Err(CodecError::new(what, "document has no root element")),
            _ => Ok(None),
        }
    }

    fn start(
        &mut self,
        reader: &NsReader<&[u8]>,
        e: &BytesStart<'_>,
        ours: bool,
        what: &'static str,
    ) -> Result<(), CodecError> {
        if self.skip_depth > 0 || !ours {
            self.skip_depth += 1;
        } else if self.open.len() >= MAX_DEPTH {
            let reason = format!("elements nested deeper than {MAX_DEPTH}");
            return Err(CodecError::new(what, reason));
        } else {
            self.open.push(start_node(reader, e, what)?);
        }
        Ok(())
    }

    fn end(&mut self) -> Option<Node> {
        if self.skip_depth > 0 {
            self.skip_depth -= 1;
            return None;
        }
        let node = self.open.pop()?;
        self.finish(node)
    }

    /// A complete element joins its parent, or is the root.
    fn finish(&mut self, node: Node) -> Option<Node> {
        match self.open.last_mut() {
            Some(parent) => {
                parent.children.push(node);
                None
            }
            None => Some(node),
        }
    }

    fn text(&mut self, s: &str) -> Result<Option<Node>, CodecError> {
        if let Some(node) = self.open.last_mut() {
            node.text.push_str(s);
        }
        Ok(None)
    }
}

pub(super) fn xml_links(node: &Node) -> Vec<Link> {
    node.child("Links")
        .map(|links| {
            links
                .children
                .iter()
                .filter(|l| l.name == "Link")
                .map(|l| Link {
                    rel: l.attr("Rel").unwrap_or_default().to_string(),
                    href: l.attr("Href").unwrap_or_default().to_string(),
                    kind: l.attr("Type").unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}
