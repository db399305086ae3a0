//! Benchmarks of one customer turn through kefu, and of its parts.
//!
//! # What is measured
//!
//! Three things, each over the same fixed, rotating list of [`MESSAGES`] (realistic customer
//! messages in Chinese and English: card-key look-ups, refunds, top-ups that did not arrive,
//! greetings, and some out-of-scope chatter), one message per iteration:
//!
//! - `engine_handle/*`: [`Engine::handle`] with the default in-memory conversation store and
//!   hand-off queue, on a tokio current-thread runtime. Every iteration is the first message of
//!   a new conversation (a fresh [`ConversationKey`] from a counter), so de-duplication never
//!   short-circuits and no conversation drifts into being held by a person. A new engine (with
//!   empty stores) is built for every criterion sample, outside the timed loop, so the
//!   in-memory store does not grow without bound.
//! - `index_search/*`: the bare tantivy BM25 query, `kb.index().search(text, 10)`.
//! - `rank/*`: the full matcher, `KnowledgeBase::rank` (index + neighbour search + the linear
//!   model when it is trained), with the engine's limit of 3 candidates.
//!
//! each on two knowledge bases:
//!
//! - `*/default_kb`: the built-in card-shop knowledge base (`knowledge/faq/`, 28 entries).
//! - `*/kb_10k`: a generated one of 10,000 entries with 4 synthetic, word-rich questions each
//!   (Chinese and English shop vocabulary drawn by a seeded xorshift generator, so every run
//!   builds the same one). Above `MAX_MODEL_CLASSES` (2,000) entries the matcher trains no
//!   linear model, so `rank/kb_10k` measures the index plus the neighbour search. Building it
//!   (about a second) is not measured.
//!
//! # Running
//!
//! ```sh
//! cargo bench --bench engine                 # everything, about a minute and a half
//! cargo bench --bench engine -- default_kb   # one knowledge base only
//! ```
//!
//! Criterion prints `time: [low median high]` per benchmark; the middle figure is the estimate
//! to quote. Results are kept under `target/criterion/` and later runs report the change.
//!
//! # Reading the results
//!
//! `engine_handle / index_search` says how many bare index queries one whole turn costs: the
//! turn adds the matcher's other evidence (neighbours, the model), language detection, entity
//! extraction, the turn lock, the store round trips and rendering the reply. `rank /
//! index_search` isolates the matcher's share; the difference between `engine_handle` and
//! `rank` is the engine's own overhead around matching.

use criterion::{criterion_main, Criterion};
use kefu_core::{ConversationKey, Engine, FaqEntry, Inbound, Knowledge, OutboundKind};
use kefu_knowledge::faq::{LocatedEntry, Location};
use kefu_knowledge::{defaults, FaqSet, KnowledgeBase, MatcherOptions, ValidationOptions};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The customer messages every benchmark rotates through, one per iteration.
const MESSAGES: &[&str] = &[
    // Card keys.
    "我的卡密在哪里看",
    "刚买的steam充值卡 卡密在哪查",
    "where can i find the code i just bought",
    "这个卡密输进去说无效 你们发的有问题吧",
    // Refunds.
    "怎么申请退款",
    "退款多久能到账",
    "can i get a refund for a gift card i haven't used",
    // Top-ups that did not arrive.
    "q币充了半小时了还没到 啥情况",
    "话费充值显示成功了但是一直没到账",
    "topped up my psn wallet but balance still zero",
    // Greetings.
    "你好",
    "在吗",
    "hi there",
    // Other shop questions.
    "how long til i get the code after i pay",
    "可以用支付宝付款吗",
    "do you offer bulk discounts for resellers",
    // Out of scope.
    "今天北京天气如何",
    "帮我写一段Python代码",
    "what's the best pizza place in town",
    "比特币会涨吗",
];

/// How many candidates the engine asks the matcher for (its default `suggestions`).
const RANK_LIMIT: usize = 3;

/// How many hits the bare index query asks for (what the matcher itself asks the index for).
const INDEX_LIMIT: usize = 10;

/// How many entries the generated knowledge base has.
const GENERATED_ENTRIES: usize = 10_000;

/// How many questions each generated entry has.
const GENERATED_QUESTIONS: usize = 4;

/// Products, in both languages, `|`-separated, for the generated knowledge base.
const PRODUCTS: &str = "steam|psn|xbox|itunes|google play|netflix|spotify|q币|点券|钻石|原神|\
    王者荣耀|和平精英|爱奇艺|腾讯视频|优酷|网易云音乐|话费|流量|京东e卡|apple id|\
    nintendo eshop|roblox|valorant|genshin|battle.net|epic games|switch|minecraft|\
    discord nitro|chatgpt plus|youtube premium|disney+|hbo max|razer gold|garena|steam wallet|\
    月卡|季卡|年卡|会员|游戏币|皮肤|礼包|gift card|membership|top-up|voucher|subscription|\
    coupon";

/// Things customers want done, in both languages, `|`-separated.
const ACTIONS: &str = "退款|充值|兑换|激活|查询|取消|修改|续费|开发票|换货|补发|绑定|解绑|\
    登录|下单|支付|提现|转账|redeem|refund|activate|cancel|recharge|renew|change|bind|unbind|\
    login|order|pay|withdraw|resend|invoice|exchange|upgrade|check|transfer|reset";

/// What went wrong, in both languages, `|`-separated.
const PROBLEMS: &str = "没到账|无效|已被使用|过期|失败|错误|找不到|被封|扣款两次|显示处理中|\
    没收到|区服选错|账号填错|密码忘了|验证码|风控|限额|not arrived|invalid|already used|\
    expired|failed|error|missing|banned|charged twice|pending|not received|wrong region|\
    wrong account|forgot password|verification code|blocked|limit|delayed|declined";

/// Connecting words and context, in both languages, `|`-separated.
const FILLERS: &str = "我的|怎么|为什么|还是|一直|刚才|昨天|今天|请问|能不能|可以|多久|订单|\
    卡密|账号|余额|客户|商品|时间|支付宝|微信|银行卡|my|why|how|when|still|already|yesterday|\
    today|please|can|order|code|account|balance|card|paypal|alipay|wechat|hours|minutes|again|\
    help|number|email";

/// A small deterministic pseudo-random generator (xorshift64*), so the generated knowledge
/// base is the same on every run without a `rand` dependency.
struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (any value; zero is replaced by a fixed non-zero state).
    fn new(seed: u64) -> Self {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 pseudo-random bits.
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0; the slight modulo bias does not matter here).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A random element of `words`.
    fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[self.below(words.len())]
    }
}

/// Joins words into a question, without spaces between two Chinese words (as people write)
/// and with a space otherwise.
fn join_words(words: &[&str]) -> String {
    let mut text = String::new();
    for w in words {
        let ascii_edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        if !text.is_empty() && (ascii_edge(text.chars().last()) || ascii_edge(w.chars().next())) {
            text.push(' ');
        }
        text.push_str(w);
    }
    text
}

/// A generated knowledge base of `entries` entries, each about one product, action and
/// problem (its topic) phrased `GENERATED_QUESTIONS` ways with varying filler words.
fn generated_set(entries: usize) -> FaqSet {
    let mut rng = XorShift::new(0x6B65_6675_2D62_656E); // "kefu-ben"
    let path = PathBuf::from("generated/kb_10k.yaml");
    let words = |list: &'static str| list.split('|').collect::<Vec<&str>>();
    let (products, actions) = (words(PRODUCTS), words(ACTIONS));
    let (problems, fillers) = (words(PROBLEMS), words(FILLERS));
    let entries = (0..entries)
        .map(|i| {
            let product = rng.pick(&products);
            let action = rng.pick(&actions);
            let problem = rng.pick(&problems);
            let questions: Vec<String> = (0..GENERATED_QUESTIONS)
                .map(|_| {
                    let mut words = vec![product, action, problem];
                    for _ in 0..2 + rng.below(4) {
                        words.push(rng.pick(&fillers));
                    }
                    if rng.below(2) == 0 {
                        words.push(rng.pick(&products));
                    }
                    // Shuffle (Fisher–Yates) so the paraphrases differ in word order too.
                    for j in (1..words.len()).rev() {
                        words.swap(j, rng.below(j + 1));
                    }
                    join_words(&words)
                })
                .collect();
            let mut entry = FaqEntry::new(
                format!("generated.e{i:05}"),
                questions,
                kefu_core::Answers {
                    zh: format!("关于{product}{action}{problem}的问题，请提供订单号，我们会在24小时内处理。"),
                    en: format!(
                        "For {product} {action} issues ({problem}), send us your order number \
                         and we will sort it out within 24 hours."
                    ),
                },
            );
            entry.tags = vec!["generated".to_string()];
            LocatedEntry {
                entry,
                location: Location {
                    path: path.clone(),
                    line: 1 + i * 8,
                    column: 5,
                },
                example_locations: Vec::new(),
            }
        })
        .collect();
    FaqSet {
        entries,
        files: vec![path],
        ..FaqSet::default()
    }
}

/// The built-in card-shop knowledge base, indexed and trained.
fn default_kb() -> Arc<KnowledgeBase> {
    let set = defaults::load(&ValidationOptions::default()).expect("built-in FAQ files are valid");
    Arc::new(KnowledgeBase::build(set, MatcherOptions::default()).expect("built-in KB builds"))
}

/// The generated 10,000-entry knowledge base, indexed (no model: too many classes).
fn generated_kb() -> Arc<KnowledgeBase> {
    let started = Instant::now();
    let kb = KnowledgeBase::build(generated_set(GENERATED_ENTRIES), MatcherOptions::default())
        .expect("generated KB builds");
    eprintln!(
        "kb_10k: {} entries, {} questions, built in {:.1} s (index {:.1} s, vectors {:.1} s)",
        kb.entries().len(),
        kb.stats().questions,
        started.elapsed().as_secs_f64(),
        kb.stats().index_seconds,
        kb.stats().model_seconds,
    );
    Arc::new(kb)
}

/// A tokio current-thread runtime, as a single-threaded bot process would run the engine.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Checks once, outside the measurements, that the engine replies to every message on `kb`
/// and prints how it decided (answer / suggest / decline, and how many turns ended with a
/// hand-off), so a benchmark never silently measures a short-circuit.
fn check_replies(name: &str, kb: &Arc<KnowledgeBase>, rt: &tokio::runtime::Runtime) {
    let engine = Engine::builder(kb.clone()).build();
    let mut decisions = std::collections::BTreeMap::<String, usize>::new();
    let mut handoffs = 0;
    for (i, text) in MESSAGES.iter().enumerate() {
        let key = ConversationKey::new("bench-check", i.to_string());
        let replies = rt
            .block_on(engine.handle(Inbound::new(key.clone(), "customer", "m1", *text)))
            .expect("in-memory engine turn");
        assert!(!replies.is_empty(), "{name}: no reply to {text:?}");
        handoffs += usize::from(replies.iter().any(|r| r.kind == OutboundKind::Handoff));
        let transcript = rt
            .block_on(engine.transcript(&key))
            .expect("in-memory transcript");
        let decision = transcript
            .first()
            .and_then(|line| line.decision)
            .map_or_else(|| "none".to_string(), |d| d.to_string());
        *decisions.entry(decision).or_default() += 1;
    }
    eprintln!(
        "{name}: decisions on the {} messages: {decisions:?}, {handoffs} handed off",
        MESSAGES.len()
    );
}

/// The three benchmarks (engine turn, bare index query, full matcher) of one knowledge base,
/// as the group `{engine_handle,index_search,rank}/<kb_name>`.
fn bench_kb(c: &mut Criterion, kb_name: &str, kb: &Arc<KnowledgeBase>, measurement: Duration) {
    let rt = runtime();
    check_replies(kb_name, kb, &rt);

    let mut group = c.benchmark_group("engine_handle");
    group.sample_size(50).measurement_time(measurement);
    let mut conversation: u64 = 0;
    group.bench_function(kb_name, |b| {
        b.iter_custom(|iters| {
            // A fresh engine per sample keeps the in-memory store small; the messages are
            // made before the clock starts, each the first of a new conversation.
            let engine = Engine::builder(kb.clone()).build();
            let inbound: Vec<Inbound> = (0..iters)
                .map(|_| {
                    conversation += 1;
                    let text = MESSAGES[(conversation % MESSAGES.len() as u64) as usize];
                    let key = ConversationKey::new("bench", conversation.to_string());
                    Inbound::new(key, "customer", "m1", text)
                })
                .collect();
            rt.block_on(async {
                let started = Instant::now();
                for message in inbound {
                    let replies = engine.handle(black_box(message)).await;
                    black_box(replies.expect("in-memory engine turn"));
                }
                started.elapsed()
            })
        });
    });
    group.finish();

    bench_per_message(c, "index_search", kb_name, measurement, |text| {
        kb.index().search(text, INDEX_LIMIT)
    });
    bench_per_message(c, "rank", kb_name, measurement, |text| {
        kb.rank(text, RANK_LIMIT)
    });
}

/// Long customer messages, the question one clause among several: ranked as a whole and clause
/// by clause (see `KnowledgeBase::rank_with_evidence`), so they cost more than `MESSAGES`.
const LONG_MESSAGES: &[&str] = &[
    "昨天晚上下班回来在你们店买了一张网易一卡通 本来想送朋友 结果他说已经买过了 卡密还没用 能不能帮我退掉",
    "hey so i bought a google play card yesterday for my nephew, he tried to use it this morning, and the store says the code is not valid, what should i do now",
    "我上午十点左右给游戏账号充了六百多的点券，订单页面早就显示完成了，重新登录了好几次，余额还是没变，孩子一直在旁边催，麻烦帮忙看一下",
    "ok so long story, i paid with alipay about twenty minutes ago, the money is gone from my balance, but your site still shows the order as unpaid and i did not get anything",
];

/// `rank` over [`LONG_MESSAGES`] on the built-in knowledge base, as `rank_long/default_kb`.
fn long_message_benches(c: &mut Criterion) {
    let kb = default_kb();
    let mut group = c.benchmark_group("rank_long");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(5));
    let mut next = 0usize;
    group.bench_function("default_kb", |b| {
        b.iter(|| {
            let text = LONG_MESSAGES[next % LONG_MESSAGES.len()];
            next += 1;
            kb.rank(black_box(text), RANK_LIMIT)
        });
    });
    group.finish();
}

/// Benchmarks `call` over the rotating messages, as `<group>/<kb_name>`.
fn bench_per_message<R>(
    c: &mut Criterion,
    group: &str,
    kb_name: &str,
    measurement: Duration,
    mut call: impl FnMut(&str) -> R,
) {
    let mut group = c.benchmark_group(group);
    group.sample_size(50).measurement_time(measurement);
    let mut next = 0usize;
    group.bench_function(kb_name, |b| {
        b.iter(|| {
            let text = MESSAGES[next % MESSAGES.len()];
            next += 1;
            call(black_box(text))
        });
    });
    group.finish();
}

/// The benchmarks on the built-in card-shop knowledge base.
fn default_kb_benches(c: &mut Criterion) {
    bench_kb(c, "default_kb", &default_kb(), Duration::from_secs(5));
}

/// The benchmarks on the generated 10,000-entry knowledge base.
fn kb_10k_benches(c: &mut Criterion) {
    bench_kb(c, "kb_10k", &generated_kb(), Duration::from_secs(5));
}

/// Every benchmark, with a shorter warm-up than criterion's default so the whole run stays
/// well under three minutes on two cores (what `criterion_group!` would generate, written
/// out so it can carry documentation).
fn benches() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .configure_from_args();
    default_kb_benches(&mut c);
    long_message_benches(&mut c);
    kb_10k_benches(&mut c);
}

criterion_main!(benches);
