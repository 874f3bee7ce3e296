//! Protobuf text format (`config.pbtxt`) parser.
//!
//! The parser is generic over a message descriptor: a tokenizer and a
//! recursive-descent parser fill a [`DynamicMessage`], which is then turned
//! into the generated Rust type. It accepts everything the text format
//! allows: `#` comments, `field: value`, `field { ... }`, `field: { ... }`,
//! `field < ... >`, lists of messages and of scalars (`dims: [ -1, 3 ]`),
//! repeated fields given one value at a time, single- or double-quoted
//! strings with C escapes, adjacent string concatenation, decimal, hex and
//! octal integers, floats (`inf`, `nan`, an `f` suffix), booleans as
//! `true`/`True`/`t`/`1`, enums by name or number, map fields as
//! `key`/`value` entries, and optional `,` or `;` after each field.
//!
//! Errors give the line and column of the offending token and name the
//! field. A field the schema does not have is an error naming it; a
//! non-repeated field set twice, or two members of one oneof, too.

mod lexer;
mod parser;

use ferrite_proto::inference::ModelConfig;
use prost_reflect::{DynamicMessage, MessageDescriptor};

use crate::RepositoryError;

/// A syntax or schema error at a position of the text.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl From<SyntaxError> for RepositoryError {
    fn from(e: SyntaxError) -> Self {
        RepositoryError::Parse {
            path: None,
            line: e.line,
            column: e.column,
            message: e.message,
        }
    }
}

/// A parsed model configuration with the top-level fields its text sets.
#[derive(Debug)]
pub(crate) struct ParsedConfig {
    pub config: ModelConfig,
    /// Names of the top-level fields written in the text (even with their
    /// default value, such as `max_batch_size: 0`).
    pub explicit_fields: Vec<String>,
}

/// Parses protobuf text format into a message of type `descriptor`.
pub fn parse_text_format(
    descriptor: MessageDescriptor,
    text: &str,
) -> Result<DynamicMessage, RepositoryError> {
    let mut message = DynamicMessage::new(descriptor);
    parser::Parser::new(text).parse_root(&mut message)?;
    Ok(message)
}

/// Parses a `config.pbtxt` text into a [`ModelConfig`].
pub fn parse_pbtxt(text: &str) -> Result<ModelConfig, RepositoryError> {
    parse_config(text).map(|parsed| parsed.config)
}

pub(crate) fn parse_config(text: &str) -> Result<ParsedConfig, RepositoryError> {
    let mut message = DynamicMessage::new(ferrite_proto::model_config_descriptor());
    let explicit_fields = parser::Parser::new(text).parse_root(&mut message)?;
    let config = message.transcode_to().map_err(|e| RepositoryError::Parse {
        path: None,
        line: 1,
        column: 1,
        message: format!("the configuration does not fit `inference.ModelConfig`: {e}"),
    })?;
    Ok(ParsedConfig {
        config,
        explicit_fields,
    })
}

#[cfg(test)]
mod tests;
