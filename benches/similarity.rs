//! How near-duplicate detection scales: an `Index` of 100,000 synthetic posts, queried with
//! fresh texts and with near-duplicates, against brute force on the same queries.
//!
//! Run with `cargo bench --bench similarity`. No benchmark framework: one deterministic
//! corpus, plain `Instant` timings, figures printed as a table. The corpus is generated
//! (a fixed-seed PRNG over word lists), so runs compare with each other.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cadenced::cadence::similarity::{Fingerprint, Index, similarity};

const POSTS: usize = 100_000;
const QUERIES: usize = 1_000;
/// Brute force costs a full scan per query, so it runs on the first queries of each kind.
const BRUTE_QUERIES: usize = 25;
const THRESHOLD: f64 = 0.8;
/// Each index query is timed this many times and the best time kept.
const REPEATS: usize = 3;

/// SplitMix64: tiny, deterministic, good enough to pick words.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const WORDS: &[&str] = &[
    "the",
    "a",
    "our",
    "your",
    "new",
    "all",
    "every",
    "this",
    "that",
    "with",
    "for",
    "from",
    "and",
    "or",
    "in",
    "on",
    "at",
    "to",
    "of",
    "by",
    "now",
    "today",
    "tomorrow",
    "week",
    "weekend",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "morning",
    "evening",
    "spring",
    "summer",
    "autumn",
    "winter",
    "sale",
    "deal",
    "offer",
    "discount",
    "price",
    "prices",
    "half",
    "off",
    "free",
    "shipping",
    "delivery",
    "order",
    "orders",
    "shop",
    "store",
    "online",
    "visit",
    "come",
    "see",
    "find",
    "try",
    "love",
    "loved",
    "favourite",
    "best",
    "fresh",
    "limited",
    "edition",
    "stock",
    "back",
    "restocked",
    "sold",
    "out",
    "last",
    "chance",
    "only",
    "few",
    "left",
    "hurry",
    "grab",
    "yours",
    "gift",
    "gifts",
    "idea",
    "ideas",
    "perfect",
    "for",
    "mum",
    "dad",
    "friends",
    "family",
    "kids",
    "baby",
    "linen",
    "cotton",
    "wool",
    "silk",
    "denim",
    "leather",
    "canvas",
    "shirt",
    "shirts",
    "dress",
    "dresses",
    "jacket",
    "jackets",
    "coat",
    "coats",
    "scarf",
    "scarves",
    "hat",
    "hats",
    "boots",
    "sneakers",
    "sandals",
    "bag",
    "bags",
    "wallet",
    "belt",
    "socks",
    "sweater",
    "hoodie",
    "jeans",
    "skirt",
    "shorts",
    "mug",
    "mugs",
    "candle",
    "candles",
    "plant",
    "plants",
    "pot",
    "vase",
    "lamp",
    "rug",
    "cushion",
    "blanket",
    "towel",
    "soap",
    "tea",
    "coffee",
    "chocolate",
    "cake",
    "bread",
    "honey",
    "jam",
    "cheese",
    "red",
    "blue",
    "green",
    "yellow",
    "black",
    "white",
    "grey",
    "navy",
    "pink",
    "orange",
    "purple",
    "brown",
    "small",
    "large",
    "medium",
    "soft",
    "warm",
    "cool",
    "light",
    "heavy",
    "handmade",
    "local",
    "organic",
    "recycled",
    "vintage",
    "classic",
    "modern",
    "simple",
    "bright",
    "cosy",
    "elegant",
    "bold",
    "sizes",
    "colours",
    "styles",
    "patterns",
    "made",
    "designed",
    "crafted",
    "packed",
    "shipped",
    "wrapped",
    "here",
    "there",
    "inside",
    "window",
    "display",
    "team",
    "customers",
    "thanks",
    "thank",
    "you",
    "everyone",
    "who",
    "came",
    "by",
    "yesterday",
    "opening",
    "hours",
    "closed",
    "open",
    "late",
    "early",
    "holiday",
    "christmas",
    "easter",
    "black",
    "cyber",
    "anniversary",
    "birthday",
    "celebrate",
    "celebrating",
    "years",
    "newsletter",
    "sign",
    "up",
    "join",
    "us",
    "follow",
    "share",
    "tag",
    "photo",
    "photos",
    "review",
    "reviews",
    "stars",
    "happy",
    "story",
    "behind",
    "maker",
    "makers",
    "workshop",
    "studio",
    "market",
    "fair",
    "pop",
    "event",
    "tickets",
    "booking",
    "class",
    "classes",
];

const PHRASES: &[&str] = &[
    "free shipping on orders over 50",
    "link in bio",
    "while stocks last",
    "new in store and online",
    "come and say hello",
    "tag us in your photos",
    "thank you for your support",
    "only a few left",
];

const CJK: &[&str] = &[
    "冬季", "促销", "全场", "八折", "九折", "新品", "上市", "欢迎", "光临", "本店", "限时", "优惠",
    "包邮", "满减", "会员", "专享", "今天", "明天", "周末", "开业", "周年", "庆典", "手工", "制作",
    "天然", "有机", "咖啡", "茶叶", "蛋糕", "面包", "蜂蜜", "果酱", "围巾", "外套", "毛衣", "衬衫",
    "裙子", "鞋子", "包包", "礼物", "礼盒", "送给", "朋友", "家人", "感谢", "大家", "支持", "数量",
    "有限", "先到", "先得", "季节", "限定", "春季", "夏季", "秋季", "新款", "经典", "款式", "颜色",
];

fn latin_post(rng: &mut Rng) -> String {
    let mut words: Vec<String> = Vec::new();
    let n = 8 + rng.below(23);
    for _ in 0..n {
        words.push(rng.pick(WORDS).to_string());
    }
    if rng.chance(30) {
        let at = rng.below(words.len());
        words.insert(at, rng.pick(PHRASES).to_string());
    }
    if rng.chance(20) {
        words.push(format!("{}% off", 10 * (1 + rng.below(7))));
    }
    let mut text = words.join(" ");
    text[..1].make_ascii_uppercase();
    text.push(['.', '!', '?'][rng.below(3)]);
    if rng.chance(40) {
        text.push_str(&format!(
            " https://shop.example/p/{}-{}-{}?utm_source=social&utm_id={}",
            rng.pick(WORDS),
            rng.pick(WORDS),
            rng.below(500),
            rng.next() % 100_000
        ));
    }
    if rng.chance(15) {
        text.insert_str(0, &format!("@{}{} ", rng.pick(WORDS), rng.below(100)));
    }
    for _ in 0..rng.below(3) {
        text.push_str(&format!(" #{}", rng.pick(WORDS)));
    }
    text
}

fn cjk_post(rng: &mut Rng) -> String {
    let mut text = String::new();
    for i in 0..6 + rng.below(15) {
        if i > 0 && rng.chance(25) {
            text.push(['，', '！', '。', ' '][rng.below(4)]);
        }
        text.push_str(rng.pick(CJK));
    }
    if rng.chance(50) {
        text.push_str(&format!(" #{}{}", rng.pick(CJK), rng.pick(CJK)));
    }
    text
}

fn fresh_post(rng: &mut Rng) -> String {
    if rng.chance(10) {
        cjk_post(rng)
    } else {
        latin_post(rng)
    }
}

/// The kinds of small edits people make to reuse a post: one word swapped, a hashtag
/// added, the tracking parameters or the punctuation changed.
fn near_duplicate_of(text: &str, rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => {
            let mut words: Vec<&str> = text.split(' ').collect();
            let at = rng.below(words.len());
            words[at] = if text.is_ascii() {
                rng.pick(WORDS)
            } else {
                rng.pick(CJK)
            };
            words.join(" ")
        }
        1 => format!("{text} #{}", rng.pick(WORDS)),
        2 => text.replace("utm_source=social", "utm_source=newsletter&ref=2") + "!",
        _ => format!("Reminder: {text}"),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

struct Run {
    latencies: Vec<Duration>,
    candidates: usize,
    verified: usize,
    postings: usize,
    hits: usize,
}

fn run_queries(index: &Index<u32>, queries: &[Fingerprint]) -> Run {
    let mut run = Run {
        latencies: Vec::with_capacity(queries.len()),
        candidates: 0,
        verified: 0,
        postings: 0,
        hits: 0,
    };
    for q in queries {
        // Best of a few runs: the figure is the query's cost, not the scheduler's (other
        // processes preempting the benchmark show up as multi-millisecond outliers).
        let mut best = Duration::MAX;
        let mut answer = None;
        for _ in 0..REPEATS {
            let start = Instant::now();
            let found = index.find_with_stats(black_box(q), THRESHOLD);
            best = best.min(start.elapsed());
            answer = Some(found);
        }
        let (hits, stats) = answer.expect("REPEATS > 0");
        run.latencies.push(best);
        run.candidates += stats.candidates;
        run.verified += stats.verified;
        run.postings += stats.postings_scanned;
        run.hits += hits.len();
    }
    run
}

fn brute_force(corpus: &[Fingerprint], q: &Fingerprint) -> Vec<(u32, f64)> {
    corpus
        .iter()
        .enumerate()
        .map(|(i, fp)| (i as u32, similarity(q, fp)))
        .filter(|&(_, s)| s >= THRESHOLD)
        .collect()
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let mut rng = Rng(0x00C0_FFEE);
    let mut texts: Vec<String> = Vec::with_capacity(POSTS);
    while texts.len() < POSTS {
        // 5% of the history are near-duplicates of earlier posts (reused posts).
        if !texts.is_empty() && rng.chance(5) {
            let of = rng.below(texts.len());
            let dup = near_duplicate_of(&texts[of], &mut rng);
            texts.push(dup);
        } else {
            texts.push(fresh_post(&mut rng));
        }
    }

    let start = Instant::now();
    let corpus: Vec<Fingerprint> = texts.iter().map(|t| Fingerprint::of_text(t)).collect();
    let fingerprint_time = start.elapsed();

    let start = Instant::now();
    let mut index = Index::new();
    for (i, fp) in corpus.iter().enumerate() {
        index.insert(i as u32, fp.clone());
    }
    let build_time = start.elapsed();

    let mut qrng = Rng(0xBEEF);
    let fresh: Vec<Fingerprint> = (0..QUERIES)
        .map(|_| Fingerprint::of_text(&fresh_post(&mut qrng)))
        .collect();
    let dups: Vec<Fingerprint> = (0..QUERIES)
        .map(|_| {
            let of = qrng.below(texts.len());
            Fingerprint::of_text(&near_duplicate_of(&texts[of], &mut qrng))
        })
        .collect();

    let chars: usize = texts.iter().map(|t| t.chars().count()).sum();
    let grams: usize = corpus.iter().map(Fingerprint::gram_count).sum();
    println!("similarity benchmark: {POSTS} posts, threshold {THRESHOLD}");
    println!(
        "  corpus: {:.0} chars/post, {:.0} distinct 4-grams/post",
        chars as f64 / POSTS as f64,
        grams as f64 / POSTS as f64
    );
    println!(
        "  fingerprinting (normalize + grams): {:.0} ms ({:.1} µs/post)",
        fingerprint_time.as_secs_f64() * 1e3,
        micros(fingerprint_time) / POSTS as f64
    );
    println!(
        "  index build: {:.0} ms ({:.1} µs/post)",
        build_time.as_secs_f64() * 1e3,
        micros(build_time) / POSTS as f64
    );
    println!(
        "  index memory (estimate): {:.1} MiB ({:.0} bytes/post); brute force holds {:.1} MiB of u128 grams",
        index.approx_heap_bytes() as f64 / (1 << 20) as f64,
        index.approx_heap_bytes() as f64 / POSTS as f64,
        (grams * 16) as f64 / (1 << 20) as f64
    );

    println!();
    println!(
        "  {:<16} {:>9} {:>9} {:>11} {:>10} {:>10} {:>8} {:>11} {:>11} {:>9}",
        "queries",
        "mean µs",
        "p99 µs",
        "postings/q",
        "cand/q",
        "verified/q",
        "hits/q",
        "brute µs",
        "(same q's)",
        "speed-up"
    );
    for (name, queries) in [("fresh", &fresh), ("near-duplicate", &dups)] {
        let run = run_queries(&index, queries);
        let mut sorted = run.latencies.clone();
        sorted.sort_unstable();
        let mean = micros(sorted.iter().sum::<Duration>()) / sorted.len() as f64;

        // Brute force on the first queries, checked against the index's answers.
        let subset = &queries[..BRUTE_QUERIES];
        let start = Instant::now();
        let brute: Vec<Vec<(u32, f64)>> = subset
            .iter()
            .map(|q| brute_force(&corpus, black_box(q)))
            .collect();
        let brute_mean = micros(start.elapsed()) / BRUTE_QUERIES as f64;
        for (q, expected) in subset.iter().zip(&brute) {
            assert_eq!(
                &index.find(q, THRESHOLD),
                expected,
                "index and brute force disagree"
            );
        }
        let index_mean_subset =
            micros(run.latencies[..BRUTE_QUERIES].iter().sum::<Duration>()) / BRUTE_QUERIES as f64;

        let per = |n: usize| n as f64 / queries.len() as f64;
        println!(
            "  {:<16} {:>9.1} {:>9.1} {:>11.0} {:>10.1} {:>10.1} {:>8.2} {:>11.0} {:>11.1} {:>8.0}×",
            name,
            mean,
            micros(percentile(&sorted, 0.99)),
            per(run.postings),
            per(run.candidates),
            per(run.verified),
            per(run.hits),
            brute_mean,
            index_mean_subset,
            brute_mean / index_mean_subset
        );
    }
    println!();
    println!(
        "  brute µs: mean of a full scan with `similarity` over the first {BRUTE_QUERIES} queries of each kind;"
    );
    println!("  (same q's): the index's mean on those queries; answers were checked equal.");
    println!("  index latencies are the best of {REPEATS} runs of each query.");
}
