//! A start tag as the element handlers read it, whichever tokenizer read it.

use quick_xml::events::BytesStart;

use super::attrs::local_name;

/// One attribute of a tag the fast lane scanned: offsets into the tag's
/// content (`u32`: a tag is far below 4 GiB, the report's size limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AttrSpan {
    /// Where the key's local name starts (after its first `:`, if any).
    pub(super) local: u32,
    pub(super) key_end: u32,
    pub(super) value: u32,
    pub(super) value_end: u32,
}

/// Where a tag's attributes come from.
#[derive(Clone, Copy)]
pub(super) enum TagAttrs<'a> {
    /// Split by the fast lane in the same pass that found the tag's end;
    /// every pair is well-formed, so there is nothing left to report.
    /// `plain`: the content as a `str` when the lane saw it to be ASCII
    /// with no `&` or NUL.
    Scanned {
        spans: &'a [AttrSpan],
        plain: Option<&'a str>,
    },
    /// Read by quick-xml: split on demand, and quick-xml's own attribute
    /// iterator reports what the splitter cannot read (see `attrs`).
    Event(&'a BytesStart<'a>),
}

/// The bytes between `<` and `>` (without an empty element's `/`), as
/// quick-xml's `BytesStart` holds them, and how to read the attributes.
#[derive(Clone, Copy)]
pub(super) struct Tag<'a> {
    pub(super) content: &'a [u8],
    pub(super) name_len: usize,
    pub(super) attrs: TagAttrs<'a>,
}

impl<'a> Tag<'a> {
    pub(super) fn from_event(e: &'a BytesStart<'a>) -> Self {
        Tag {
            content: e,
            name_len: e.name().as_ref().len(),
            attrs: TagAttrs::Event(e),
        }
    }

    /// The qualified name, prefix included (`ns:testcase`).
    pub(super) fn name(&self) -> &'a [u8] {
        &self.content[..self.name_len]
    }

    /// The name after its prefix, as quick-xml's `local_name` (split at the
    /// first `:`): `<ns:testcase>` is a testcase.
    pub(super) fn local_name(&self) -> &'a [u8] {
        local_name(self.name())
    }

    /// Everything after the name: the attributes and the whitespace around
    /// them, as quick-xml's `attributes_raw`.
    pub(super) fn attributes_raw(&self) -> &'a [u8] {
        &self.content[self.name_len..]
    }
}
