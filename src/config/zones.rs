//! "Did you mean" for time-zone names. A plain edit distance over whole names suggests
//! `Europe/Vienna` for `Europe/Valencia` (the shared `Europe/` makes any two names look
//! close); a reader expects a zone of the same country. So, in order:
//!
//! 1. the same name in another case, or the same city under another region
//!    (`madrid`, `America/Madrid` → `Europe/Madrid`);
//! 2. a country's name or code (`Spain`, `Europe/Spain`, `ES` → `Europe/Madrid`), from the
//!    tzdb's `zone.tab` and `iso3166.tab` (bundled, see `tzdata/README.md`);
//! 3. a typo of a zone's city, judged on the city part alone and preferring the same
//!    region (`Europe/Lisbn` → `Europe/Lisbon`);
//! 4. a zone the same config already uses in that region, or this machine's zone there
//!    (`Europe/Valencia` next to `timezone = "Europe/Madrid"` → `Europe/Madrid`);
//!
//! and nothing rather than a wrong guess. Pure apart from reading the system zone's name.

use crate::diag::edit_distance_osa;

const ZONE_TAB: &str = include_str!("tzdata/zone.tab");
const ISO3166_TAB: &str = include_str!("tzdata/iso3166.tab");

/// A suggested zone and why it was chosen, for the help line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub zone: String,
    /// E.g. "the zone of Spain (mainland)"; `None` for a plain typo.
    pub why: Option<String>,
}

/// The best suggestion for `name`, which is not a zone. `context` lists zones the config
/// already uses (valid names), first the most relevant.
pub fn suggest(name: &str, context: &[String]) -> Option<Suggestion> {
    let names: Vec<String> = jiff::tz::db()
        .available()
        .map(|n| n.as_str().to_string())
        .collect();
    let wanted = name.trim().replace(' ', "_");
    let (region, city) = match wanted.rsplit_once('/') {
        Some((r, c)) => (Some(r.to_ascii_lowercase()), c.to_string()),
        None => (None, wanted.clone()),
    };
    let plain = |zone: &str| Suggestion {
        zone: zone.to_string(),
        why: None,
    };

    // 1. Case, or the same city elsewhere.
    if let Some(z) = names.iter().find(|n| n.eq_ignore_ascii_case(&wanted)) {
        return Some(plain(z));
    }
    let city_lower = city.to_lowercase();
    let mut same_city: Vec<&String> = names
        .iter()
        // Legacy names without a region (`Portugal`, `Japan`) are links, not suggestions.
        .filter(|n| n.contains('/') && city_of(n).to_lowercase() == city_lower)
        .collect();
    same_city.sort_by_key(|n| region.as_deref() != Some(region_of(n).to_lowercase().as_str()));
    if let Some(z) = same_city.first() {
        return Some(plain(z));
    }

    // 2. A country.
    if let Some((zone, country)) = country_zone(&city) {
        return Some(Suggestion {
            why: Some(format!("the zone of {country}")),
            zone,
        });
    }

    // 3. A typo of a city, on the city part; same region first.
    let limit = (city.chars().count() / 4).max(1);
    let best = names
        .iter()
        .filter(|n| n.contains('/'))
        .map(|n| {
            let d = edit_distance_osa(&city_lower, &city_of(n).to_lowercase());
            let other_region = region.as_deref() != Some(region_of(n).to_lowercase().as_str());
            (d, other_region, n)
        })
        .filter(|(d, _, _)| *d <= limit)
        .min();
    if let Some((_, _, z)) = best {
        return Some(plain(z));
    }

    // 4. A zone this config uses in the same region, or this machine's.
    let region = region?;
    let system = jiff::tz::TimeZone::try_system()
        .ok()
        .and_then(|tz| tz.iana_name().map(str::to_string));
    let candidates = context
        .iter()
        .map(|z| (z.clone(), "the zone used elsewhere in this config"))
        .chain(system.map(|z| (z, "this machine's zone")));
    for (zone, why) in candidates {
        if region_of(&zone).eq_ignore_ascii_case(&region) {
            return Some(Suggestion {
                zone,
                why: Some(why.to_string()),
            });
        }
    }
    None
}

fn city_of(zone: &str) -> &str {
    zone.rsplit('/').next().unwrap_or(zone)
}

fn region_of(zone: &str) -> &str {
    zone.split('/').next().unwrap_or(zone)
}

/// The main zone of a country named by its English name or its ISO code, with the
/// country's name (and the zone's tzdb comment where it has one).
fn country_zone(word: &str) -> Option<(String, String)> {
    let word = word.replace('_', " ");
    let code = ISO3166_TAB
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .find(|(code, country)| {
            country.eq_ignore_ascii_case(&word)
                || (word.len() == 2 && code.eq_ignore_ascii_case(&word))
        })?;
    // zone.tab lists a country's most populous zone first.
    let (zone, comment) = ZONE_TAB
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[0] == code.0)
        .map(|f| (f[2].to_string(), f.get(3).map(|c| c.to_string())))?;
    // The comment says which part of a country a zone covers ("Spain (mainland)").
    let country = match comment {
        Some(c) if !c.is_empty() => c,
        _ => code.1.to_string(),
    };
    Some((zone, country))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str, context: &[&str]) -> Option<String> {
        let context: Vec<String> = context.iter().map(|s| s.to_string()).collect();
        suggest(name, &context).map(|s| s.zone)
    }

    #[test]
    fn valencia_never_suggests_vienna_and_takes_the_configs_spanish_zone() {
        assert_ne!(
            zone("Europe/Valencia", &[]).as_deref(),
            Some("Europe/Vienna")
        );
        assert_eq!(
            zone("Europe/Valencia", &["Europe/Madrid"]).as_deref(),
            Some("Europe/Madrid")
        );
        let s = suggest("Europe/Valencia", &["Europe/Madrid".to_string()]).unwrap();
        assert_eq!(
            s.why.as_deref(),
            Some("the zone used elsewhere in this config")
        );
    }

    #[test]
    fn countries_name_their_main_zone() {
        assert_eq!(zone("Spain", &[]).as_deref(), Some("Europe/Madrid"));
        assert_eq!(zone("Europe/Spain", &[]).as_deref(), Some("Europe/Madrid"));
        assert_eq!(
            zone("Europe/Portugal", &[]).as_deref(),
            Some("Europe/Lisbon")
        );
        let s = suggest("Spain", &[]).unwrap();
        assert_eq!(s.why.as_deref(), Some("the zone of Spain (mainland)"));
    }

    #[test]
    fn typos_and_cities_elsewhere() {
        assert_eq!(zone("Europe/Lisbn", &[]).as_deref(), Some("Europe/Lisbon"));
        assert_eq!(zone("europe/madrid", &[]).as_deref(), Some("Europe/Madrid"));
        assert_eq!(zone("Madrid", &[]).as_deref(), Some("Europe/Madrid"));
        assert_eq!(
            zone("America/Berlin", &[]).as_deref(),
            Some("Europe/Berlin")
        );
        assert_eq!(
            zone("America/New York", &[]).as_deref(),
            Some("America/New_York")
        );
        assert_eq!(zone("Asia/Tokio", &[]).as_deref(), Some("Asia/Tokyo"));
    }

    #[test]
    fn nothing_rather_than_a_wrong_guess() {
        assert_eq!(zone("Mars/Olympus_Mons", &[]), None);
    }
}
