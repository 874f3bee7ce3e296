//! Tokenizer of the protobuf text format.

use super::SyntaxError;

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum TokenKind {
    /// An identifier: field name, enum value name, `true`, `inf`, ...
    Ident(String),
    /// An integer literal as written (decimal, `0x` hex or `0` octal), unsigned.
    Int(String),
    /// A floating-point literal as written, unsigned, without an `f` suffix.
    Float(String),
    /// A string literal with its escapes resolved.
    Str(Vec<u8>),
    /// One punctuation character: `{ } < > [ ] : , ; -`.
    Symbol(char),
    /// End of the text.
    Eof,
}

/// A token and where it starts (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub kind: TokenKind,
    pub line: usize,
    pub column: usize,
}

/// Splits protobuf text format into tokens, skipping whitespace and `#`
/// comments.
pub(super) struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    column: usize,
}

impl<'a> Lexer<'a> {
    pub fn new(text: &'a str) -> Self {
        Lexer {
            chars: text.chars().peekable(),
            line: 1,
            column: 1,
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn error(&self, line: usize, column: usize, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            line,
            column,
            message: message.into(),
        }
    }

    fn skip_blanks(&mut self) {
        while let Some(c) = self.peek() {
            if c == '#' {
                while let Some(c) = self.bump() {
                    if c == '\n' {
                        break;
                    }
                }
            } else if c.is_whitespace() {
                self.bump();
            } else {
                break;
            }
        }
    }

    /// The next token, [`TokenKind::Eof`] at the end.
    pub fn next_token(&mut self) -> Result<Token, SyntaxError> {
        self.skip_blanks();
        let (line, column) = (self.line, self.column);
        let Some(c) = self.peek() else {
            return Ok(Token {
                kind: TokenKind::Eof,
                line,
                column,
            });
        };
        let kind = if c.is_ascii_alphabetic() || c == '_' {
            TokenKind::Ident(self.take_while(|c| c.is_ascii_alphanumeric() || c == '_'))
        } else if c.is_ascii_digit() || c == '.' {
            self.number(line, column)?
        } else if c == '"' || c == '\'' {
            TokenKind::Str(self.string(line, column)?)
        } else if "{}<>[]:,;-".contains(c) {
            self.bump();
            TokenKind::Symbol(c)
        } else {
            return Err(self.error(line, column, format!("unexpected character `{c}`")));
        };
        Ok(Token { kind, line, column })
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if !keep(c) {
                break;
            }
            out.push(c);
            self.bump();
        }
        out
    }

    fn number(&mut self, line: usize, column: usize) -> Result<TokenKind, SyntaxError> {
        let mut text = self.take_while(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        // An exponent sign belongs to the number: `1e-5`, `2.5E+3`.
        let is_hex = text.starts_with("0x") || text.starts_with("0X");
        if !is_hex && (text.ends_with('e') || text.ends_with('E')) {
            if let Some(sign @ ('+' | '-')) = self.peek() {
                self.bump();
                text.push(sign);
                text.push_str(&self.take_while(|c| c.is_ascii_alphanumeric() || c == '.'));
            }
        }
        let invalid = || self.error(line, column, format!("invalid number `{text}`"));
        if is_hex {
            let digits = &text[2..];
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(invalid());
            }
            return Ok(TokenKind::Int(text));
        }
        if text.chars().all(|c| c.is_ascii_digit()) {
            if text.len() > 1 && text.starts_with('0') && !text.chars().all(|c| c < '8') {
                return Err(invalid());
            }
            return Ok(TokenKind::Int(text));
        }
        let body = text
            .strip_suffix('f')
            .or_else(|| text.strip_suffix('F'))
            .unwrap_or(&text);
        if is_float_literal(body) {
            Ok(TokenKind::Float(body.to_owned()))
        } else {
            Err(invalid())
        }
    }

    fn string(&mut self, line: usize, column: usize) -> Result<Vec<u8>, SyntaxError> {
        let quote = self.bump().unwrap_or('"');
        let mut out = Vec::new();
        loop {
            let (l, c) = (self.line, self.column);
            match self.bump() {
                None | Some('\n') => {
                    return Err(self.error(line, column, "unterminated string literal"))
                }
                Some(ch) if ch == quote => return Ok(out),
                Some('\\') => self.escape(&mut out, l, c)?,
                Some(ch) => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }

    fn escape(&mut self, out: &mut Vec<u8>, line: usize, column: usize) -> Result<(), SyntaxError> {
        let Some(c) = self.bump() else {
            return Err(self.error(line, column, "unterminated string literal"));
        };
        let byte = match c {
            'a' => 0x07,
            'b' => 0x08,
            'f' => 0x0c,
            'n' => b'\n',
            'r' => b'\r',
            't' => b'\t',
            'v' => 0x0b,
            '\\' => b'\\',
            '\'' => b'\'',
            '"' => b'"',
            '?' => b'?',
            '0'..='7' => {
                let mut value = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            value = value * 8 + d;
                            self.bump();
                        }
                        None => break,
                    }
                }
                u8::try_from(value).map_err(|_| {
                    self.error(
                        line,
                        column,
                        format!("octal escape \\{value:o} is above \\377"),
                    )
                })?
            }
            'x' | 'X' => {
                let digits = self.hex_digits(2);
                if digits.is_empty() {
                    return Err(self.error(line, column, "`\\x` escape without hex digits"));
                }
                u8::from_str_radix(&digits, 16).unwrap_or(0)
            }
            'u' | 'U' => {
                let want = if c == 'u' { 4 } else { 8 };
                let digits = self.hex_digits(want);
                let code = u32::from_str_radix(&digits, 16).ok();
                let ch = code
                    .filter(|_| digits.len() == want)
                    .and_then(char::from_u32);
                let Some(ch) = ch else {
                    return Err(self.error(
                        line,
                        column,
                        format!("invalid unicode escape `\\{c}{digits}`"),
                    ));
                };
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                return Ok(());
            }
            other => {
                return Err(self.error(line, column, format!("invalid escape `\\{other}`")));
            }
        };
        out.push(byte);
        Ok(())
    }

    fn hex_digits(&mut self, max: usize) -> String {
        let mut digits = String::new();
        while digits.len() < max {
            match self.peek() {
                Some(d) if d.is_ascii_hexdigit() => {
                    digits.push(d);
                    self.bump();
                }
                _ => break,
            }
        }
        digits
    }
}

/// `digits [. digits] [e[+-]digits]` or `. digits ...`, at least one digit.
fn is_float_literal(text: &str) -> bool {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let mut parts = mantissa.splitn(2, '.');
    let int_part = parts.next().unwrap_or("");
    let frac_part = parts.next().unwrap_or("");
    let mantissa_ok = int_part.chars().all(|c| c.is_ascii_digit())
        && frac_part.chars().all(|c| c.is_ascii_digit())
        && !(int_part.is_empty() && frac_part.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        let mut lexer = Lexer::new(text);
        let mut out = Vec::new();
        loop {
            let token = lexer.next_token().expect("lexes");
            if token.kind == TokenKind::Eof {
                return out;
            }
            out.push(token.kind);
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(
            kinds("12 0x1F 017 0 1.5 .5 2e3 1.5e-3 3f 1.0F"),
            vec![
                TokenKind::Int("12".into()),
                TokenKind::Int("0x1F".into()),
                TokenKind::Int("017".into()),
                TokenKind::Int("0".into()),
                TokenKind::Float("1.5".into()),
                TokenKind::Float(".5".into()),
                TokenKind::Float("2e3".into()),
                TokenKind::Float("1.5e-3".into()),
                TokenKind::Float("3".into()),
                TokenKind::Float("1.0".into()),
            ]
        );
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            kinds(r#"'a"b' "c\'d\n" "\x41\101\u00e9" "[{<>}]""#),
            vec![
                TokenKind::Str(b"a\"b".to_vec()),
                TokenKind::Str(b"c'd\n".to_vec()),
                TokenKind::Str("AA\u{e9}".as_bytes().to_vec()),
                TokenKind::Str(b"[{<>}]".to_vec()),
            ]
        );
    }

    #[test]
    fn comments_and_positions() {
        let mut lexer = Lexer::new("# header\n  name: # trailing\n \"x\"");
        let name = lexer.next_token().expect("name");
        assert_eq!((name.line, name.column), (2, 3));
        let colon = lexer.next_token().expect("colon");
        assert_eq!(colon.kind, TokenKind::Symbol(':'));
        let value = lexer.next_token().expect("value");
        assert_eq!((value.line, value.column), (3, 2));
    }

    #[test]
    fn errors_have_positions() {
        let err = Lexer::new("\n  08").next_token().expect_err("bad octal");
        assert_eq!((err.line, err.column), (2, 3));
        assert!(err.message.contains("08"), "{}", err.message);
        let mut lexer = Lexer::new("name: \"abc");
        lexer.next_token().expect("name");
        lexer.next_token().expect("colon");
        let err = lexer.next_token().expect_err("unterminated");
        assert_eq!((err.line, err.column), (1, 7));
        assert!(Lexer::new("12abc").next_token().is_err());
        assert!(Lexer::new("@").next_token().is_err());
        assert!(Lexer::new(r#""\q""#).next_token().is_err());
    }
}
