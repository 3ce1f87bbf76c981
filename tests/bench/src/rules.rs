//! The allowlist every variant enforces, and the requests sent.
//!
//! Owned by the configuration half of the harness. Interface (keep it):
//! `rules(n)`, `allowed_request(&rules)`, `denied_request()`.
//!
//! Rule `i` only matches paths under `/svc{i}/`, so the rules are disjoint:
//! a request for the last rule's path is admitted by that rule and no other,
//! and every variant has to look through the whole allowlist to find it
//! (RBAC's policies are evaluated in name order, and the names sort in rule
//! order). The mix, by `i % 10`:
//!
//! | `i % 10` | form | example (`i = 7`) |
//! |---|---|---|
//! | 0–3 | exact (40 %) | `/svc7/api/v1/items` |
//! | 4–6 | prefix (30 %) | `/svc7/static/` |
//! | 7–8 | template (20 %) | `/svc7/users/{*}/profile` |
//! | 9 | regex (10 %) | `/svc7/v[0-9]+/orders/[a-z0-9]+` |
//!
//! so with `n` a multiple of 10 the last rule is a regex, the slowest form
//! for the RBAC matcher tree (its regexes are a sequential fallback list).
//!
//! [`Mix::MapsOnly`] (`rules_with(n, Mix::MapsOnly)`) keeps the scheme but
//! draws only the forms the matcher tree holds in maps:
//!
//! | `i % 10` | form | example (`i = 7`) |
//! |---|---|---|
//! | 0–5 | exact (60 %) | `/svc7/api/v1/items` |
//! | 6–9 | prefix (40 %) | `/svc7/static/` |
//!
//! so with `n` a multiple of 10 the last rule is a prefix (the tree's second
//! lookup, after the exact map misses).

/// A path pattern of one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// Exact path.
    Exact(String),
    /// Plain string prefix.
    Prefix(String),
    /// A template with `{*}` (one segment), e.g. `/api/v3/items/{*}/detail`.
    Template(String),
    /// A regular expression over the whole path (RE2 syntax, no anchors).
    Regex(String),
}

/// One rule: any of `methods` on a path matching `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Allowed methods.
    pub methods: Vec<String>,
    /// The path pattern.
    pub path: PathPattern,
}

/// The methods rules draw from.
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];

/// Which path forms an allowlist draws from (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mix {
    /// 40 % exact, 30 % prefix, 20 % template, 10 % regex: the default.
    #[default]
    All,
    /// 60 % exact, 40 % prefix, no template or regex: every rule lands in
    /// one of the RBAC matcher tree's maps (issue 6's map-only comparison).
    MapsOnly,
}

/// `n` rules, a deterministic mix of exact, prefix, template and regex paths
/// (`rules_with(n, Mix::All)`).
pub fn rules(n: usize) -> Vec<Rule> {
    rules_with(n, Mix::All)
}

/// `n` rules of the given mix; rule `i` depends only on `i` and `mix`.
pub fn rules_with(n: usize, mix: Mix) -> Vec<Rule> {
    (0..n).map(|i| rule(i, mix)).collect()
}

fn rule(i: usize, mix: Mix) -> Rule {
    let exact = || PathPattern::Exact(format!("/svc{i}/api/v1/items"));
    let prefix = || PathPattern::Prefix(format!("/svc{i}/static/"));
    let path = match (mix, i % 10) {
        (Mix::All, 0..=3) | (Mix::MapsOnly, 0..=5) => exact(),
        (Mix::All, 4..=6) | (Mix::MapsOnly, _) => prefix(),
        (Mix::All, 7 | 8) => PathPattern::Template(format!("/svc{i}/users/{{*}}/profile")),
        (Mix::All, _) => PathPattern::Regex(format!("/svc{i}/v[0-9]+/orders/[a-z0-9]+")),
    };
    // One method, or two for odd `i`.
    let mut methods = vec![method(i)];
    if i % 2 == 1 {
        methods.push(method(i + 2));
    }
    Rule { methods, path }
}

fn method(i: usize) -> String {
    METHODS.get(i % METHODS.len()).copied().unwrap_or("GET").to_string()
}

/// `(method, path)` admitted by the last rule of `rules` and by no other.
///
/// The path is a sample of the last rule's pattern: the exact path; the
/// prefix followed by `index.html`; the template with `u42` for each `{*}`;
/// for a regex, one instance of it (see [`sample_regex`]). That no other
/// rule admits it holds for [`rules`]' disjoint allowlists (the tests check
/// it, for both [`Mix`]es); an empty `rules` gives `GET /`.
pub fn allowed_request(rules: &[Rule]) -> (String, String) {
    let Some(last) = rules.last() else {
        return ("GET".to_string(), "/".to_string());
    };
    let method = last.methods.first().cloned().unwrap_or_else(|| "GET".to_string());
    let path = match &last.path {
        PathPattern::Exact(p) => p.clone(),
        PathPattern::Prefix(p) => format!("{p}index.html"),
        PathPattern::Template(t) => t.replace("{*}", "u42"),
        PathPattern::Regex(r) => sample_regex(r),
    };
    (method, path)
}

/// `(method, path)` admitted by no rule (every rule's path starts with `/svc`).
pub fn denied_request() -> (String, String) {
    ("GET".to_string(), "/denied/not-in-the-allowlist".to_string())
}

/// One string the regular expression matches in full, for the simple forms
/// [`rules`] generates: literals, `\`-escapes, `.`, and bracket classes, each
/// optionally followed by `+`, `*` or `?` (taken once). A class contributes
/// its first character, a negated class or `.` contributes `x`. Groups and
/// alternations are not understood.
fn sample_regex(re: &str) -> String {
    let mut out = String::new();
    let mut chars = re.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(escaped) = chars.next() {
                    out.push(escaped);
                }
            }
            '.' => out.push('x'),
            '[' => {
                let class: String = chars.by_ref().take_while(|&c| c != ']').collect();
                out.push(if class.starts_with('^') {
                    'x'
                } else {
                    class.chars().next().unwrap_or('x')
                });
            }
            '+' | '*' | '?' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A straightforward reference matcher: whole path, no canonicalization.
    fn admits(rule: &Rule, method: &str, path: &str) -> bool {
        if !rule.methods.iter().any(|m| m == method) {
            return false;
        }
        match &rule.path {
            PathPattern::Exact(p) => path == p,
            PathPattern::Prefix(p) => path.starts_with(p.as_str()),
            PathPattern::Template(t) => {
                let (pattern, segments): (Vec<&str>, Vec<&str>) = (t.split('/').collect(), path.split('/').collect());
                pattern.len() == segments.len()
                    && pattern
                        .iter()
                        .zip(&segments)
                        .all(|(p, s)| if *p == "{*}" { !s.is_empty() } else { p == s })
            }
            PathPattern::Regex(r) => regex::Regex::new(&format!("^(?:{r})$")).unwrap().is_match(path),
        }
    }

    fn admitted_by(rules: &[Rule], (method, path): &(String, String)) -> Vec<usize> {
        (0..rules.len()).filter(|&i| admits(&rules[i], method, path)).collect()
    }

    #[test]
    fn the_mix_is_forty_thirty_twenty_ten() {
        let rules = rules(1000);
        let count = |f: fn(&PathPattern) -> bool| rules.iter().filter(|r| f(&r.path)).count();
        assert_eq!(count(|p| matches!(p, PathPattern::Exact(_))), 400);
        assert_eq!(count(|p| matches!(p, PathPattern::Prefix(_))), 300);
        assert_eq!(count(|p| matches!(p, PathPattern::Template(_))), 200);
        assert_eq!(count(|p| matches!(p, PathPattern::Regex(_))), 100);
        for r in &rules {
            assert!((1..=2).contains(&r.methods.len()), "{r:?}");
            assert!(r.methods.iter().all(|m| METHODS.contains(&m.as_str())), "{r:?}");
            let mut unique = r.methods.clone();
            unique.dedup();
            assert_eq!(unique, r.methods);
        }
        assert!(rules.iter().any(|r| r.methods.len() == 2));
        assert!(rules.iter().any(|r| r.methods.len() == 1));
    }

    #[test]
    fn rules_are_deterministic() {
        assert_eq!(rules(100), rules(100));
        assert_eq!(rules(10)[..], rules(100)[..10]);
    }

    #[test]
    fn the_allowed_request_is_admitted_by_the_last_rule_only() {
        for n in [1, 2, 5, 8, 9, 10, 11, 17, 100, 1000, 10_000] {
            let rules = rules(n);
            let request = allowed_request(&rules);
            assert_eq!(admitted_by(&rules, &request), vec![n - 1], "n={n}: {request:?}");
        }
    }

    #[test]
    fn without_the_last_rule_the_allowed_request_is_denied() {
        for n in [1, 10, 1000] {
            let rules = rules(n);
            let request = allowed_request(&rules);
            assert!(admitted_by(&rules[..n - 1], &request).is_empty(), "n={n}");
        }
    }

    #[test]
    fn the_denied_request_is_admitted_by_no_rule() {
        for n in [10, 1000, 10_000] {
            let rules = rules(n);
            assert!(admitted_by(&rules, &denied_request()).is_empty(), "n={n}");
            // Not for want of the method: some rule allows it.
            assert!(rules.iter().any(|r| r.methods.contains(&denied_request().0)));
        }
    }

    #[test]
    fn every_form_yields_a_request_it_admits() {
        // Each form as the last rule (n = 1..=10 covers i % 10 = 0..=9).
        for n in 1..=10 {
            let rules = rules(n);
            let (method, path) = allowed_request(&rules);
            assert!(admits(&rules[n - 1], &method, &path), "{:?} vs {path}", rules[n - 1]);
        }
    }

    #[test]
    fn the_maps_only_mix_is_sixty_forty() {
        let rules = rules_with(1000, Mix::MapsOnly);
        let count = |f: fn(&PathPattern) -> bool| rules.iter().filter(|r| f(&r.path)).count();
        assert_eq!(count(|p| matches!(p, PathPattern::Exact(_))), 600);
        assert_eq!(count(|p| matches!(p, PathPattern::Prefix(_))), 400);
        // Same methods as the full mix, rule by rule.
        let all = rules_with(1000, Mix::All);
        for (m, a) in rules.iter().zip(&all) {
            assert_eq!(m.methods, a.methods);
        }
        assert!(matches!(rules[9].path, PathPattern::Prefix(_)));
        assert!(matches!(rules[5].path, PathPattern::Exact(_)));
    }

    #[test]
    fn rules_is_the_full_mix() {
        assert_eq!(rules(1000), rules_with(1000, Mix::All));
        assert_eq!(Mix::default(), Mix::All);
        // Unchanged output: rule 9 is still the regex, rule 7 the template.
        let r = rules(10);
        assert_eq!(r[9].path, PathPattern::Regex("/svc9/v[0-9]+/orders/[a-z0-9]+".into()));
        assert_eq!(r[7].path, PathPattern::Template("/svc7/users/{*}/profile".into()));
        assert_eq!(r[3].path, PathPattern::Exact("/svc3/api/v1/items".into()));
        assert_eq!(r[4].path, PathPattern::Prefix("/svc4/static/".into()));
    }

    #[test]
    fn maps_only_rules_are_deterministic() {
        assert_eq!(rules_with(100, Mix::MapsOnly), rules_with(100, Mix::MapsOnly));
        assert_eq!(rules_with(10, Mix::MapsOnly)[..], rules_with(100, Mix::MapsOnly)[..10]);
    }

    #[test]
    fn maps_only_allowed_request_is_admitted_by_the_last_rule_only() {
        for n in [1, 2, 5, 6, 7, 9, 10, 11, 16, 17, 100, 1000, 10_000] {
            let rules = rules_with(n, Mix::MapsOnly);
            let request = allowed_request(&rules);
            assert_eq!(admitted_by(&rules, &request), vec![n - 1], "n={n}: {request:?}");
            assert!(admitted_by(&rules[..n - 1], &request).is_empty(), "n={n}");
            assert!(admits(&rules[n - 1], &request.0, &request.1), "n={n}");
        }
    }

    #[test]
    fn maps_only_denied_request_is_admitted_by_no_rule() {
        for n in [10, 1000, 10_000] {
            let rules = rules_with(n, Mix::MapsOnly);
            assert!(admitted_by(&rules, &denied_request()).is_empty(), "n={n}");
            assert!(rules.iter().any(|r| r.methods.contains(&denied_request().0)));
        }
    }

    #[test]
    fn maps_only_has_no_template_or_regex() {
        for r in rules_with(10_000, Mix::MapsOnly) {
            assert!(
                matches!(r.path, PathPattern::Exact(_) | PathPattern::Prefix(_)),
                "{r:?}"
            );
        }
    }

    #[test]
    fn regex_samples() {
        assert_eq!(sample_regex("/svc9/v[0-9]+/orders/[a-z0-9]+"), "/svc9/v0/orders/a");
        assert_eq!(sample_regex(r"/a\.b/[^/]+/c.*"), "/a.b/x/cx");
    }
}
