//! Recursive-descent parser of the protobuf text format into a
//! [`DynamicMessage`], driven by the message's descriptor.

use std::collections::HashSet;

use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, Value,
};

use super::lexer::{Lexer, Token, TokenKind};
use super::SyntaxError;

/// Parses text format against a message descriptor.
pub(super) struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token>,
}

fn error_at(token: &Token, message: impl Into<String>) -> SyntaxError {
    SyntaxError {
        line: token.line,
        column: token.column,
        message: message.into(),
    }
}

fn describe(token: &Token) -> String {
    match &token.kind {
        TokenKind::Ident(s) => format!("identifier `{s}`"),
        TokenKind::Int(s) | TokenKind::Float(s) => format!("number `{s}`"),
        TokenKind::Str(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            let short: String = text.chars().take(40).collect();
            format!("string \"{short}\"")
        }
        TokenKind::Symbol(c) => format!("`{c}`"),
        TokenKind::Eof => "end of text".to_owned(),
    }
}

fn kind_name(kind: &Kind) -> String {
    match kind {
        Kind::Double => "a number (double)".into(),
        Kind::Float => "a number (float)".into(),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => "an integer (int32)".into(),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => "an integer (int64)".into(),
        Kind::Uint32 | Kind::Fixed32 => "an unsigned integer (uint32)".into(),
        Kind::Uint64 | Kind::Fixed64 => "an unsigned integer (uint64)".into(),
        Kind::Bool => "a boolean".into(),
        Kind::String => "a string".into(),
        Kind::Bytes => "a string (bytes)".into(),
        Kind::Message(m) => format!("a message `{}`", m.full_name()),
        Kind::Enum(e) => format!("a value of enum `{}`", e.full_name()),
    }
}

/// Value of an integer literal (`0x` hex, leading-`0` octal, or decimal).
fn int_literal(text: &str) -> Option<u64> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if text.len() > 1 && text.starts_with('0') {
        u64::from_str_radix(&text[1..], 8).ok()
    } else {
        text.parse().ok()
    }
}

impl<'a> Parser<'a> {
    pub fn new(text: &'a str) -> Self {
        Parser {
            lexer: Lexer::new(text),
            peeked: None,
        }
    }

    fn next(&mut self) -> Result<Token, SyntaxError> {
        match self.peeked.take() {
            Some(token) => Ok(token),
            None => self.lexer.next_token(),
        }
    }

    fn peek(&mut self) -> Result<&Token, SyntaxError> {
        let token = match self.peeked.take() {
            Some(token) => token,
            None => self.lexer.next_token()?,
        };
        Ok(self.peeked.insert(token))
    }

    fn peek_is(&mut self, symbol: char) -> Result<bool, SyntaxError> {
        Ok(self.peek()?.kind == TokenKind::Symbol(symbol))
    }

    /// Parses the whole text into `message`; returns the names of the
    /// top-level fields that the text sets explicitly.
    pub fn parse_root(&mut self, message: &mut DynamicMessage) -> Result<Vec<String>, SyntaxError> {
        let seen = self.parse_fields(message, None)?;
        let descriptor = message.descriptor();
        Ok(descriptor
            .fields()
            .filter(|f| seen.contains(&f.number()))
            .map(|f| f.name().to_owned())
            .collect())
    }

    /// Parses fields until `close` (or the end of the text for the root).
    fn parse_fields(
        &mut self,
        message: &mut DynamicMessage,
        close: Option<char>,
    ) -> Result<HashSet<u32>, SyntaxError> {
        let mut seen = HashSet::new();
        loop {
            let token = self.next()?;
            match &token.kind {
                TokenKind::Eof => {
                    return match close {
                        None => Ok(seen),
                        Some(c) => Err(error_at(
                            &token,
                            format!(
                                "expected `{c}` to close message `{}`, found end of text",
                                message.descriptor().full_name()
                            ),
                        )),
                    };
                }
                TokenKind::Symbol(c) if Some(*c) == close => return Ok(seen),
                TokenKind::Ident(name) => {
                    let name = name.clone();
                    self.parse_field(message, &name, &token, &mut seen)?;
                }
                TokenKind::Symbol('[') => {
                    return Err(error_at(
                        &token,
                        "extension and Any fields (`[...]`) are not supported",
                    ))
                }
                _ => {
                    return Err(error_at(
                        &token,
                        format!(
                            "expected a field name of message `{}`, found {}",
                            message.descriptor().full_name(),
                            describe(&token)
                        ),
                    ))
                }
            }
            if self.peek_is(';')? || self.peek_is(',')? {
                self.next()?;
            }
        }
    }

    fn parse_field(
        &mut self,
        message: &mut DynamicMessage,
        name: &str,
        name_token: &Token,
        seen: &mut HashSet<u32>,
    ) -> Result<(), SyntaxError> {
        let descriptor = message.descriptor();
        let Some(field) = descriptor.get_field_by_name(name) else {
            return Err(error_at(
                name_token,
                format!(
                    "unknown field `{name}` in message `{}`",
                    descriptor.full_name()
                ),
            ));
        };
        let repeated = field.is_list() || field.is_map();
        if !seen.insert(field.number()) && !repeated {
            return Err(error_at(
                name_token,
                format!("field `{name}` is set more than once"),
            ));
        }
        if let Some(oneof) = field.containing_oneof() {
            if let Some(other) = oneof
                .fields()
                .find(|o| o.number() != field.number() && seen.contains(&o.number()))
            {
                return Err(error_at(
                    name_token,
                    format!(
                        "field `{name}` and field `{}` are both set, but only one member of \
                         oneof `{}` may be",
                        other.name(),
                        oneof.name()
                    ),
                ));
            }
        }

        if let Kind::Message(_) = field.kind() {
            if self.peek_is(':')? {
                self.next()?;
            }
            if self.peek_is('[')? {
                let open = self.next()?;
                if !repeated {
                    return Err(error_at(
                        &open,
                        format!("field `{name}` is not repeated and cannot take a list"),
                    ));
                }
                self.parse_list(|p| {
                    let value = p.parse_message_value(&field)?;
                    store_message(message, &field, value, name_token)
                })
            } else {
                let value = self.parse_message_value(&field)?;
                store_message(message, &field, value, name_token)
            }
        } else {
            let colon = self.next()?;
            if colon.kind != TokenKind::Symbol(':') {
                return Err(error_at(
                    &colon,
                    format!(
                        "expected `:` after field `{name}`, found {}",
                        describe(&colon)
                    ),
                ));
            }
            if self.peek_is('[')? {
                let open = self.next()?;
                if !repeated {
                    return Err(error_at(
                        &open,
                        format!("field `{name}` is not repeated and cannot take a list"),
                    ));
                }
                self.parse_list(|p| {
                    let value = p.parse_scalar(&field)?;
                    store_scalar(message, &field, value, name_token)
                })
            } else {
                let value = self.parse_scalar(&field)?;
                store_scalar(message, &field, value, name_token)
            }
        }
    }

    /// Parses `item (, item)* ]` (the `[` already consumed); `[]` is empty.
    fn parse_list(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), SyntaxError>,
    ) -> Result<(), SyntaxError> {
        if self.peek_is(']')? {
            self.next()?;
            return Ok(());
        }
        loop {
            item(self)?;
            let token = self.next()?;
            match token.kind {
                TokenKind::Symbol(',') => {}
                TokenKind::Symbol(']') => return Ok(()),
                _ => {
                    return Err(error_at(
                        &token,
                        format!("expected `,` or `]` in a list, found {}", describe(&token)),
                    ))
                }
            }
        }
    }

    fn parse_message_value(
        &mut self,
        field: &FieldDescriptor,
    ) -> Result<DynamicMessage, SyntaxError> {
        let open = self.next()?;
        let close = match open.kind {
            TokenKind::Symbol('{') => '}',
            TokenKind::Symbol('<') => '>',
            _ => {
                return Err(error_at(
                    &open,
                    format!(
                        "expected `{{` or `<` to start message field `{}`, found {}",
                        field.name(),
                        describe(&open)
                    ),
                ))
            }
        };
        let descriptor: MessageDescriptor = match field.kind() {
            Kind::Message(m) => m,
            other => {
                return Err(error_at(
                    &open,
                    format!(
                        "field `{}` is {}, not a message",
                        field.name(),
                        kind_name(&other)
                    ),
                ))
            }
        };
        let mut value = DynamicMessage::new(descriptor);
        self.parse_fields(&mut value, Some(close))?;
        Ok(value)
    }

    fn parse_scalar(&mut self, field: &FieldDescriptor) -> Result<Value, SyntaxError> {
        let kind = field.kind();
        let mut token = self.next()?;
        let negative = token.kind == TokenKind::Symbol('-');
        if negative {
            token = self.next()?;
        }
        let mismatch = |token: &Token| {
            error_at(
                token,
                format!(
                    "field `{}` expects {}, found {}{}",
                    field.name(),
                    kind_name(&kind),
                    if negative { "`-` " } else { "" },
                    describe(token)
                ),
            )
        };
        match (&kind, &token.kind) {
            (Kind::String | Kind::Bytes, TokenKind::Str(first)) if !negative => {
                let mut bytes = first.clone();
                while let TokenKind::Str(more) = &self.peek()?.kind {
                    bytes.extend_from_slice(more);
                    self.next()?;
                }
                if kind == Kind::Bytes {
                    return Ok(Value::Bytes(bytes.into()));
                }
                String::from_utf8(bytes).map(Value::String).map_err(|_| {
                    error_at(
                        &token,
                        format!("field `{}` holds a string that is not UTF-8", field.name()),
                    )
                })
            }
            (Kind::Bool, TokenKind::Ident(word)) if !negative => match word.as_str() {
                "true" | "True" | "t" => Ok(Value::Bool(true)),
                "false" | "False" | "f" => Ok(Value::Bool(false)),
                _ => Err(mismatch(&token)),
            },
            (Kind::Bool, TokenKind::Int(text)) if !negative => match int_literal(text) {
                Some(0) => Ok(Value::Bool(false)),
                Some(1) => Ok(Value::Bool(true)),
                _ => Err(mismatch(&token)),
            },
            (Kind::Enum(e), TokenKind::Ident(word)) if !negative => e
                .get_value_by_name(word)
                .map(|v| Value::EnumNumber(v.number()))
                .ok_or_else(|| {
                    error_at(
                        &token,
                        format!(
                            "unknown value `{word}` for field `{}` (enum `{}`)",
                            field.name(),
                            e.full_name()
                        ),
                    )
                }),
            (Kind::Enum(e), TokenKind::Int(text)) => {
                let number = int_literal(text)
                    .and_then(|v| i64::try_from(v).ok())
                    .map(|v| if negative { -v } else { v })
                    .and_then(|v| i32::try_from(v).ok());
                match number.and_then(|n| e.get_value(n)) {
                    Some(v) => Ok(Value::EnumNumber(v.number())),
                    None => Err(error_at(
                        &token,
                        format!(
                            "unknown value {}{text} for field `{}` (enum `{}`)",
                            if negative { "-" } else { "" },
                            field.name(),
                            e.full_name()
                        ),
                    )),
                }
            }
            (
                Kind::Float | Kind::Double,
                TokenKind::Int(_) | TokenKind::Float(_) | TokenKind::Ident(_),
            ) => {
                let magnitude = match &token.kind {
                    TokenKind::Int(text) => int_literal(text).map(|v| v as f64),
                    TokenKind::Float(text) => text.parse::<f64>().ok(),
                    TokenKind::Ident(word) => match word.to_ascii_lowercase().as_str() {
                        "inf" | "infinity" => Some(f64::INFINITY),
                        "nan" => Some(f64::NAN),
                        _ => None,
                    },
                    _ => None,
                };
                let Some(magnitude) = magnitude else {
                    return Err(mismatch(&token));
                };
                let value = if negative { -magnitude } else { magnitude };
                Ok(if kind == Kind::Float {
                    Value::F32(value as f32)
                } else {
                    Value::F64(value)
                })
            }
            (_, TokenKind::Int(text)) if is_integer_kind(&kind) => {
                integer_value(&kind, text, negative).ok_or_else(|| {
                    error_at(
                        &token,
                        format!(
                            "integer {}{text} is out of range for field `{}`, which expects {}",
                            if negative { "-" } else { "" },
                            field.name(),
                            kind_name(&kind)
                        ),
                    )
                })
            }
            _ => Err(mismatch(&token)),
        }
    }
}

fn is_integer_kind(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::Int32
            | Kind::Sint32
            | Kind::Sfixed32
            | Kind::Int64
            | Kind::Sint64
            | Kind::Sfixed64
            | Kind::Uint32
            | Kind::Fixed32
            | Kind::Uint64
            | Kind::Fixed64
    )
}

fn integer_value(kind: &Kind, text: &str, negative: bool) -> Option<Value> {
    let magnitude = i128::from(int_literal(text)?);
    let value = if negative { -magnitude } else { magnitude };
    match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => i32::try_from(value).ok().map(Value::I32),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => i64::try_from(value).ok().map(Value::I64),
        Kind::Uint32 | Kind::Fixed32 => u32::try_from(value).ok().map(Value::U32),
        Kind::Uint64 | Kind::Fixed64 => u64::try_from(value).ok().map(Value::U64),
        _ => None,
    }
}

fn store_scalar(
    message: &mut DynamicMessage,
    field: &FieldDescriptor,
    value: Value,
    at: &Token,
) -> Result<(), SyntaxError> {
    let result = if field.is_list() {
        match message.get_field_mut(field).as_list_mut() {
            Some(list) => {
                list.push(value);
                Ok(())
            }
            None => Err(format!("field `{}` does not hold a list", field.name())),
        }
    } else {
        message
            .try_set_field(field, value)
            .map_err(|e| format!("cannot set field `{}`: {e}", field.name()))
    };
    result.map_err(|message| error_at(at, message))
}

fn store_message(
    message: &mut DynamicMessage,
    field: &FieldDescriptor,
    value: DynamicMessage,
    at: &Token,
) -> Result<(), SyntaxError> {
    if field.is_map() {
        let entry = value.descriptor();
        let key = value.get_field(&entry.map_entry_key_field()).into_owned();
        let item = value.get_field(&entry.map_entry_value_field()).into_owned();
        let Some(key) = key.into_map_key() else {
            return Err(error_at(
                at,
                format!("map field `{}` has a key of an invalid type", field.name()),
            ));
        };
        match message.get_field_mut(field).as_map_mut() {
            Some(map) => {
                map.insert(key, item);
                Ok(())
            }
            None => Err(error_at(
                at,
                format!("field `{}` does not hold a map", field.name()),
            )),
        }
    } else {
        store_scalar(message, field, Value::Message(value), at)
    }
}
