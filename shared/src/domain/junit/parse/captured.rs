//! Text captured from leaf elements: failure and error bodies, rerun stack
//! traces, system-out and system-err. One reused buffer holds the text of
//! the innermost capturing element; everything else is skipped undecoded.

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::BytesRef;

use super::{Elem, Parser};
use crate::domain::junit::CaseRef;
use crate::errors::JunitError;

impl<F: FnMut(CaseRef<'_>)> Parser<'_, F> {
    /// Where the text of the current element goes, if anywhere.
    pub(super) fn routes_text(&self) -> bool {
        match self.stack.last() {
            Some(Elem::Rerun) => true,
            Some(
                Elem::CaseResult
                | Elem::RerunStackTrace
                | Elem::SystemOut
                | Elem::SystemErr
                | Elem::SuiteResult,
            ) => self.text_open,
            _ => false,
        }
    }

    pub(super) fn push_text(&mut self, s: &str) {
        if self.stack.last() == Some(&Elem::Rerun) {
            if self.case.as_mut().is_some_and(|c| c.rerun.is_some()) {
                self.rerun_body.push(s);
            }
        } else if self.text_open {
            self.text.push(s);
        }
    }

    pub(super) fn open_text(&mut self) {
        self.text.clear();
        self.text_open = true;
    }

    pub(super) fn take_text(&mut self) -> Option<String> {
        if !std::mem::take(&mut self.text_open) {
            return None;
        }
        self.text.take()
    }

    /// Character references and the five predefined entities are decoded and
    /// pushed as text. A DOCTYPE is refused, so no other entity can be
    /// defined: an unknown one is kept as written. Nothing is allocated on
    /// the common paths: failure texts are full of `&apos;` and `&#10;`.
    pub(super) fn push_ref(&mut self, r: &BytesRef<'_>, position: u64) -> Result<(), JunitError> {
        if r.is_char_ref() {
            return match r.resolve_char_ref() {
                Ok(Some(c)) => {
                    self.push_text(c.encode_utf8(&mut [0; 4]));
                    Ok(())
                }
                Ok(None) | Err(_) => Err(self.malformed(
                    position,
                    format!(
                        "invalid character reference `&{};`",
                        String::from_utf8_lossy(r)
                    ),
                )),
            };
        }
        // The five XML entities, matched on the bytes: no UTF-8 pass first.
        let predefined = match &**r {
            b"lt" => Some("<"),
            b"gt" => Some(">"),
            b"amp" => Some("&"),
            b"apos" => Some("'"),
            b"quot" => Some("\""),
            _ => None,
        };
        if let Some(s) = predefined {
            self.push_text(s);
            return Ok(());
        }
        let name = String::from_utf8_lossy(r);
        match resolve_predefined_entity(&name) {
            Some(s) => self.push_text(s),
            None => {
                self.unknown_entities += 1;
                self.push_text(&format!("&{name};"));
            }
        }
        Ok(())
    }

    /// `</system-out>` / `</system-err>`: the text belongs to the open case.
    pub(super) fn close_output(&mut self, elem: Elem) {
        let text = self.take_text();
        if let Some(case) = self.case.as_mut() {
            let slot = if elem == Elem::SystemOut {
                &mut case.system_out
            } else {
                &mut case.system_err
            };
            *slot = text;
        }
    }
}
