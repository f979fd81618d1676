//! A search as URL parameters, shared by the API and the pages (so a page's URL is a
//! shareable link to what it shows): `since`, `from`, `to`, `priority`, `rule`, `source`,
//! `tag`, `node`, `container`, `image`, `namespace`, `pod` (each repeatable), `text`,
//! `limit`, `after`, `order=oldest`.

use crate::{rules::Priority, store::Query};

/// The query `params` describe; an error names the parameter.
pub fn query_of(params: &[(String, String)]) -> Result<Query, String> {
    let mut q = Query::default();
    for (key, value) in params {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        if q.window().read(key, value)? {
            continue;
        }
        match key.as_str() {
            "priority" => {
                q.min_priority = Some(Priority::parse(value).ok_or_else(|| format!("priority: unknown `{value}`"))?)
            }
            "rule" => q.rules.push(value.to_owned()),
            "source" => q.sources.push(value.to_owned()),
            "tag" => q.tags.push(value.to_owned()),
            "node" => q.hostnames.push(value.to_owned()),
            "container" => q.containers.push(value.to_owned()),
            "image" => q.images.push(value.to_owned()),
            "namespace" => q.namespaces.push(value.to_owned()),
            "pod" => q.pods.push(value.to_owned()),
            "text" => q.text = Some(value.to_owned()),
            // Parameters of the page itself (`by`, `format`) are read by their handlers.
            _ => {}
        }
    }
    Ok(q)
}

/// `params` without `key`, with `key=value` added, as a query string (for next-page links).
pub fn with(params: &[(String, String)], key: &str, value: &str) -> String {
    let mut out = url_encoded(params.iter().filter(|(k, v)| k != key && !v.trim().is_empty()));
    if !out.is_empty() {
        out.push('&');
    }
    out.push_str(&format!("{}={}", encode(key), encode(value)));
    out
}

/// `pairs` as `k=v&k=v`.
pub fn url_encoded<'a>(pairs: impl Iterator<Item = &'a (String, String)>) -> String {
    pairs.map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

/// Percent-encodes everything but unreserved characters.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Order;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parameters_make_the_query() {
        let q = query_of(&p(&[
            ("priority", "warning"),
            ("pod", "a"),
            ("pod", "b"),
            ("text", "cat-x"),
            ("order", "oldest"),
            ("container", ""),
        ]))
        .unwrap();
        assert_eq!(q.min_priority, Some(Priority::Warning));
        assert_eq!(q.pods, ["a", "b"]);
        assert_eq!(q.text.as_deref(), Some("cat-x"));
        assert_eq!(q.order, Order::OldestFirst);
        assert!(q.containers.is_empty(), "an empty form field is no filter");
        assert!(query_of(&p(&[("priority", "loud")])).unwrap_err().starts_with("priority:"));
        assert!(query_of(&p(&[("since", "1y")])).unwrap_err().starts_with("since:"));
        assert_eq!(with(&p(&[("text", "a b&c"), ("after", "1-1")]), "after", "2-2"), "text=a%20b%26c&after=2-2");
    }
}
