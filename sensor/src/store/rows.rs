//! What both engines store for an alert: its priority as a number, its tags column, the
//! text its search index holds, and the hourly counts per grouping value that the
//! dashboard reads instead of every alert.

use std::sync::Arc;

use super::{Cursor, GroupBy, Order, Placement, Query};
use crate::rules::{Alert, Priority, Value};

/// The columns a search reads, in the order the engines' row readers take them.
pub(super) const COLUMNS: &str =
    "id, time_ns, priority, rule, source, hostname, container_id, container_name, image, namespace, pod, tags, json";

pub(super) const DAY_NS: u64 = 86_400 * 1_000_000_000;
pub(super) const HOUR_NS: u64 = 3_600 * 1_000_000_000;

/// The separator of list columns (an alert's `tags`, an audit event's `groups` and
/// `source_ips`): values are stored `\nA\nB\n`, so that a value is found as `\nA\n`
/// whatever its neighbours.
pub(super) const LIST_SEPARATOR: char = '\n';

/// The text an alert's index holds: its output, rule, tags and output field values (the
/// JSON holds them all too, for the exact check).
pub(super) fn body(alert: &Alert) -> String {
    let mut body = format!("{}\n{}\n{}", alert.message, alert.rule, alert.tags.join(" "));
    for (key, value) in &alert.fields {
        if let Some(v) = value {
            body.push('\n');
            body.push_str(key);
            body.push('=');
            body.push_str(&v.to_string());
        }
    }
    body
}

/// The words of a text: its runs of letters and digits, lowercased.
pub(super) fn words_of(text: &str) -> impl Iterator<Item = String> + '_ {
    word_runs(text).map(str::to_lowercase)
}

/// A text's runs of letters and digits, as written.
fn word_runs(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty())
}

/// The longest word the PostgreSQL word index holds, in bytes: longer words are held by
/// their beginning, which a search word's beginning still finds (far below PostgreSQL's
/// 2 KiB limit on one word).
const INDEXED_WORD_MAX: usize = 128;
/// The most bytes of words one alert's index entry holds (PostgreSQL refuses a `tsvector`
/// over 1 MiB). An alert with more is indexed as [`OVERFLOW_WORD`] too: every text search
/// takes it as a candidate, and the exact check on its JSON decides.
const INDEXED_WORDS_MAX: usize = 256 * 1024;
/// The word an alert with more words than its index entry holds is indexed under: not a
/// word [`words_of`] makes, so no alert holds it otherwise.
const OVERFLOW_WORD: &str = "-";

/// `word` cut to at most [`INDEXED_WORD_MAX`] bytes, at a character boundary.
pub(super) fn indexed_word(mut word: String) -> String {
    word.truncate(indexed_len(&word));
    word
}

/// The length of `word` cut to at most [`INDEXED_WORD_MAX`] bytes, at a character boundary.
fn indexed_len(word: &str) -> usize {
    let mut end = word.len().min(INDEXED_WORD_MAX);
    while !word.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// The distinct words of an indexed text, each cut to [`INDEXED_WORD_MAX`] bytes, in
/// bytewise order (PostgreSQL's `tsvector` order: the server takes them as they come). The
/// store's word index finds a word by its beginning. PostgreSQL receives it as a `tsvector`
/// in binary form, which it reads without parsing text.
#[derive(Debug, Default)]
pub(super) struct WordVector {
    /// The words' bytes, as they came (one allocation for all of them).
    text: String,
    /// Where each distinct word lies in `text`, in the words' order.
    spans: Vec<(u32, u32)>,
}

impl WordVector {
    /// The words of an alert's indexed text ([`body`]), read from its parts: the separators
    /// [`body`] puts between them are not word characters, so the words are the same.
    pub fn of_alert(alert: &Alert) -> WordVector {
        let mut words = Words::with_capacity(alert.message.len() + 256);
        words.add(&alert.message);
        words.add(&alert.rule);
        for tag in alert.tags.iter() {
            words.add(tag);
        }
        for (key, value) in &alert.fields {
            match value {
                Some(Value::Str(text)) => {
                    words.add(key);
                    words.add(text);
                }
                Some(other) => {
                    words.add(key);
                    words.add_owned(&other.to_string());
                }
                None => {}
            }
        }
        words.finish()
    }

    /// The words of `body`, lowercased as [`words_of`] does; more than
    /// [`INDEXED_WORDS_MAX`] bytes of them are cut and [`OVERFLOW_WORD`] added.
    pub fn of(body: &str) -> WordVector {
        let mut words = Words::with_capacity(body.len());
        words.add(body);
        words.finish()
    }

    /// A vector of `words`, given distinct (a block's, from its alerts' vectors).
    pub fn of_distinct<'w>(words: impl IntoIterator<Item = &'w str>) -> WordVector {
        let mut vector = WordVector::default();
        for word in words {
            let start = vector.text.len() as u32;
            vector.text.push_str(word);
            vector.spans.push((start, vector.text.len() as u32));
        }
        vector.sort();
        vector
    }

    /// Its spans in their words' order, each word once.
    fn sort(&mut self) {
        let text = self.text.as_bytes();
        let word = |&(start, end): &(u32, u32)| &text[start as usize..end as usize];
        // Most words are 8 bytes or shorter: their first 8 bytes, zero-padded (no word holds
        // a zero), order them without reading the text again.
        let prefix = |span: &(u32, u32)| {
            let mut bytes = [0u8; 8];
            let w = word(span);
            let n = w.len().min(8);
            bytes[..n].copy_from_slice(&w[..n]);
            u64::from_be_bytes(bytes)
        };
        let mut keyed: Vec<(u64, (u32, u32))> = self.spans.iter().map(|s| (prefix(s), *s)).collect();
        keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| word(&a.1).cmp(word(&b.1))));
        keyed.dedup_by(|a, b| a.0 == b.0 && word(&a.1) == word(&b.1));
        self.spans.clear();
        self.spans.extend(keyed.into_iter().map(|(_, span)| span));
    }

    /// The words, in order.
    pub fn words(&self) -> impl ExactSizeIterator<Item = &str> {
        self.spans.iter().map(|&(start, end)| &self.text[start as usize..end as usize])
    }
}

/// A [`WordVector`] in the making. A word met again as written is passed over before it is
/// lowercased and sorted (an alert's output repeats most of its field values).
struct Words<'a> {
    vector: WordVector,
    /// The words met, as written.
    seen: foldhash::HashSet<&'a str>,
}

impl<'a> Words<'a> {
    fn with_capacity(bytes: usize) -> Words<'a> {
        Words {
            vector: WordVector { text: String::with_capacity(bytes), spans: Vec::with_capacity(64) },
            seen: foldhash::HashSet::with_capacity_and_hasher(64, Default::default()),
        }
    }

    /// Adds the words of `text`.
    fn add(&mut self, text: &'a str) {
        for word in word_runs(text) {
            if self.seen.insert(word) {
                self.push(word);
            }
        }
    }

    /// Adds the words of a text that does not outlive the call (each kept, even if met).
    fn add_owned(&mut self, text: &str) {
        for word in word_runs(text) {
            self.push(word);
        }
    }

    fn push(&mut self, word: &str) {
        let text = &mut self.vector.text;
        let start = text.len();
        // As `words_of` lowercases, without a string per word for the ASCII ones.
        if word.is_ascii() {
            text.extend(word.bytes().map(|b| char::from(b.to_ascii_lowercase())));
        } else {
            text.push_str(&word.to_lowercase());
        }
        text.truncate(start + indexed_len(&text[start..]));
        self.vector.spans.push((start as u32, text.len() as u32));
    }

    /// The distinct words in order, more than [`INDEXED_WORDS_MAX`] bytes of them cut and
    /// [`OVERFLOW_WORD`] added.
    fn finish(self) -> WordVector {
        let mut vector = self.vector;
        vector.sort();
        let mut bytes = 0;
        let cut = vector.words().position(|w| {
            bytes += w.len() + 1;
            bytes > INDEXED_WORDS_MAX
        });
        if let Some(cut) = cut {
            vector.spans.truncate(cut);
            let start = vector.text.len() as u32;
            vector.text.push_str(OVERFLOW_WORD);
            vector.spans.push((start, vector.text.len() as u32));
            vector.sort();
        }
        vector
    }
}

/// The PostgreSQL `tsquery` literal that finds, in [`WordVector`]s, the alerts that may
/// hold `term` (or whose words overflowed); `None` when `term` has no word. As in SQLite's
/// index, the term begins a word: its last word may end inside one (a prefix), the words
/// before it are whole (an exact word, which the index finds without reading every word
/// that begins alike).
pub(super) fn word_query(term: &str) -> Option<String> {
    let words: Vec<String> = words_of(term).map(indexed_word).collect();
    let (last, whole) = words.split_last()?;
    let mut query = String::from("(");
    for word in whole {
        query.push_str(&format!("'{word}' & "));
    }
    query.push_str(&format!("'{last}':*) | '{OVERFLOW_WORD}'"));
    Some(query)
}

/// Alerts per chunk of an insert.
pub(super) const INSERT_CHUNK: usize = 1_000;

/// Writes `alerts` chunk by chunk: `make` turns a chunk (with the index of its first alert
/// in `alerts`) into its rows on a thread of its own, one chunk ahead, while `write` writes
/// the chunk before (the JSON, words and columns of an alert cost about as much as the
/// database's writing of it).
pub(super) fn in_chunks<'a, T: Send + 'a>(
    alerts: &'a [Arc<Alert>],
    make: impl Fn(usize, &'a [Arc<Alert>]) -> T + Sync,
    mut write: impl FnMut(&'a [Arc<Alert>], T) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if alerts.len() <= INSERT_CHUNK {
        // One chunk (alerts as they come, a few at a time): nothing to overlap.
        return write(alerts, make(0, alerts));
    }
    let make = &make;
    // The first chunk is made while nothing else runs: it is small, and each next one twice
    // the size, so that making one takes about as long as writing the one before.
    let (mut at, mut size) = (0, INSERT_CHUNK / 8);
    let mut chunks = std::iter::from_fn(move || {
        let chunk = (at, &alerts[at..(at + size).min(alerts.len())]);
        at += chunk.1.len();
        size = (size * 2).min(INSERT_CHUNK);
        (!chunk.1.is_empty()).then_some(chunk)
    });
    std::thread::scope(|scope| {
        let mut next = chunks.next().map(|(at, c)| (c, scope.spawn(move || make(at, c))));
        while let Some((chunk, making)) = next.take() {
            let rows = making.join().map_err(|_| anyhow::anyhow!("making the rows of alerts failed"))?;
            next = chunks.next().map(|(at, c)| (c, scope.spawn(move || make(at, c))));
            write(chunk, rows)?;
        }
        Ok(())
    })
}

pub(super) fn level_of(p: Priority) -> i64 {
    Priority::ALL.iter().position(|q| *q == p).unwrap_or(Priority::ALL.len() - 1) as i64
}

pub(super) fn priority_of_level(level: i64) -> Priority {
    usize::try_from(level).ok().and_then(|l| Priority::ALL.get(l)).copied().unwrap_or(Priority::Debug)
}

/// What a count is kept per: grouping (its name), hour, priority level and value.
pub(super) type CountKey<'v> = (&'static str, i64, i64, &'v str);

/// Changes to the counts: alerts added (+1) or removed (-1) per grouping, hour, priority
/// and value. Each value is held once and counted under its number: counting an alert
/// allocates nothing for values counted before.
#[derive(Default)]
pub(super) struct Rollup {
    /// The values counted, by number.
    values: Vec<Arc<str>>,
    numbers: foldhash::HashMap<Arc<str>, u32>,
    deltas: foldhash::HashMap<(&'static str, i64, i64, u32), i64>,
}

/// The groupings the counts tables keep by value (tags are split from their column;
/// priority is counted from the `rule` rows).
pub(super) const ROLLUP_GROUPS: [GroupBy; 7] = [
    GroupBy::Rule,
    GroupBy::Source,
    GroupBy::Hostname,
    GroupBy::Container,
    GroupBy::Image,
    GroupBy::Namespace,
    GroupBy::Pod,
];

/// What a removed alert's row must give for the counts to lose what it added: `time_ns,
/// priority, tags`, then the column of each grouping of [`ROLLUP_GROUPS`] in its order.
pub(super) fn rollup_columns() -> String {
    let mut columns = String::from("time_ns, priority, tags");
    for by in ROLLUP_GROUPS {
        columns.push_str(", ");
        columns.push_str(column(by));
    }
    columns
}

/// Where the first grouping's value is among [`rollup_columns`].
pub(super) const ROLLUP_VALUES_AT: usize = 3;

/// The column (or expression) of an alerts table that holds the value of `by`.
pub(super) fn column(by: GroupBy) -> &'static str {
    match by {
        GroupBy::Priority => "priority",
        GroupBy::Rule => "rule",
        GroupBy::Source => "source",
        GroupBy::Hostname => "hostname",
        GroupBy::Container => "coalesce(container_name, container_id)",
        GroupBy::Image => "image",
        GroupBy::Namespace => "namespace",
        GroupBy::Pod => "pod",
        GroupBy::Tag => "tags",
    }
}

/// The value `alert` is stored and counted under for a grouping of [`ROLLUP_GROUPS`]:
/// what [`column`] reads back; priorities and tags are counted apart.
pub(super) fn grouping_value<'a>(by: GroupBy, alert: &'a Alert, place: &'a Placement) -> Option<&'a str> {
    match by {
        GroupBy::Rule => Some(&alert.rule),
        GroupBy::Source => Some(&alert.source),
        GroupBy::Hostname => Some(&alert.hostname),
        GroupBy::Container => place.container(),
        GroupBy::Image => place.image.as_deref(),
        GroupBy::Namespace => place.namespace.as_deref(),
        GroupBy::Pod => place.pod.as_deref(),
        GroupBy::Priority | GroupBy::Tag => None,
    }
}

impl Rollup {
    /// Counts `delta` for an alert at `time_ns` of priority `level`, with its values of
    /// [`ROLLUP_GROUPS`] and its `tags` column.
    pub(super) fn add<'v>(
        &mut self,
        delta: i64,
        time_ns: u64,
        level: i64,
        values: impl IntoIterator<Item = (GroupBy, Option<&'v str>)>,
        tags: &str,
    ) {
        let hour = (time_ns / HOUR_NS).min(i64::MAX as u64) as i64;
        for (by, value) in values {
            if let Some(value) = value {
                self.count(by.name(), hour, level, value, delta);
            }
        }
        for tag in tags_of_column(tags) {
            self.count(GroupBy::Tag.name(), hour, level, tag, delta);
        }
    }

    fn count(&mut self, grp: &'static str, hour: i64, level: i64, value: &str, delta: i64) {
        let number = match self.numbers.get(value) {
            Some(number) => *number,
            None => {
                let number = u32::try_from(self.values.len()).expect("fewer than 2^32 values in one write");
                let value: Arc<str> = value.into();
                self.values.push(value.clone());
                self.numbers.insert(value, number);
                number
            }
        };
        *self.deltas.entry((grp, hour, level, number)).or_default() += delta;
    }

    /// Counts `delta` for `alert`, which ran at `place`, with its `tags` column.
    pub(super) fn add_alert(&mut self, delta: i64, alert: &Alert, place: &Placement, tags: &str) {
        let values = ROLLUP_GROUPS.map(|by| (by, grouping_value(by, alert, place)));
        self.add(delta, alert.time_ns, level_of(alert.priority), values, tags);
    }

    /// Adds the changes of `other`.
    pub(super) fn merge(&mut self, other: Rollup) {
        for ((grp, hour, level, number), delta) in other.deltas {
            self.count(grp, hour, level, &other.values[number as usize], delta);
        }
    }

    /// The changes, each `((grouping, hour, priority, value), delta)`, in that key's order:
    /// writers that lock count rows in one order cannot deadlock each other. None is zero.
    pub(super) fn changes(&self) -> Vec<(CountKey<'_>, i64)> {
        let mut changes: Vec<_> = self
            .deltas
            .iter()
            .filter(|(_, delta)| **delta != 0)
            .map(|(&(grp, hour, level, number), delta)| ((grp, hour, level, &*self.values[number as usize]), *delta))
            .collect();
        changes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        changes
    }

    /// Whether a change removes alerts (counts may reach zero).
    pub(super) fn removes(&self) -> bool {
        self.deltas.values().any(|d| *d < 0)
    }
}

/// The `tags` column of an alert: `\nA\nB\n`, or empty.
pub(super) fn tags_column(alert: &Alert) -> String {
    list_column(&alert.tags)
}

/// A list column's text: `\nA\nB\n`, or empty.
pub(super) fn list_column(values: &[String]) -> String {
    if values.is_empty() {
        String::new()
    } else {
        let sep = LIST_SEPARATOR.to_string();
        format!("{sep}{}{sep}", values.join(&sep))
    }
}

/// The values of a list column (the tags of a `tags` column).
pub(super) fn tags_of_column(column: &str) -> impl Iterator<Item = &str> {
    column.split(LIST_SEPARATOR).filter(|t| !t.is_empty())
}

/// Clamps nanoseconds to the `i64` columns hold.
pub(super) fn ns_column(ns: u64) -> i64 {
    ns.min(i64::MAX as u64) as i64
}

/// How the counts of a query are read: whole hours from the hourly counts, the rest from
/// the alerts.
pub(super) struct CountsPlan {
    /// Whole hours `[first, end)` read from the counts.
    pub rollup: Option<(u64, u64)>,
    /// Queries whose alerts are counted one by one.
    pub scans: Vec<Query>,
}

impl CountsPlan {
    /// The counts keep time and priority only: a query filtering on anything else is
    /// counted from its alerts; one on time and priority reads the whole hours it spans from
    /// the counts and the partial hours at its ends from the alerts.
    pub fn of(query: &Query) -> CountsPlan {
        Self::with_buckets(query, HOUR_NS)
    }

    /// As [`CountsPlan::of`], for counts per bucket of `bucket_ns`: the counts' hours serve
    /// only whole buckets of whole hours.
    pub fn with_buckets(query: &Query, bucket_ns: u64) -> CountsPlan {
        let query = Query { after: None, order: Order::default(), limit: 0, ..query.clone() };
        let time_and_priority_only =
            Query { from_ns: query.from_ns, to_ns: query.to_ns, min_priority: query.min_priority, ..Query::default() }
                == query;
        let (from, to) = (query.from_ns.unwrap_or(0), query.to_ns.unwrap_or(u64::MAX));
        let unit = if bucket_ns.is_multiple_of(HOUR_NS) { bucket_ns } else { u64::MAX };
        let (first, end) = (from.div_ceil(unit), to / unit);
        if !time_and_priority_only || unit == u64::MAX || first >= end {
            return CountsPlan { rollup: None, scans: vec![query] };
        }
        let (first_hour, end_hour) = (first * (unit / HOUR_NS), end * (unit / HOUR_NS));
        let scans = [(from, first_hour * HOUR_NS), (end_hour.saturating_mul(HOUR_NS), to)]
            .into_iter()
            .filter(|(lo, hi)| lo < hi)
            .map(|(lo, hi)| Query { from_ns: Some(lo), to_ns: Some(hi), ..query.clone() })
            .collect();
        CountsPlan { rollup: Some((first_hour, end_hour)), scans }
    }
}

/// Counts sorted as the API gives them: most first, then by value.
pub(super) fn sorted_counts(counts: std::collections::HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut counts: Vec<(String, u64)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts
}

/// A value a query binds.
pub(super) enum Param {
    Int(i64),
    Text(String),
}

/// The SQL the engines write differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Binds `value` into `args`; its placeholder (usable several times).
    pub fn bind(self, args: &mut Vec<Param>, value: Param) -> String {
        let cast = match (&value, self) {
            (_, Dialect::Sqlite) => "",
            (Param::Int(_), Dialect::Postgres) => "::bigint",
            (Param::Text(_), Dialect::Postgres) => "::text",
        };
        args.push(value);
        match self {
            Dialect::Sqlite => format!("?{}", args.len()),
            Dialect::Postgres => format!("(${}{cast})", args.len()),
        }
    }

    /// Whether `needle` occurs in `haystack` (both SQL expressions).
    pub fn contains(self, haystack: &str, needle: &str) -> String {
        match self {
            Dialect::Sqlite => format!("instr({haystack}, {needle}) > 0"),
            Dialect::Postgres => format!("strpos({haystack}, {needle}) > 0"),
        }
    }

    /// `column IN (...)` over `values`, binding them into `args`.
    pub fn any_of(self, column: &str, values: &[String], args: &mut Vec<Param>) -> String {
        let marks: Vec<String> = values.iter().map(|v| self.bind(args, Param::Text(v.clone()))).collect();
        format!("{column} IN ({})", marks.join(", "))
    }

    /// The clauses of a time range `[from, to)` over `time_ns`.
    pub fn time_range(self, from: Option<u64>, to: Option<u64>, args: &mut Vec<Param>, clauses: &mut Vec<String>) {
        if let Some(from) = from {
            clauses.push(format!("time_ns >= {}", self.bind(args, Param::Int(ns_column(from)))));
        }
        if let Some(to) = to {
            clauses.push(format!("time_ns < {}", self.bind(args, Param::Int(ns_column(to)))));
        }
    }

    /// The clause of rows after a page's cursor, in `order` (time, then id).
    pub fn after(self, cursor: Cursor, order: Order, args: &mut Vec<Param>) -> String {
        let op = match order {
            Order::NewestFirst => "<",
            Order::OldestFirst => ">",
        };
        let t = self.bind(args, Param::Int(ns_column(cursor.time_ns)));
        let id = self.bind(args, Param::Int(cursor.id));
        format!("(time_ns, id) {op} ({t}, {id})")
    }

    /// Whether a list column (`\nA\nB\n`) holds any of `values` whole.
    pub fn any_in_list(self, column: &str, values: &[String], args: &mut Vec<Param>) -> String {
        let tests: Vec<String> = values
            .iter()
            .map(|v| {
                let mark = self.bind(args, Param::Text(format!("{LIST_SEPARATOR}{v}{LIST_SEPARATOR}")));
                self.contains(column, &mark)
            })
            .collect();
        format!("({})", tests.join(" OR "))
    }

    /// Whether the row's `json` holds `term` exactly as written (its dashes, slashes and
    /// quotes), ignoring case, binding into `args`. In PostgreSQL, the `words` index finds
    /// candidates ([`word_query`]) and a LIKE on the JSON keeps the exact matches.
    pub fn json_holds(self, term: &str, args: &mut Vec<Param>) -> String {
        // Escaped as JSON escapes text.
        let escaped = serde_json::to_string(term).unwrap_or_default();
        let escaped = escaped.get(1..escaped.len().saturating_sub(1)).unwrap_or_default();
        match self {
            Dialect::Sqlite => {
                let needle = self.bind(args, Param::Text(escaped.to_owned()));
                self.contains("lower(json)", &format!("lower({needle})"))
            }
            Dialect::Postgres => {
                let mut clause = String::new();
                if let Some(words) = word_query(term) {
                    let mark = self.bind(args, Param::Text(words));
                    clause.push_str(&format!("words @@ {mark}::tsquery AND "));
                }
                let mut pattern = String::from("%");
                for c in escaped.chars() {
                    if matches!(c, '%' | '_' | '\\') {
                        pattern.push('\\');
                    }
                    pattern.push(c);
                }
                pattern.push('%');
                clause.push_str(&format!("lower(json) LIKE lower({})", self.bind(args, Param::Text(pattern))));
                clause
            }
        }
    }

    /// The WHERE clause of `query` over an alerts table, binding its values into `args`.
    pub fn filters(self, query: &Query, args: &mut Vec<Param>) -> String {
        let mut clauses: Vec<String> = Vec::new();
        self.time_range(query.from_ns, query.to_ns, args, &mut clauses);
        if let Some(p) = query.min_priority {
            clauses.push(format!("priority <= {}", self.bind(args, Param::Int(level_of(p)))));
        }
        for (column, values) in [
            ("rule", &query.rules),
            ("source", &query.sources),
            ("hostname", &query.hostnames),
            ("namespace", &query.namespaces),
            ("pod", &query.pods),
        ] {
            if !values.is_empty() {
                clauses.push(self.any_of(column, values, args));
            }
        }
        if !query.tags.is_empty() {
            clauses.push(self.any_in_list("tags", &query.tags, args));
        }
        if !query.containers.is_empty() {
            let tests: Vec<String> = query
                .containers
                .iter()
                .map(|c| {
                    let v = self.bind(args, Param::Text(c.clone()));
                    // A hex id of 12 or more characters may be a prefix of the full id.
                    if c.len() >= 12 && c.bytes().all(|b| b.is_ascii_hexdigit()) {
                        format!("(container_name = {v} OR substr(container_id, 1, length({v})) = {v})")
                    } else {
                        format!("(container_name = {v} OR container_id = {v})")
                    }
                })
                .collect();
            clauses.push(format!("({})", tests.join(" OR ")));
        }
        if !query.images.is_empty() {
            let tests: Vec<String> = query
                .images
                .iter()
                .map(|i| {
                    let v = self.bind(args, Param::Text(i.clone()));
                    format!("(image = {v} OR substr(image, 1, length({v}) + 1) = {v} || ':')")
                })
                .collect();
            clauses.push(format!("({})", tests.join(" OR ")));
        }
        for term in query.terms() {
            clauses.push(self.json_holds(term, args));
        }
        if let Some(id) = query.stored_after {
            clauses.push(format!("id > {}", self.bind(args, Param::Int(id))));
        }
        if let Some(after) = query.after {
            clauses.push(self.after(after, query.order, args));
        }
        if clauses.is_empty() { "TRUE".into() } else { clauses.join(" AND ") }
    }
}
