//! What a search asks for, and a page of what it found.

use std::fmt;

use super::{AlertStore, StoredAlert};
use crate::{enrich::parse_rfc3339_ns, rules::Priority};

/// The parts every search has, alerts' and audit events': its time range, its page and
/// its order, borrowed from the search being read.
pub struct Window<'q> {
    pub from_ns: &'q mut Option<u64>,
    pub to_ns: &'q mut Option<u64>,
    pub limit: &'q mut usize,
    pub after: &'q mut Option<Cursor>,
    pub order: &'q mut Order,
}

impl Window<'_> {
    /// Reads `key=value` when it is one of the window's parameters (`since`, `from`, `to`,
    /// `limit`, `after`, `order=newest|oldest`): whether it was; an error names it.
    pub fn read(self, key: &str, value: &str) -> Result<bool, String> {
        match key {
            "since" => {
                let span = parse_since(value).map_err(|e| format!("since: {e}"))?;
                *self.from_ns = Some(super::now_ns().saturating_sub(span));
            }
            "from" => *self.from_ns = Some(parse_rfc3339(value).map_err(|e| format!("from: {e}"))?),
            "to" => *self.to_ns = Some(parse_rfc3339(value).map_err(|e| format!("to: {e}"))?),
            "limit" => *self.limit = value.parse().map_err(|_| format!("limit: `{value}` is not a number"))?,
            "after" => *self.after = Some(value.parse()?),
            "order" => {
                *self.order = match value {
                    "newest" => Order::NewestFirst,
                    "oldest" => Order::OldestFirst,
                    other => return Err(format!("order: `{other}`, expected newest or oldest")),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A search: every filter given must hold (several values of one filter: any of them).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query {
    /// Alerts at or after this time (ns since the epoch).
    pub from_ns: Option<u64>,
    /// Alerts before this time.
    pub to_ns: Option<u64>,
    /// Alerts at least this severe.
    pub min_priority: Option<Priority>,
    pub rules: Vec<String>,
    pub sources: Vec<String>,
    /// Alerts carrying any of these tags.
    pub tags: Vec<String>,
    /// Nodes (the alerts' `hostname`).
    pub hostnames: Vec<String>,
    /// Containers by name, full id or id prefix (Docker's 12 characters).
    pub containers: Vec<String>,
    /// Images as `repository:tag`, or a repository with any tag.
    pub images: Vec<String>,
    pub namespaces: Vec<String>,
    pub pods: Vec<String>,
    /// Words and phrases that must all appear in the alert's text (its output, rule, tags
    /// and field values), case-insensitively; any character may be part of them (`-`, `"`,
    /// `/`), each whitespace-separated term matched as written.
    pub text: Option<String>,
    pub order: Order,
    /// Continue after this alert (the previous page's [`Page::next`]).
    pub after: Option<Cursor>,
    /// Alerts stored after the alert with this id (ids grow as alerts are stored): a live
    /// tail's position, whatever the alerts' event times.
    pub stored_after: Option<i64>,
    /// Alerts per page (0: the default, 100).
    pub limit: usize,
}

/// What alerts can be counted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupBy {
    Priority,
    Rule,
    Source,
    Hostname,
    Container,
    Image,
    Namespace,
    Pod,
    Tag,
}

impl GroupBy {
    /// Every grouping, as the API and the dashboard offer them.
    pub const ALL: [GroupBy; 9] = [
        GroupBy::Priority,
        GroupBy::Rule,
        GroupBy::Source,
        GroupBy::Hostname,
        GroupBy::Container,
        GroupBy::Image,
        GroupBy::Namespace,
        GroupBy::Pod,
        GroupBy::Tag,
    ];

    /// The groupings the console's dashboard shows.
    pub const DASHBOARD: [GroupBy; 7] = [
        GroupBy::Priority,
        GroupBy::Rule,
        GroupBy::Hostname,
        GroupBy::Namespace,
        GroupBy::Pod,
        GroupBy::Image,
        GroupBy::Tag,
    ];

    /// Its name in the API (`?by=rule`).
    pub fn name(self) -> &'static str {
        match self {
            GroupBy::Priority => "priority",
            GroupBy::Rule => "rule",
            GroupBy::Source => "source",
            GroupBy::Hostname => "node",
            GroupBy::Container => "container",
            GroupBy::Image => "image",
            GroupBy::Namespace => "namespace",
            GroupBy::Pod => "pod",
            GroupBy::Tag => "tag",
        }
    }

    /// The grouping named `name`.
    pub fn parse(name: &str) -> Option<GroupBy> {
        GroupBy::ALL.into_iter().find(|g| g.name() == name)
    }
}

/// The order of a search's results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    NewestFirst,
    OldestFirst,
}

/// A position in a search's order: the last alert of a page. Stable while alerts arrive, so
/// pages neither skip nor repeat an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub time_ns: u64,
    pub id: i64,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.time_ns, self.id)
    }
}

impl std::str::FromStr for Cursor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid cursor `{s}`: expected what a page gave as `next`");
        let (time, id) = s.split_once('-').ok_or_else(bad)?;
        Ok(Cursor { time_ns: time.parse().map_err(|_| bad())?, id: id.parse().map_err(|_| bad())? })
    }
}

/// One page of a search.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub alerts: Vec<StoredAlert>,
    /// Where the next page starts, when there may be one.
    pub next: Option<Cursor>,
}

impl Page {
    /// The page of `limit` alerts from up to one more, in the search's order: an alert past
    /// the page is how an engine knows a next page exists.
    pub(super) fn of(mut alerts: Vec<StoredAlert>, limit: usize) -> Page {
        let next = if alerts.len() > limit {
            alerts.truncate(limit);
            alerts.last().map(|a| Cursor { time_ns: a.time_ns, id: a.id })
        } else {
            None
        };
        Page { alerts, next }
    }
}

impl Order {
    /// The SQL of the order: `DESC` or `ASC` (time, then id).
    pub(super) fn sql(self) -> &'static str {
        match self {
            Order::NewestFirst => "DESC",
            Order::OldestFirst => "ASC",
        }
    }
}

/// Alerts per time bucket and priority, over a query's time range: the dashboard's timeline.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    /// The buckets' width.
    pub bucket_ns: u64,
    /// Each bucket's start (a multiple of `bucket_ns`), oldest first, every bucket of the
    /// range present, with its alerts by priority in [`Priority::ALL`]'s order.
    pub buckets: Vec<(u64, [u64; 8])>,
}

/// Bucket widths a timeline uses, the narrowest giving at most [`MAX_BUCKETS`].
const BUCKET_WIDTHS_S: [u64; 11] =
    [60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86_400, 7 * 86_400, 30 * 86_400];
/// The most buckets a timeline has.
pub const MAX_BUCKETS: u64 = 120;

impl Histogram {
    /// The bucket width for a range of `span_ns`.
    pub fn bucket_for(span_ns: u64) -> u64 {
        BUCKET_WIDTHS_S
            .iter()
            .map(|s| s * 1_000_000_000)
            .find(|b| span_ns.div_ceil(*b) <= MAX_BUCKETS)
            .unwrap_or(30 * 86_400 * 1_000_000_000)
    }

    /// The timeline of `[from_ns, to_ns)` from sparse `(bucket start, priority, alerts)` rows.
    pub fn dense(from_ns: u64, to_ns: u64, bucket_ns: u64, rows: &[(u64, Priority, u64)]) -> Histogram {
        let first = from_ns / bucket_ns;
        let last = to_ns.saturating_sub(1) / bucket_ns;
        let mut buckets: Vec<(u64, [u64; 8])> = (first..=last).map(|b| (b * bucket_ns, [0; 8])).collect();
        for (start, priority, n) in rows {
            let Some(index) = (start / bucket_ns).checked_sub(first) else { continue };
            let level = Priority::ALL.iter().position(|p| p == priority).unwrap_or(7);
            if let Some((_, counts)) = buckets.get_mut(index as usize) {
                counts[level] += n;
            }
        }
        Histogram { bucket_ns, buckets }
    }
}

/// A live tail: the alerts a query selects that are stored after a position (a store id), a
/// batch at a time, in the order they were stored, whatever their event times.
#[derive(Clone, Debug)]
pub struct Tail {
    query: Query,
    last: i64,
}

/// Alerts one step of a tail reads at most; more stored since its last step are skipped.
pub const TAIL_BATCH: usize = 1000;

impl Tail {
    /// A tail of `query`'s filters after the alert with id `last` (0: from the first).
    pub fn after(query: Query, last: i64) -> Tail {
        let query = Query { order: Order::OldestFirst, after: None, stored_after: None, limit: TAIL_BATCH, ..query };
        Tail { query, last }
    }

    /// The id of the newest alert `store` holds (0 when it holds none): where a tail from
    /// now on starts.
    pub fn newest_id(store: &dyn AlertStore) -> anyhow::Result<i64> {
        let newest = store.search(&Query { limit: 1, ..Query::default() })?;
        Ok(newest.alerts.first().map_or(0, |a| a.id))
    }

    /// The search of the next step.
    pub fn query(&self) -> Query {
        Query { stored_after: Some(self.last), ..self.query.clone() }
    }

    /// Takes the page the step's search found: its alerts in the order stored, and whether
    /// more came than a step reads (those between were skipped). The tail moves past them.
    pub fn advance(&mut self, page: Page) -> (Vec<StoredAlert>, bool) {
        let mut alerts = page.alerts;
        alerts.sort_by_key(|a| a.id);
        self.last = alerts.iter().map(|a| a.id).max().unwrap_or(self.last).max(self.last);
        (alerts, page.next.is_some())
    }
}

/// The page size when a query gives none, and the largest one.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;

impl Query {
    /// Its time range, page and order, to read parameters into.
    pub fn window(&mut self) -> Window<'_> {
        Window {
            from_ns: &mut self.from_ns,
            to_ns: &mut self.to_ns,
            limit: &mut self.limit,
            after: &mut self.after,
            order: &mut self.order,
        }
    }

    /// The page size to use.
    pub fn page_size(&self) -> usize {
        match self.limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        }
    }

    /// The search text's terms: whitespace-separated, as written.
    pub fn terms(&self) -> Vec<&str> {
        self.text.as_deref().map(|t| t.split_whitespace().collect()).unwrap_or_default()
    }
}

/// Parses a relative time span (`15m`, `24h`, `7d`) into nanoseconds.
pub fn parse_since(text: &str) -> Result<u64, String> {
    crate::outputs::config::parse_duration(text).map(|d| d.as_nanos() as u64)
}

/// Parses an RFC 3339 time (`2026-12-06T15:04:05Z`, `2026-12-06T15:04:05.5+01:00`, or a
/// date alone, `2026-12-06`, as its midnight UTC) into nanoseconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let parsed = if t.len() == 10 { parse_rfc3339_ns(&format!("{t}T00:00:00Z")) } else { parse_rfc3339_ns(t) };
    parsed.ok_or_else(|| format!("invalid time `{text}`: expected RFC 3339, e.g. 2026-12-06T15:04:05Z"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::format_iso8601;

    #[test]
    fn rfc3339_times_round_trip_with_the_alerts_own() {
        for ns in [0u64, 1_685_022_245_478_445_995, 951_782_400_000_000_000, 1_796_000_000_123_000_000] {
            assert_eq!(parse_rfc3339(&format_iso8601(ns)), Ok(ns));
        }
        assert_eq!(parse_rfc3339("2023-05-25T15:44:05+02:00"), Ok(1_685_022_245_000_000_000));
        assert_eq!(parse_rfc3339("2023-05-25T13:44:05.5Z"), Ok(1_685_022_245_500_000_000));
        assert_eq!(parse_rfc3339("2023-05-25"), Ok(1_684_972_800_000_000_000));
        for bad in [
            "",
            "yesterday",
            "2023-5-25",
            "2023-05-25T13:44Z",
            "2023-13-01",
            "2023-05-25T13:44:05",
            "2023-05-25T25:00:00Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timelines_have_at_most_120_buckets_of_a_round_width() {
        let hour = 3_600_000_000_000u64;
        assert_eq!(Histogram::bucket_for(hour), 60_000_000_000);
        assert_eq!(Histogram::bucket_for(24 * hour), 900_000_000_000);
        assert_eq!(Histogram::bucket_for(7 * 24 * hour), 3 * hour);
        let h =
            Histogram::dense(hour + 5, 3 * hour, hour, &[(hour, Priority::Error, 2), (2 * hour, Priority::Debug, 1)]);
        assert_eq!(h.buckets.len(), 2);
        assert_eq!(h.buckets[0], (hour, [0, 0, 0, 2, 0, 0, 0, 0]));
        assert_eq!(h.buckets[1].1[7], 1);
    }

    #[test]
    fn a_tail_moves_past_what_it_read_in_the_order_stored() {
        let stored = |id: i64, time_ns: u64| StoredAlert {
            id,
            time_ns,
            priority: Priority::Notice,
            rule: "R".into(),
            source: "syscall".into(),
            hostname: "n".into(),
            output: String::new(),
            tags: vec![],
            container: Default::default(),
            json: serde_json::Value::Null,
        };
        let mut tail = Tail::after(Query { pods: vec!["web".into()], ..Query::default() }, 7);
        let q = tail.query();
        assert_eq!((q.stored_after, q.order, q.limit, q.pods.len()), (Some(7), Order::OldestFirst, TAIL_BATCH, 1));
        // Late event times come in the order stored.
        let page = Page { alerts: vec![stored(9, 5), stored(8, 10)], next: None };
        let (alerts, skipped) = tail.advance(page);
        assert_eq!((alerts.iter().map(|a| a.id).collect::<Vec<_>>(), skipped), (vec![8, 9], false));
        assert_eq!(tail.query().stored_after, Some(9));
        // A full batch says some were skipped; nothing read leaves the position.
        let (_, skipped) =
            tail.advance(Page { alerts: vec![stored(12, 1)], next: Some(Cursor { time_ns: 1, id: 12 }) });
        assert!(skipped);
        tail.advance(Page::default());
        assert_eq!(tail.query().stored_after, Some(12));
    }

    #[test]
    fn cursors_print_and_parse() {
        let c = Cursor { time_ns: 1_685_022_245_478_445_995, id: 42 };
        assert_eq!(c.to_string().parse::<Cursor>(), Ok(c));
        assert!("42".parse::<Cursor>().is_err());
    }
}
