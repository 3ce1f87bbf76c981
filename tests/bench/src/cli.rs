//! Command-line options (hand-parsed: the crate keeps its dependencies to
//! serde_json).

use meshward_bench::configs::Variant;
use meshward_bench::rules::Mix;
use std::path::PathBuf;

/// The name of a rule mix on the command line (`--mix`).
pub(crate) fn mix_name(mix: Mix) -> &'static str {
    match mix {
        Mix::All => "all",
        Mix::MapsOnly => "maps",
    }
}

/// The rule mix in words, for the report.
pub(crate) fn mix_description(mix: Mix) -> &'static str {
    match mix {
        Mix::All => "all forms (40% exact, 30% prefix, 20% template, 10% regex)",
        Mix::MapsOnly => "exact and prefix only (60% exact, 40% prefix; no template or regex)",
    }
}

/// Every variant, in report order.
pub(crate) const ALL_VARIANTS: [Variant; 6] = [
    Variant::Router,
    Variant::Rbac,
    Variant::RbacMatcher,
    Variant::NoopWasm,
    Variant::Meshward,
    Variant::ExtAuthz,
];

/// The name of a variant on the command line.
pub(crate) fn variant_name(v: Variant) -> &'static str {
    match v {
        Variant::Router => "router",
        Variant::Rbac => "rbac",
        Variant::RbacMatcher => "rbac-matcher",
        Variant::NoopWasm => "noop-wasm",
        Variant::Meshward => "meshward",
        Variant::ExtAuthz => "ext-authz",
    }
}

/// The label of a variant in the report (issue 6's letters).
pub(crate) fn variant_label(v: Variant) -> &'static str {
    match v {
        Variant::Router => "(a) Router",
        Variant::Rbac => "(b) Rbac",
        Variant::RbacMatcher => "(b2) RbacMatcher",
        Variant::NoopWasm => "(c) NoopWasm",
        Variant::Meshward => "(d) Meshward",
        Variant::ExtAuthz => "(e) ExtAuthz",
    }
}

pub(crate) const USAGE: &str = "\
meshward-bench: side-by-side load runs of Envoy enforcing the same allowlist
(issue 6, BENCHMARKS.md). Variants run interleaved, round after round; the
Envoy under test is pinned to one core with one worker, wrk and the upstream
to another. Prints a markdown report on stdout, progress on stderr.

USAGE: meshward-bench [OPTIONS]

OPTIONS:
  --rules LIST         rule counts N                           [10,1000,10000]
  --variants LIST      subset of router,rbac,rbac-matcher,noop-wasm,meshward,
                       ext-authz                                         [all]
  --mix all|maps       rule mix: all forms (exact, prefix, template, regex)
                       or maps = exact and prefix only                   [all]
  --rounds K           rounds of every variant                             [3]
  --duration SECS      measured seconds per load run                      [10]
  --warmup SECS        unmeasured load before each measured run            [1]
  --connections C      wrk connections                                    [16]
  --threads T          wrk threads                                         [1]
  --envoy-cpu CPU      the core of the Envoy under test                     [0]
  --load-cpu CPU       the core of wrk, the upstream and the authorizer     [1]
  --envoy PATH         Envoy binary [$MESHWARD_ENVOY or <workspace>/.venv/bin/envoy]
  --keep               keep the scratch directories (bootstraps, logs)
  --smoke              quick check: --rules 10 --duration 2 --rounds 1, all
                       variants (explicit options still win)
  -h, --help           this text

Needs wrk (apt-get install -y wrk), taskset, and for the wasm variants
`make build-wasm` (target/wasm32-wasip1/release/meshward_filter.wasm and
meshward_noop_filter.wasm).
";

/// Parsed options.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Options {
    pub(crate) rules: Vec<usize>,
    pub(crate) variants: Vec<Variant>,
    /// The rule mix (`--mix`).
    pub(crate) mix: Mix,
    pub(crate) rounds: u32,
    pub(crate) duration: u64,
    pub(crate) warmup: u64,
    pub(crate) connections: u32,
    pub(crate) threads: u32,
    pub(crate) envoy_cpu: String,
    pub(crate) load_cpu: String,
    pub(crate) envoy: Option<PathBuf>,
    pub(crate) keep: bool,
    pub(crate) smoke: bool,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Parsed {
    Run(Box<Options>),
    Help,
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("{flag}: expected a number, got {v:?}"))
}

fn positive<T: std::str::FromStr + PartialOrd + Default>(flag: &str, v: &str) -> Result<T, String> {
    let n: T = number(flag, v)?;
    if n > T::default() {
        Ok(n)
    } else {
        Err(format!("{flag}: must be at least 1, got {v:?}"))
    }
}

/// Parses the arguments after the program name.
pub(crate) fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut rules = None;
    let mut variants = None;
    let mut mix = Mix::All;
    let mut rounds = None;
    let mut duration = None;
    let mut warmup = None;
    let mut connections = 16;
    let mut threads = 1;
    let mut envoy_cpu = "0".to_string();
    let mut load_cpu = "1".to_string();
    let mut envoy = None;
    let mut keep = false;
    let mut smoke = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--keep" => keep = true,
            "--smoke" => smoke = true,
            "--rules" => {
                let v = value()?;
                let list = v
                    .split(',')
                    .map(|n| positive::<usize>("--rules", n.trim()))
                    .collect::<Result<Vec<_>, _>>()?;
                rules = Some(list);
            }
            "--variants" => {
                let v = value()?;
                let mut list = Vec::new();
                for name in v.split(',').map(str::trim) {
                    let variant = ALL_VARIANTS
                        .into_iter()
                        .find(|&x| variant_name(x) == name)
                        .ok_or_else(|| {
                            let known: Vec<_> = ALL_VARIANTS.into_iter().map(variant_name).collect();
                            format!("--variants: unknown variant {name:?} (known: {})", known.join(","))
                        })?;
                    if !list.contains(&variant) {
                        list.push(variant);
                    }
                }
                list.sort();
                variants = Some(list);
            }
            "--mix" => {
                let v = value()?;
                mix = [Mix::All, Mix::MapsOnly]
                    .into_iter()
                    .find(|&m| mix_name(m) == v.trim())
                    .ok_or_else(|| format!("--mix: expected all or maps, got {v:?}"))?;
            }
            "--rounds" => rounds = Some(positive("--rounds", &value()?)?),
            "--duration" => duration = Some(positive("--duration", &value()?)?),
            "--warmup" => warmup = Some(number("--warmup", &value()?)?),
            "--connections" => connections = positive("--connections", &value()?)?,
            "--threads" => threads = positive("--threads", &value()?)?,
            "--envoy-cpu" => envoy_cpu = value()?,
            "--load-cpu" => load_cpu = value()?,
            "--envoy" => envoy = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    if threads > connections {
        return Err(format!(
            "--threads {threads} exceeds --connections {connections} (wrk needs a connection per thread)"
        ));
    }
    let (d_rules, d_duration, d_rounds) = if smoke {
        (vec![10], 2, 1)
    } else {
        (vec![10, 1000, 10000], 10, 3)
    };
    Ok(Parsed::Run(Box::new(Options {
        rules: rules.unwrap_or(d_rules),
        variants: variants.unwrap_or_else(|| ALL_VARIANTS.to_vec()),
        mix,
        rounds: rounds.unwrap_or(d_rounds),
        duration: duration.unwrap_or(d_duration),
        warmup: warmup.unwrap_or(1),
        connections,
        threads,
        envoy_cpu,
        load_cpu,
        envoy,
        keep,
        smoke,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Options {
        match parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap() {
            Parsed::Run(o) => *o,
            Parsed::Help => panic!("help"),
        }
    }

    #[test]
    fn defaults() {
        let o = run(&[]);
        assert_eq!(o.rules, vec![10, 1000, 10000]);
        assert_eq!(o.variants, ALL_VARIANTS.to_vec());
        assert_eq!(o.mix, Mix::All);
        assert_eq!(
            (o.rounds, o.duration, o.warmup, o.connections, o.threads),
            (3, 10, 1, 16, 1)
        );
        assert_eq!((o.envoy_cpu.as_str(), o.load_cpu.as_str()), ("0", "1"));
    }

    #[test]
    fn smoke_presets_yield_to_explicit_options() {
        let o = run(&["--smoke"]);
        assert_eq!((o.rules.clone(), o.duration, o.rounds), (vec![10], 2, 1));
        assert_eq!(o.variants.len(), 6);
        let o = run(&["--duration", "5", "--smoke", "--rules=100"]);
        assert_eq!((o.rules, o.duration, o.rounds), (vec![100], 5, 1));
    }

    #[test]
    fn variants_are_sorted_and_deduplicated() {
        let o = run(&["--variants", "meshward,router,meshward,rbac-matcher"]);
        assert_eq!(
            o.variants,
            vec![Variant::Router, Variant::RbacMatcher, Variant::Meshward]
        );
    }

    #[test]
    fn mix_flag() {
        assert_eq!(run(&["--mix", "maps"]).mix, Mix::MapsOnly);
        assert_eq!(run(&["--mix=maps", "--smoke"]).mix, Mix::MapsOnly);
        assert_eq!(run(&["--mix", "all"]).mix, Mix::All);
        assert_eq!(run(&["--mix", "maps", "--mix", "all"]).mix, Mix::All);
        let p = |a: &[&str]| parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(p(&["--mix", "regex"]).unwrap_err().contains("--mix"));
        assert!(p(&["--mix"]).unwrap_err().contains("needs a value"));
        assert!(USAGE.contains("--mix all|maps"));
    }

    #[test]
    fn errors() {
        let p = |a: &[&str]| parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(p(&["--variants", "nginx"]).unwrap_err().contains("unknown variant"));
        assert!(p(&["--rules", "10,x"]).is_err());
        assert!(p(&["--rounds", "0"]).is_err());
        assert!(p(&["--duration"]).unwrap_err().contains("needs a value"));
        assert!(p(&["--threads", "4", "--connections", "2"]).is_err());
        assert!(p(&["--bogus"]).is_err());
        assert_eq!(p(&["-h"]).unwrap(), Parsed::Help);
    }
}
