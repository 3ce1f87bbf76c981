//! The subset of Helm's templates (Go `text/template` plus Sprig) that the
//! chart under `istio/chart/meshward` uses, rendered here so the chart is
//! checked without a `helm` binary. Anything outside the subset is an error,
//! so the chart cannot start using a construct this renderer does not know.
//!
//! * actions `{{ ... }}` with Go's trim markers `{{- ` and ` -}}`;
//! * fields of the context: `.Values.a.b`, `.Release.Namespace`,
//!   `.Chart.AppVersion` (a missing field is an error, where Helm would
//!   print nothing);
//! * string literals, numbers;
//! * pipelines `x | f a`, with the functions `quote`, `toYaml`,
//!   `nindent N`, `indent N`, `default X`;
//! * `if` / `else` / `end`, with Go's truthiness (false, 0, "", null and
//!   empty collections are false).

use serde_json::Value;

/// A parsed template.
#[derive(Debug)]
enum Node {
    Text(String),
    Expr(String),
    If(String, Vec<Node>, Vec<Node>),
}

/// Renders `template` with `ctx` (`{"Values": ..., "Release": ..., "Chart": ...}`).
pub(crate) fn render(template: &str, ctx: &Value) -> Result<String, String> {
    let tokens = tokenize(template)?;
    let mut at = 0;
    let nodes = parse(&tokens, &mut at, false)?;
    if at != tokens.len() {
        return Err("`end` without `if`".into());
    }
    let mut out = String::new();
    emit(&nodes, ctx, &mut out)?;
    Ok(out)
}

#[derive(Debug)]
enum Token {
    Text(String),
    Action(String),
}

fn tokenize(template: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = template;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or("unclosed {{")?;
        let mut action = &after[..close];
        if let Some(a) = action.strip_prefix("- ") {
            text = text.trim_end();
            action = a;
        }
        trim_next = false;
        if let Some(a) = action.strip_suffix(" -") {
            trim_next = true;
            action = a;
        }
        tokens.push(Token::Text(text.to_string()));
        tokens.push(Token::Action(action.trim().to_string()));
        rest = &after[close + 2..];
    }
    tokens.push(Token::Text(
        if trim_next { rest.trim_start() } else { rest }.to_string(),
    ));
    Ok(tokens)
}

fn parse(tokens: &[Token], at: &mut usize, in_if: bool) -> Result<Vec<Node>, String> {
    let mut nodes = Vec::new();
    while let Some(token) = tokens.get(*at) {
        match token {
            Token::Text(t) => {
                nodes.push(Node::Text(t.clone()));
                *at += 1;
            }
            Token::Action(a) if a == "end" || a == "else" => {
                if !in_if {
                    return Err(format!("`{a}` without `if`"));
                }
                return Ok(nodes);
            }
            Token::Action(a) => {
                *at += 1;
                if let Some(cond) = a.strip_prefix("if ") {
                    let then = parse(tokens, at, true)?;
                    let mut otherwise = Vec::new();
                    if matches!(tokens.get(*at), Some(Token::Action(e)) if e == "else") {
                        *at += 1;
                        otherwise = parse(tokens, at, true)?;
                    }
                    match tokens.get(*at) {
                        Some(Token::Action(e)) if e == "end" => *at += 1,
                        _ => return Err(format!("`if {cond}` without `end`")),
                    }
                    nodes.push(Node::If(cond.trim().to_string(), then, otherwise));
                } else {
                    let word = a.split_whitespace().next().unwrap_or_default();
                    if ["range", "with", "define", "template", "include", "block"].contains(&word)
                        || a.starts_with("/*")
                    {
                        return Err(format!("`{a}`: not in the subset this renderer knows"));
                    }
                    nodes.push(Node::Expr(a.clone()));
                }
            }
        }
    }
    if in_if {
        return Err("`if` without `end`".into());
    }
    Ok(nodes)
}

fn emit(nodes: &[Node], ctx: &Value, out: &mut String) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Expr(e) => out.push_str(&text(&pipeline(e, ctx)?)),
            Node::If(cond, then, otherwise) => {
                let branch = if truthy(&pipeline(cond, ctx)?) { then } else { otherwise };
                emit(branch, ctx, out)?;
            }
        }
    }
    Ok(())
}

/// Go's truthiness.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// How `{{ v }}` prints a value.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Splits on spaces and `|`, keeping double-quoted strings whole.
fn words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                word.push(c);
                quoted = !quoted;
            }
            ' ' | '|' if !quoted => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                if c == '|' {
                    out.push("|".into());
                }
            }
            '(' | ')' if !quoted => return Err(format!("`{s}`: parentheses are not in the subset")),
            c => word.push(c),
        }
    }
    if quoted {
        return Err(format!("`{s}`: unclosed string"));
    }
    if !word.is_empty() {
        out.push(word);
    }
    Ok(out)
}

fn pipeline(expr: &str, ctx: &Value) -> Result<Value, String> {
    let words = words(expr)?;
    let mut value: Option<Value> = None;
    for command in words.split(|w| w == "|") {
        let (name, args) = command
            .split_first()
            .ok_or_else(|| format!("`{expr}`: empty command"))?;
        let mut args: Vec<Value> = args.iter().map(|a| term(a, ctx)).collect::<Result<_, _>>()?;
        if let Some(v) = value.take() {
            args.push(v);
        }
        value = Some(
            if name.starts_with('.') || name.starts_with('"') || name.parse::<f64>().is_ok() {
                if !args.is_empty() {
                    return Err(format!("`{expr}`: a value takes no arguments"));
                }
                term(name, ctx)?
            } else {
                call(name, &args).map_err(|e| format!("`{expr}`: {e}"))?
            },
        );
    }
    value.ok_or_else(|| format!("`{expr}`: empty"))
}

fn term(word: &str, ctx: &Value) -> Result<Value, String> {
    if let Some(path) = word.strip_prefix('.') {
        let mut v = ctx;
        for key in path.split('.') {
            v = v.get(key).ok_or_else(|| format!("{word}: no such field"))?;
        }
        return Ok(v.clone());
    }
    if word.starts_with('"') {
        return serde_json::from_str(word).map_err(|e| format!("{word}: {e}"));
    }
    word.parse::<i64>()
        .map(Value::from)
        .map_err(|_| format!("{word}: not a field, string or integer"))
}

fn call(name: &str, args: &[Value]) -> Result<Value, String> {
    let int = |v: &Value| v.as_u64().map(|n| n as usize).ok_or("expected a count");
    match (name, args) {
        ("quote", [v]) => Ok(Value::String(
            serde_json::to_string(&text(v)).map_err(|e| e.to_string())?,
        )),
        ("toYaml", [v]) => {
            let yaml = meshward_control::manifests::to_yaml(v).map_err(|e| e.to_string())?;
            Ok(Value::String(yaml.trim_end_matches('\n').to_string()))
        }
        ("indent", [n, v]) => Ok(Value::String(indent(int(n)?, &text(v)))),
        ("nindent", [n, v]) => Ok(Value::String(format!("\n{}", indent(int(n)?, &text(v))))),
        ("default", [d, v]) => Ok(if truthy(v) { v.clone() } else { d.clone() }),
        ("gt", [a, b]) => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => Ok(Value::Bool(a > b)),
            _ => Err(format!("gt compares integers, not {a} and {b}")),
        },
        _ => Err(format!(
            "function {name} with {} arguments is not in the subset",
            args.len()
        )),
    }
}

fn indent(n: usize, s: &str) -> String {
    let pad = " ".repeat(n);
    s.lines().map(|l| format!("{pad}{l}")).collect::<Vec<_>>().join("\n")
}

#[test]
fn the_subset_renders_as_helm_does() {
    let ctx = serde_json::json!({
        "Values": {"a": {"b": "x"}, "n": 0, "list": [{"k": "v"}], "on": true},
        "Release": {"Namespace": "ns"},
    });
    let t = "a: {{ .Values.a.b | quote }}\n{{- if .Values.n }}\nn: yes\n{{- else }}\nn: no\n{{- end }}\nl:\n  {{- toYaml .Values.list | nindent 2 }}\nd: {{ .Values.a.b | default \"z\" }}\n";
    assert_eq!(render(t, &ctx).unwrap(), "a: \"x\"\nn: no\nl:\n  - k: v\nd: x\n");
    let t = "{{- if gt .Values.n 1 }}\nmany\n{{- end }}\n{{- if gt 2 .Values.n }}\nfew\n{{- end }}";
    assert_eq!(render(t, &ctx).unwrap(), "\nfew");
    assert!(render("{{ gt .Values.a.b 1 }}", &ctx).is_err());
    assert!(render("{{ .Values.missing }}", &ctx).is_err());
    assert!(render("{{ include \"x\" . }}", &ctx).is_err());
    assert!(render("{{- if .Values.on }}", &ctx).is_err());
    assert!(render("{{ printf \"%s\" .Values.a.b }}", &ctx).is_err());
}
