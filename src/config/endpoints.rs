//! Every endpoint a worker serves (design 1.8): the one of each kind that the `REAPER_EM_*` /
//! `REAPER_DCS_*` variables describe, or the `[[em]]` / `[[dcs]]` tables of the TOML file —
//! one or the other for each kind. A table is read by the same readers as the variables, over
//! the top-level settings: its budget and guard-rail keys override the top-level ones. And
//! the rules on names: required when a kind has several tables, unique across all endpoints,
//! and not one whose queue would clash when requests are routed by endpoint.

use super::endpoint::{self, DEFAULT_BUDGET};
use super::errors::{ConfigError, err};
use super::guard::{self, GuardOverrides};
use super::source::Source;
use super::tables::{Kind, RawTable};
use super::{DcsSettings, EmSettings, Topology, dcs, em};
use crate::limit::Budget;
use std::collections::HashMap;

/// The endpoints of a configuration, and the guard-rail settings of their tables by name.
#[derive(Debug, Default)]
pub(super) struct Endpoints {
    pub(super) em: Vec<EmSettings>,
    pub(super) dcs: Vec<DcsSettings>,
    pub(super) guards: HashMap<String, GuardOverrides>,
}

/// Where an endpoint's name was set: a variable, or a table (its label).
enum Origin {
    Var(&'static str),
    Table(String),
}

/// The endpoints `s` describes, their names checked against each other and `topology`.
pub(super) fn endpoints(s: &Source, topology: &Topology) -> Result<Endpoints, ConfigError> {
    let budget = endpoint::budget(s, "REAPER_", DEFAULT_BUDGET)?;
    let mut out = Endpoints::default();
    let mut names: Vec<(String, Origin)> = Vec::new();
    if s.tables.em.is_empty() {
        if let Some(em) = em::em_settings(s, budget)? {
            names.push((em.name.clone(), Origin::Var("REAPER_EM_NAME")));
            out.em.push(em);
        }
    } else {
        refuse_mix(s, Kind::Em)?;
        for table in &s.tables.em {
            let (em, guards) = em_table(s, table)?;
            names.push((em.name.clone(), Origin::Table(table.label.clone())));
            out.guards.insert(em.name.clone(), guards);
            out.em.push(em);
        }
    }
    if s.tables.dcs.is_empty() {
        if let Some(dcs) = dcs::dcs_settings(s, budget)? {
            names.push((dcs.name.clone(), Origin::Var("REAPER_DCS_NAME")));
            out.dcs.push(dcs);
        }
    } else {
        refuse_mix(s, Kind::Dcs)?;
        for table in &s.tables.dcs {
            let (dcs, guards) = dcs_table(s, table, budget)?;
            names.push((dcs.name.clone(), Origin::Table(table.label.clone())));
            out.guards.insert(dcs.name.clone(), guards);
            out.dcs.push(dcs);
        }
    }
    check_names(s, &names, topology)?;
    Ok(out)
}

/// Tables of a kind replace its variables: any `REAPER_EM_…` (or `REAPER_DCS_…`) variable,
/// in the environment or at the top of the file, beside `[[em]]` tables is refused.
fn refuse_mix(s: &Source, kind: Kind) -> Result<(), ConfigError> {
    let mut mixed: Vec<&String> = s
        .vars
        .keys()
        .filter(|k| k.starts_with(kind.prefix()))
        .collect();
    mixed.sort();
    match mixed.first() {
        None => Ok(()),
        Some(key) => Err(err(
            key,
            format!(
                "`{}` has {} tables: describe its endpoints there, or set the {}* variables for \
                 one endpoint, not both",
                s.tables.path,
                kind.table(),
                kind.prefix()
            ),
        )),
    }
}

/// The settings of one table of `kind` over the top-level ones (`merged`), the table alone
/// (`own`), and its name's check: required when the kind has several tables.
fn table_sources(
    s: &Source,
    kind: Kind,
    table: &RawTable,
) -> Result<(Source, Source), ConfigError> {
    let own = Source::only(&table.vars);
    let several = s.tables.of(kind).len() > 1;
    if several && own.get(&format!("{}NAME", kind.prefix())).is_none() {
        let why = format!(
            "name: required in every {} table when there are several",
            kind.table()
        );
        return Err(s.tables.error(&table.label, why));
    }
    Ok((s.under(kind.prefix(), &table.vars), own))
}

/// One `[[em]]` table: its endpoint (its budget over the top-level one) and its guard rails.
fn em_table(s: &Source, table: &RawTable) -> Result<(EmSettings, GuardOverrides), ConfigError> {
    let (merged, own) = table_sources(s, Kind::Em, table)?;
    let in_table = |e| s.tables.key_error(&table.label, e);
    let budget = endpoint::budget(&merged, "REAPER_", DEFAULT_BUDGET).map_err(in_table)?;
    let em = em::em_settings(&merged, budget)
        .map_err(in_table)?
        .ok_or_else(|| s.tables.error(&table.label, "url: required"))?;
    let guards = guard::overrides(&merged, &own).map_err(in_table)?;
    Ok((em, guards))
}

/// One `[[dcs]]` table: its endpoint (its budget over the top-level one) and its guard rails.
fn dcs_table(
    s: &Source,
    table: &RawTable,
    budget: Budget,
) -> Result<(DcsSettings, GuardOverrides), ConfigError> {
    let (merged, own) = table_sources(s, Kind::Dcs, table)?;
    let in_table = |e| s.tables.key_error(&table.label, e);
    let dcs = dcs::dcs_settings(&merged, budget)
        .map_err(in_table)?
        .ok_or_else(|| s.tables.error(&table.label, "url: required"))?;
    let guards = guard::overrides(&merged, &own).map_err(in_table)?;
    Ok((dcs, guards))
}

/// Names are unique across EM and DCS endpoints (they key health, metrics, pauses and
/// routing), and when requests are routed by endpoint, no endpoint's queue
/// (`<request queue>.<name>`) may be the dead-letter or the lease queue.
fn check_names(
    s: &Source,
    names: &[(String, Origin)],
    topology: &Topology,
) -> Result<(), ConfigError> {
    let fail = |origin: &Origin, reason: String| match origin {
        Origin::Var(key) => err(key, reason),
        Origin::Table(label) => s.tables.error(label, format!("name: {reason}")),
    };
    let mut seen: HashMap<&str, &Origin> = HashMap::new();
    for (name, origin) in names {
        if let Some(first) = seen.insert(name, origin) {
            let first = match first {
                Origin::Var(key) => key.to_string(),
                Origin::Table(label) => label.clone(),
            };
            let why = format!(
                "`{name}` is also the name of {first}: endpoint names must be unique across EM \
                 and DCS endpoints"
            );
            return Err(fail(origin, why));
        }
        if topology.route_by_endpoint {
            let queue = format!("{}.{name}", topology.request_queue);
            let clash = match name.as_str() {
                _ if queue == topology.dead_letter_queue => Some("the dead-letter queue"),
                "dead" => Some("the default dead-letter queue's name"),
                "lease" => Some("the lease queue"),
                _ => None,
            };
            if let Some(what) = clash {
                let why = format!(
                    "`{name}` cannot name an endpoint with REAPER_ROUTE_BY_ENDPOINT: its queue \
                     `{queue}` would be {what}"
                );
                return Err(fail(origin, why));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
