//! The field path of a JSON parse error, from where the parser stopped.
//!
//! serde_json reports the line and column at which it stopped; the fields
//! and list elements open at that point name the offending field
//! (`policies[2].rules[0].to[0].paths[3]`). Finding them takes one scan of
//! the text up to that point, only when parsing has already failed. The
//! alternative, tracking the path during every parse (serde_path_to_error),
//! compiled every `Deserialize` impl a second time: about 80 KB of the wasm
//! module.

/// The innermost containers open where parsing stopped, outermost first.
enum Frame<'a> {
    /// An object and the key of its current member, once read.
    Object(Option<&'a [u8]>),
    /// A list and the index of its current element, once one started.
    List(Option<usize>),
}

/// The path of the field `error` is about, `.` for the document itself.
///
/// serde_json stops at one of three places, which decide what is read:
/// * on or just after the offending token (an unknown key's closing quote, a
///   value of the wrong type, a number out of range): every token that starts
///   up to there is read, a closing `}`/`]` or a `,` only before it;
/// * just before an object it refused (`invalid type: map`): that byte (a
///   `,`, `[`, `:` or a space) is read too, and the object is the element;
/// * on the `}` of an object that misses a field, which names the object.
///
/// A text cut short is read to its end. An enum written as an object
/// (`"mode": {"q": 1}`) names the field, not the object's key. A check of a
/// value's content (a number out of range: our own `deserialize_with`) is
/// reported wherever the reader got to, past spaces and even the next comma,
/// so it names the last value that started before that point.
pub(crate) fn field_at(json: &[u8], error: &serde_json::Error) -> String {
    let message = error.to_string();
    let mut stop = match error.classify() {
        // The whole text was read.
        serde_json::error::Category::Eof => json.len(),
        _ => offset(json, error.line(), error.column()),
    };
    const PLACED: [&str; 6] = [
        "invalid type",
        "invalid length",
        "unknown field",
        "unknown variant",
        "missing field",
        "duplicate field",
    ];
    let content_check =
        error.classify() == serde_json::error::Category::Data && !PLACED.iter().any(|p| message.starts_with(p));
    let mut scan = Scan::to(json, stop);
    if content_check {
        if let Some(value) = scan.last_value {
            stop = value;
            scan = Scan::to(json, value);
        }
    }
    let i = scan.next;
    match json.get(stop) {
        Some(&b) if message.starts_with("invalid type: map") => {
            if matches!(b, b',' | b'[') {
                scan.token(json, stop, stop + 1);
            }
            start_value(&mut scan.stack);
        }
        // The offending value starts where parsing stopped.
        Some(b'{' | b'[') if i == stop => start_value(&mut scan.stack),
        Some(b) if i == stop && !b",}]: \t\n\r".contains(b) => {
            scan.token(json, stop, stop + 1);
        }
        _ => {}
    }
    if message.starts_with("missing field") {
        if let Some(Frame::Object(key)) = scan.stack.last_mut() {
            *key = None;
        }
    }
    if message.starts_with("unknown variant") && scan.after_key {
        // The key of an object given where an enum's name was expected.
        scan.stack.pop();
    }
    render(&scan.stack)
}

/// The containers open so far, and whether the last token read was a key.
#[derive(Default)]
struct Scan<'a> {
    stack: Vec<Frame<'a>>,
    after_key: bool,
    /// Where the last value read started.
    last_value: Option<usize>,
    /// The first byte not read.
    next: usize,
}

impl<'a> Scan<'a> {
    /// Reads every token that starts before `stop`.
    fn to(json: &'a [u8], stop: usize) -> Self {
        let mut scan = Self::default();
        while scan.next < stop {
            scan.next = scan.token(json, scan.next, stop) + 1;
        }
        scan
    }

    /// Reads the token that starts at `i` (nothing for whitespace or `:`), a
    /// string or scalar to its end but not beyond `limit`; returns the index
    /// of its last byte.
    fn token(&mut self, json: &'a [u8], mut i: usize, limit: usize) -> usize {
        let Some(&b) = json.get(i) else { return i };
        let key = match b {
            b'{' | b'[' => {
                start_value(&mut self.stack);
                self.last_value = Some(i);
                self.stack.push(if b == b'{' {
                    Frame::Object(None)
                } else {
                    Frame::List(None)
                });
                false
            }
            b'}' | b']' => {
                self.stack.pop();
                false
            }
            b',' => {
                match self.stack.last_mut() {
                    Some(Frame::Object(key)) => *key = None,
                    Some(Frame::List(index)) => *index = Some(index.map_or(0, |i| i + 1)),
                    None => {}
                }
                false
            }
            b'"' => {
                let end = string_end(json, i);
                let key = match self.stack.last_mut() {
                    // A string where a key is expected is the member's key.
                    Some(Frame::Object(key @ None)) => {
                        *key = json.get(i + 1..end.min(limit).max(i + 1));
                        true
                    }
                    _ => {
                        start_value(&mut self.stack);
                        self.last_value = Some(i);
                        false
                    }
                };
                i = end;
                key
            }
            b' ' | b'\t' | b'\n' | b'\r' | b':' => return i,
            // The first byte of a number, `true`, `false` or `null`.
            _ => {
                start_value(&mut self.stack);
                self.last_value = Some(i);
                while json.get(i + 1).is_some_and(|b| !b",]} \t\n\r".contains(b)) && i + 1 < limit {
                    i += 1;
                }
                false
            }
        };
        self.after_key = key;
        i
    }
}

/// Marks the start of a value: in a list, its first element begins.
fn start_value(stack: &mut [Frame<'_>]) {
    if let Some(Frame::List(index @ None)) = stack.last_mut() {
        *index = Some(0);
    }
}

/// The index of the quote closing the string that opens at `open` (the
/// text's length if it is not closed).
fn string_end(json: &[u8], open: usize) -> usize {
    let mut i = open + 1;
    while let Some(&b) = json.get(i) {
        match b {
            b'\\' => i += 2,
            b'"' => return i,
            _ => i += 1,
        }
    }
    json.len()
}

/// The byte offset of serde_json's 1-based (line, column).
fn offset(json: &[u8], line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        json.iter()
            .enumerate()
            .filter(|(_, &b)| b == b'\n')
            .nth(line - 2)
            .map_or(json.len(), |(at, _)| at + 1)
    };
    (line_start + column.saturating_sub(1)).min(json.len())
}

fn render(stack: &[Frame<'_>]) -> String {
    let mut path = String::new();
    for frame in stack {
        match frame {
            Frame::Object(Some(key)) => {
                if !path.is_empty() {
                    path.push('.');
                }
                // Keys are compared after unescaping, so they are shown so.
                let quoted = [&b"\""[..], key, &b"\""[..]].concat();
                match serde_json::from_slice::<String>(&quoted) {
                    Ok(key) => path.push_str(&key),
                    Err(_) => path.push_str(&String::from_utf8_lossy(key)),
                }
            }
            Frame::List(Some(index)) => {
                path.push('[');
                path.push_str(&index.to_string());
                path.push(']');
            }
            Frame::Object(None) | Frame::List(None) => {}
        }
    }
    if path.is_empty() {
        path.push('.');
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PluginConfig;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn path(json: &str) -> String {
        let e = serde_json::from_str::<PluginConfig>(json).unwrap_err();
        field_at(json.as_bytes(), &e)
    }

    /// Each case with the path serde_path_to_error reported for it (the
    /// tracking parser this scan replaced), or a noted, equally precise one.
    #[test]
    fn paths_of_parse_errors() {
        let cases = [
            (
                r#"{"policies":[{"name":"a","rules":[]},{"name":"b","rules":[{"to":[{"pathz":["/"]}]}]}]}"#,
                "policies[1].rules[0].to[0].pathz",
            ),
            (
                r#"{"policies":[{"name":"a","rules":[{"to":[{"ports":[80, 70000]}]}]}]}"#,
                "policies[0].rules[0].to[0].ports[1]",
            ),
            (r#"{"mode":"permissive","policies":[]}"#, "mode"),
            (r#"{"policies":[{"name":"a"}]}"#, "policies[0]"),
            (r#"{}"#, "."),
            ("not json", "."),
            (
                r#"{"policies":[{"name":"a","rules":[{"to":[{"paths":["/a", 3]}]}]}]}"#,
                "policies[0].rules[0].to[0].paths[1]",
            ),
            (
                r#"{"policies":[{"name":"a","selector":{"app":1},"rules":[]}]}"#,
                "policies[0].selector.app",
            ),
            (
                r#"{"policies":[{"name":"a","rules":[{"when":[{"header":"x","values":"v"}]}]}]}"#,
                "policies[0].rules[0].when[0].values",
            ),
            (
                r#"{"policies":[{"name":"a","rules":[{"to":[{"paths":["/a"]}]}]}], "log": {"requests": "some"}}"#,
                "log.requests",
            ),
            (r#"{"denyStatus":403.5,"policies":[]}"#, "denyStatus"),
            // The value's error is found at the `}` after it.
            (r#"{"policies":[],"denyStatus":403.5}"#, "denyStatus"),
            (
                r#"{"policies":[{"name":"a","rules":[{"to":[{"paths":["/a\"b"], "x\u0041":1}]}]}]}"#,
                "policies[0].rules[0].to[0].xA",
            ),
            // Over several lines, as written by hand.
            (
                "{\n  \"policies\": [\n    {\"name\": \"a\",\n     \"rules\": [{\"to\": [{\"ports\": [\"80\"]}]}]}\n  ]\n}",
                "policies[0].rules[0].to[0].ports[0]",
            ),
            // serde_path_to_error: `.` (the document); here the repeated key.
            (r#"{"policies":[],"policies":[]}"#, "policies"),
            // serde_path_to_error: `policies`; here the element parsing stopped in.
            (
                r#"{"policies":[{"name":"a","rules":[{"to":[{"paths":["/a"]}]}]}"#,
                "policies[0]",
            ),
            // Found in review: the offending element is the one after the
            // comma, with or without a space; a first element is `[0]`; an
            // enum written as an object names the field.
            (
                r#"{"policies":[{"name":"a","rules":[{"to":[{"paths":["/a",{}]}]}]}]}"#,
                "policies[0].rules[0].to[0].paths[1]",
            ),
            (
                r#"{"policies":[{"name":"a","rules":[{"to":[{"paths":["/a", {}]}]}]}]}"#,
                "policies[0].rules[0].to[0].paths[1]",
            ),
            (r#"{"policies":[1]}"#, "policies[0]"),
            (
                r#"{"policies":[{"name":"a","rules":[{"to":[{"paths":[{}]}]}]}]}"#,
                "policies[0].rules[0].to[0].paths[0]",
            ),
            (r#"{"mode":{"q":1},"policies":[]}"#, "mode"),
            (
                r#"{"policies":[{"name":"a","rules":[{"to":[{"paths":["/a",3]}]}]}]}"#,
                "policies[0].rules[0].to[0].paths[1]",
            ),
            (r#"{"policies":[],"denyStatus":"x"}"#, "denyStatus"),
            (r#"{"policies":[],"denyStatus":[1]}"#, "denyStatus"),
            (r#"{"policies":[],"denyStatus":{}}"#, "denyStatus"),
            (
                r#"{"policies":[{"name":"a","rules":[{"to":[{"ports":[70000, 80]}]}]}]}"#,
                "policies[0].rules[0].to[0].ports[0]",
            ),
            (
                r#"{"policies":[{"name":"a","rules":[{"to":[{"ports":[70000,80]}]}]}]}"#,
                "policies[0].rules[0].to[0].ports[0]",
            ),
            (
                r#"{"policies":[{"name":"a","rules":[{"to":[{"ports":[1.5 ,80]}]}]}]}"#,
                "policies[0].rules[0].to[0].ports[0]",
            ),
            (r#"{"denyStatus":403.5 ,"policies":[]}"#, "denyStatus"),
            (
                r#"{"policies":[{"name":"a","rules":[{"to":[{"ports":[80,"x"]}]}]}]}"#,
                "policies[0].rules[0].to[0].ports[1]",
            ),
            (r#"{"policies":[{"name":"a","rules":[{"from":"all"}]}]}"#, "policies[0].rules[0].from"),
            (
                r#"{"policies":[{"name":"a","rules":[{"to":[{"paths":["/"]}],"when":[1]}]}]}"#,
                "policies[0].rules[0].when[0]",
            ),
            (r#"{"policies":[{"name":"a","rules":[]},{"name":true,"rules":[]}]}"#, "policies[1].name"),
            (
                r#"{"policies":[{"name":"a","rules":[]},{"name":"b","rules":[],"mode":"x"}]}"#,
                "policies[1].mode",
            ),
        ];
        for (json, want) in cases {
            assert_eq!(path(json), want, "{json}");
        }
    }

    // Whatever the text, a failed parse gets a path and nothing panics.
    #[cfg(not(target_arch = "wasm32"))]
    proptest::proptest! {
        #[test]
        fn any_text_gets_a_path(text in "[{}\\[\\],:\"\\\\a-z0-9 \n.é-]{0,64}") {
            if let Err(e) = serde_json::from_str::<PluginConfig>(&text) {
                proptest::prop_assert!(!field_at(text.as_bytes(), &e).is_empty());
            }
        }
    }

    #[test]
    fn offsets_of_lines_and_columns() {
        let text = b"ab\ncd\n";
        assert_eq!(offset(text, 1, 1), 0);
        assert_eq!(offset(text, 2, 2), 4);
        assert_eq!(offset(text, 3, 0), 6);
        assert_eq!(offset(text, 9, 9), 6);
    }
}
