//! Flags of `stockcart loadgen`.

use std::time::Duration;

use crate::config::parse_duration;

pub const USAGE: &str = "\
stockcart loadgen: simulated shoppers against running stockcart replicas, then verification

USAGE: stockcart loadgen [OPTIONS]

  --url URL[,URL...]     base URLs, used round-robin with no stickiness [default: http://127.0.0.1:8080]
  --admin-token TOKEN    admin token [default: $STOCKCART_ADMIN_TOKEN]
  --scenario NAME        mixed | get-cart | add-to-cart | checkout [default: mixed]
  --users N              concurrent virtual users [default: 32]
  --admins N             admin actors paying and shipping orders (mixed) [default: 2]
  --duration D           how long to run, like 30s or 2m [default: 30s]
  --requests N           stop after about N measured requests (whichever comes first)
  --rate N               at most N iterations per second over all users (a checkout, in the
                         checkout scenario), evenly paced: an open load below the ceiling
  --skus N               catalog size [default: 200]
  --stock N              units of each SKU at the start [default: 1000000]
  --zipf S               Zipf exponent of SKU popularity [default: 1.1]
  --hot                  launch-day rush: every pick is the same SKU
  --lines N              lines per checkout (checkout scenario) [default: 3]
  --carts FILE           checkout scenario: session tokens of carts filled beforehand, one per
                         line; each user checks them out one by one, so only checkout is measured
  --mix K=W,...          weights of browse, cart, add, update, remove, checkout, cancel (mixed)
                         [default: browse=25,cart=20,add=25,update=8,remove=5,checkout=12,cancel=5]
  --seed N               random seed [default: 1]
  --no-seed-catalog      use the existing LG-* catalog instead of creating it
  --currency CUR         currency of the seeded prices [default: EUR]
  --summary FILE         also write the summary as JSON
  --retry                buyers retry like a careful client until they get a definitive answer:
                         on a network error, 502/503/504 (after Retry-After, at most 2 s), 429
                         and 409 idempotency_in_progress; a checkout keeps its Idempotency-Key
                         across attempts, and carts are filled with PUT (safe to repeat).
                         503 and network errors then count as unavailability, not failures
  --give-up D            with --retry: how long past the run's end a checkout keeps retrying
                         before it is logged as abandoned [default: 60s]
  --timeout D            client timeout of one request [default: 30s]
  --client-log FILE      write every answer as a JSON line: at (Unix ms, when answered), op,
                         status, ms, base, code, key; a checkout's 201 adds order and lines
                         (sku, quantity); an abandoned checkout is op checkout_abandoned
";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    Mixed,
    GetCart,
    AddToCart,
    Checkout,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub urls: Vec<String>,
    pub admin_token: String,
    pub scenario: Scenario,
    pub users: usize,
    pub admins: usize,
    pub duration: Duration,
    pub requests: Option<u64>,
    pub rate: Option<f64>,
    pub skus: usize,
    pub stock: i64,
    pub zipf: f64,
    pub hot: bool,
    pub lines: usize,
    pub carts_file: Option<String>,
    pub mix: Vec<(String, u32)>,
    pub seed: u64,
    pub seed_catalog: bool,
    pub currency: String,
    pub summary_path: Option<String>,
    pub retry: bool,
    pub give_up: Duration,
    pub timeout: Duration,
    pub client_log: Option<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            urls: vec!["http://127.0.0.1:8080".into()],
            admin_token: std::env::var("STOCKCART_ADMIN_TOKEN").unwrap_or_default(),
            scenario: Scenario::Mixed,
            users: 32,
            admins: 2,
            duration: Duration::from_secs(30),
            requests: None,
            rate: None,
            skus: 200,
            stock: 1_000_000,
            zipf: 1.1,
            hot: false,
            lines: 3,
            carts_file: None,
            mix: parse_mix("browse=25,cart=20,add=25,update=8,remove=5,checkout=12,cancel=5").expect("a valid default"),
            seed: 1,
            seed_catalog: true,
            currency: "EUR".into(),
            summary_path: None,
            retry: false,
            give_up: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
            client_log: None,
        }
    }
}

fn parse_mix(raw: &str) -> Result<Vec<(String, u32)>, String> {
    const KINDS: &[&str] = &["browse", "cart", "add", "update", "remove", "checkout", "cancel"];
    let mut mix = Vec::new();
    for part in raw.split(',') {
        let (k, w) = part.split_once('=').ok_or_else(|| format!("--mix: {part:?} is not K=W"))?;
        if !KINDS.contains(&k) {
            return Err(format!("--mix: unknown action {k:?} (one of {})", KINDS.join(", ")));
        }
        mix.push((k.to_owned(), w.parse().map_err(|_| format!("--mix: weight {w:?} is not a number"))?));
    }
    if mix.iter().all(|(_, w)| *w == 0) {
        return Err("--mix: all weights are zero".into());
    }
    Ok(mix)
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Option<Options>, String> {
        let mut o = Options::default();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
            let number = |v: String| v.parse::<u64>().map_err(|_| format!("{flag}: {v:?} is not a number"));
            match flag.as_str() {
                "-h" | "--help" => return Ok(None),
                "--url" => o.urls = value()?.split(',').map(|u| u.trim_end_matches('/').to_owned()).collect(),
                "--admin-token" => o.admin_token = value()?,
                "--scenario" => {
                    o.scenario = match value()?.as_str() {
                        "mixed" => Scenario::Mixed,
                        "get-cart" => Scenario::GetCart,
                        "add-to-cart" => Scenario::AddToCart,
                        "checkout" => Scenario::Checkout,
                        other => return Err(format!("unknown scenario {other:?}")),
                    }
                }
                "--users" => o.users = number(value()?)?.max(1) as usize,
                "--admins" => o.admins = number(value()?)? as usize,
                "--duration" => o.duration = parse_duration(&value()?)?,
                "--requests" => o.requests = Some(number(value()?)?),
                "--rate" => {
                    let rate: f64 = value()?.parse().map_err(|_| "--rate: not a number".to_string())?;
                    if !(rate.is_finite() && rate > 0.0) {
                        return Err("--rate: a positive number".into());
                    }
                    o.rate = Some(rate);
                }
                "--skus" => o.skus = number(value()?)?.clamp(1, 100_000) as usize,
                "--stock" => o.stock = number(value()?)?.min(1_000_000_000) as i64,
                "--zipf" => o.zipf = value()?.parse().map_err(|_| "--zipf: not a number".to_string())?,
                "--hot" => o.hot = true,
                "--lines" => o.lines = number(value()?)?.clamp(1, 100) as usize,
                "--carts" => o.carts_file = Some(value()?),
                "--mix" => o.mix = parse_mix(&value()?)?,
                "--seed" => o.seed = number(value()?)?,
                "--no-seed-catalog" => o.seed_catalog = false,
                "--currency" => o.currency = value()?,
                "--summary" => o.summary_path = Some(value()?),
                "--retry" => o.retry = true,
                "--give-up" => o.give_up = parse_duration(&value()?)?,
                "--timeout" => o.timeout = parse_duration(&value()?)?,
                "--client-log" => o.client_log = Some(value()?),
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        if o.admin_token.is_empty() {
            return Err("an admin token is needed: --admin-token or STOCKCART_ADMIN_TOKEN".into());
        }
        Ok(Some(o))
    }
}
