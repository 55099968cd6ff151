//! Protected EM job names (`REAPER_PROTECT_JOB_NAMES`, design 1.6): globs such as `prod-*`
//! matched against a job's `Name` as EM reports it. Matching ignores case (`Prod-DB` is
//! `prod-*`): an operator protecting production must not lose a job to a capital letter.
//! Globs know `*`, `?` and `[…]`; `*` also matches `/`.

use crate::config::{ConfigError, job_name_pattern};

/// The key of the top-level globs, as verdicts name it.
pub(crate) const KEY: &str = "REAPER_PROTECT_JOB_NAMES";

/// The compiled globs, each kept with the text it was written as.
#[derive(Debug, Clone, Default)]
pub(crate) struct NameRules {
    rules: Vec<(glob::Pattern, String)>,
}

impl NameRules {
    /// Compiles `globs`; an error names `REAPER_PROTECT_JOB_NAMES` and the glob.
    pub(crate) fn new(globs: &[String]) -> Result<Self, ConfigError> {
        let rules = globs
            .iter()
            .map(|g| Ok((job_name_pattern(g)?, g.clone())))
            .collect::<Result<_, ConfigError>>()?;
        Ok(NameRules { rules })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first glob (as written) that `name` matches, ignoring case.
    pub(crate) fn matching(&self, name: &str) -> Option<&str> {
        let options = glob::MatchOptions {
            case_sensitive: false,
            require_literal_separator: false,
            require_literal_leading_dot: false,
        };
        let name = name.to_lowercase();
        self.rules
            .iter()
            .find(|(pattern, _)| pattern.matches_with(&name, options))
            .map(|(_, glob)| glob.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(globs: &[&str]) -> NameRules {
        NameRules::new(&globs.iter().map(|g| g.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn globs_match_names_ignoring_case_and_name_the_glob() {
        let r = rules(&["prod-*", "Backup ?? Finance", "db[0-9]", "*/critical"]);
        assert_eq!(r.matching("prod-db-01"), Some("prod-*"));
        assert_eq!(r.matching("PROD-DB-01"), Some("prod-*"));
        assert_eq!(r.matching("backup EU finance"), Some("Backup ?? Finance"));
        assert_eq!(r.matching("DB7"), Some("db[0-9]"));
        assert_eq!(r.matching("site-a/critical"), Some("*/critical"));
        assert_eq!(r.matching("ÉTÉ-prod"), None);
        for free in ["staging-prod", "prod", "db10", "Backup EU Finance 2", ""] {
            assert_eq!(r.matching(free), None, "{free}");
        }
        let accents = rules(&["été-*"]);
        assert_eq!(
            accents.matching("ÉTÉ-Paris"),
            Some("été-*"),
            "not only ASCII"
        );
        assert!(NameRules::default().is_empty());
        assert_eq!(NameRules::default().matching("prod-x"), None);
    }

    #[test]
    fn a_bad_glob_names_the_key_and_the_glob() {
        let e = NameRules::new(&["prod-[".to_string()]).unwrap_err();
        assert_eq!(e.key, "REAPER_PROTECT_JOB_NAMES");
        assert!(e.to_string().contains("`prod-[` is not a glob"), "{e}");
    }
}
