//! The audit log in the alert store's PostgreSQL database: `audit_events`, partitioned by
//! day of the event time (`audit_events_d<N>`), with the same word index as the alerts.
//! Console replicas may share it: partitions are made under the store's partition lock,
//! an event is stored once per `(time, digest of its JSON)`, one writer at a time runs
//! retention.

use std::collections::BTreeSet;

use super::{AuditLog, AuditPage, AuditQuery, AuditRecord, COLUMNS, list_column, list_of_column};
use crate::store::lock;
use crate::store::postgresql::{AUDIT_RETENTION_LOCK, Described as _};
use crate::store::rows::{DAY_NS, Dialect, WordVector, ns_column};
use crate::store::{PgStore, Removed, Usage};

const PARENT: &str = "audit_events";

impl PgStore {
    /// Makes the audit partitions of `days` that are missing.
    fn ensure_audit_days(&self, days: &BTreeSet<u64>) -> anyhow::Result<()> {
        self.ensure_partitions(&self.audit_days, days, |day| {
            let (from, to) = (ns_column(day * DAY_NS), ns_column((day + 1) * DAY_NS));
            format!(
                "CREATE TABLE IF NOT EXISTS {PARENT}_d{day} PARTITION OF {PARENT} FOR VALUES FROM ({from}) TO ({to});"
            )
        })
    }

    /// Bytes of the audit partitions and their indexes.
    fn audit_bytes(&self) -> anyhow::Result<u64> {
        let rows = self.query(
            &format!(
                "SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0)::bigint FROM pg_inherits i \
                 WHERE i.inhparent = '{PARENT}'::regclass"
            ),
            &[],
        )?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0).max(0) as u64))
    }
}

fn row_to_record(r: &postgres::Row) -> AuditRecord {
    AuditRecord {
        id: r.get(0),
        time_ns: r.get::<_, i64>(1).max(0) as u64,
        audit_id: r.get(2),
        stage: r.get(3),
        level: r.get(4),
        verb: r.get(5),
        user: r.get(6),
        groups: list_of_column(r.get(7)),
        resource: r.get(8),
        subresource: r.get(9),
        namespace: r.get(10),
        name: r.get(11),
        code: r.get(12),
        source_ips: list_of_column(r.get(13)),
        user_agent: r.get(14),
        json: serde_json::from_str(r.get::<_, &str>(15)).unwrap_or(serde_json::Value::Null),
    }
}

impl AuditLog for PgStore {
    fn insert_audit(&mut self, events: &[AuditRecord]) -> anyhow::Result<u64> {
        if events.is_empty() {
            return Ok(0);
        }
        self.ensure_audit_days(&events.iter().map(|e| e.time_ns / DAY_NS).collect())?;
        let column = |f: fn(&AuditRecord) -> Option<String>| events.iter().map(f).collect::<Vec<_>>();
        let times: Vec<i64> = events.iter().map(|e| ns_column(e.time_ns)).collect();
        let texts = |f: fn(&AuditRecord) -> &str| events.iter().map(f).collect::<Vec<&str>>();
        let groups: Vec<String> = events.iter().map(|e| list_column(&e.groups)).collect();
        let ips: Vec<String> = events.iter().map(|e| list_column(&e.source_ips)).collect();
        let codes: Vec<Option<i64>> = events.iter().map(|e| e.code).collect();
        let words: Vec<WordVector> = events.iter().map(|e| WordVector::of(&e.body())).collect();
        let (jsons, digests): (Vec<String>, Vec<Vec<u8>>) = events.iter().map(AuditRecord::json_and_digest).unzip();
        let mut conn = self.pool.get()?;
        let mut tx = conn.transaction().db()?;
        let stored = tx
            .execute(
                &format!(
                    "INSERT INTO {PARENT} (time_ns, audit_id, stage, level, verb, user_name, groups, resource, \
                     subresource, namespace, name, code, source_ips, user_agent, words, json, digest) \
                     SELECT u.time_ns, u.audit_id, u.stage, u.level, u.verb, u.user_name, u.groups, u.resource, \
                            u.subresource, u.namespace, u.name, u.code, u.source_ips, u.user_agent, \
                            u.words, u.json, u.digest \
                     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                                 $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], \
                                 $13::text[], $14::text[], $15::tsvector[], $16::text[], $17::bytea[]) WITH ORDINALITY \
                          AS u(time_ns, audit_id, stage, level, verb, user_name, groups, resource, subresource, \
                               namespace, name, code, source_ips, user_agent, words, json, digest, ord) \
                     ORDER BY u.ord ON CONFLICT (time_ns, digest) DO NOTHING"
                ),
                &[
                    &times,
                    &texts(|e| &e.audit_id),
                    &texts(|e| &e.stage),
                    &texts(|e| &e.level),
                    &texts(|e| &e.verb),
                    &texts(|e| &e.user),
                    &groups,
                    &column(|e| e.resource.clone()),
                    &column(|e| e.subresource.clone()),
                    &column(|e| e.namespace.clone()),
                    &column(|e| e.name.clone()),
                    &codes,
                    &ips,
                    &column(|e| e.user_agent.clone()),
                    &words,
                    &jsons,
                    &digests,
                ],
            )
            .db();
        let stored = match stored {
            Ok(n) => n,
            Err(e) => {
                // Another writer's retention may have dropped a day this one thought it had.
                lock(&self.audit_days).clear();
                if let Ok(days) = self.partition_days(PARENT) {
                    lock(&self.audit_days).extend(days);
                }
                return Err(e);
            }
        };
        tx.commit().db()?;
        Ok(stored)
    }

    fn search_audit(&self, query: &AuditQuery) -> anyhow::Result<AuditPage> {
        let limit = query.page_size();
        let direction = query.order.sql();
        let mut params = Vec::new();
        let sql = format!(
            "SELECT {COLUMNS} FROM {PARENT} WHERE {} ORDER BY time_ns {direction}, id {direction} LIMIT {}",
            query.filters(Dialect::Postgres, &mut params),
            limit + 1
        );
        let events = self.query(&sql, &params)?.iter().map(row_to_record).collect();
        Ok(AuditPage::of(events, limit))
    }

    fn get_audit(&self, id: i64) -> anyhow::Result<Option<AuditRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM {PARENT} WHERE id = $1::bigint");
        Ok(self.query(&sql, &[crate::store::rows::Param::Int(id)])?.first().map(row_to_record))
    }

    fn retain_audit(&mut self, now_ns: u64) -> anyhow::Result<Removed> {
        let mut removed = Removed::default();
        let cutoff = now_ns.saturating_sub(self.max_age_ns);
        let cutoff_day = cutoff / DAY_NS;
        let days = self.partition_days(PARENT)?;
        let mut conn = self.pool.get()?;
        let mut tx = conn.transaction().db()?;
        // One writer at a time: another console replica doing it now is as good.
        let ours: bool = tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&AUDIT_RETENTION_LOCK]).db()?.get(0);
        if !ours {
            return Ok(removed);
        }
        for &day in days.iter().filter(|d| **d < cutoff_day) {
            let n: i64 = tx.query_one(&format!("SELECT count(*) FROM {PARENT}_d{day}"), &[]).db()?.get(0);
            tx.batch_execute(&format!("DROP TABLE IF EXISTS {PARENT}_d{day}")).db()?;
            removed.expired += n.max(0) as u64;
        }
        if days.contains(&cutoff_day) {
            let sql = format!("DELETE FROM {PARENT}_d{cutoff_day} WHERE time_ns < $1");
            removed.expired += tx.execute(&sql, &[&ns_column(cutoff)]).db()?;
        }
        tx.commit().db()?;
        drop(conn);
        // Over size: whole days, oldest first; the newest day is kept.
        if let Some(max_size) = self.max_size {
            let mut days = self.partition_days(PARENT)?;
            while days.len() > 1 && self.audit_bytes()? > max_size {
                let day = days.remove(0);
                let mut conn = self.pool.get()?;
                let mut tx = conn.transaction().db()?;
                let n: i64 = tx.query_one(&format!("SELECT count(*) FROM {PARENT}_d{day}"), &[]).db()?.get(0);
                tx.batch_execute(&format!("DROP TABLE IF EXISTS {PARENT}_d{day}")).db()?;
                tx.commit().db()?;
                removed.over_size += n.max(0) as u64;
            }
        }
        *lock(&self.audit_days) = self.partition_days(PARENT)?.into_iter().collect();
        Ok(removed)
    }

    fn audit_usage(&self) -> anyhow::Result<Usage> {
        let rows = self.query(&format!("SELECT count(*), min(time_ns) FROM {PARENT}"), &[])?;
        let (events, oldest): (i64, Option<i64>) = rows.first().map_or((0, None), |r| (r.get(0), r.get(1)));
        Ok(Usage { alerts: events.max(0) as u64, bytes: self.audit_bytes()?, oldest_ns: oldest.map(|t| t as u64) })
    }
}
