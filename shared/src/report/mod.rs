//! placeholder until the report writers land (replaced at merge)
#![allow(dead_code, unused_variables)]
use crate::model::{Run, ShardRecord, TestCase};
#[derive(Debug, Clone, Default)]
pub struct ReportLinks {
    pub html: Option<String>,
    pub junit: Option<String>,
    pub ctrf: Option<String>,
    pub markdown: Option<String>,
    pub shard_logs: Vec<Option<String>>,
}
pub struct ReportInput<'a> {
    pub run: &'a Run,
    pub shards: &'a [ShardRecord],
    pub cases: &'a [(u32, TestCase)],
    pub links: ReportLinks,
    pub tool_name: &'a str,
}
pub mod markdown {
    pub const GITHUB_SUMMARY_MAX_BYTES: usize = 65535;
    pub fn summary(input: &super::ReportInput, max: usize) -> String {
        String::new()
    }
}
pub mod html {
    pub fn render(
        input: &super::ReportInput,
        out: &mut impl std::io::Write,
    ) -> std::io::Result<()> {
        Ok(())
    }
}
pub mod ctrf {
    pub fn to_json(input: &super::ReportInput) -> serde_json::Value {
        serde_json::Value::Null
    }
}
pub mod junit_xml {
    pub fn write(input: &super::ReportInput, out: &mut impl std::io::Write) -> std::io::Result<()> {
        Ok(())
    }
}
