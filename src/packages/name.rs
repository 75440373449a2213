//! Package names: npm's rules for new names (npm-protocol.md §17.1), plus Packr's stricter alphabet.

use std::fmt;
use std::str::FromStr;

/// The longest name npm accepts for a new package.
const MAX_LENGTH: usize = 214;

/// Names npm refuses outright (validate-npm-package-name's exclusion list).
const RESERVED: [&str; 2] = ["node_modules", "favicon.ico"];

/// A package name that is valid for a new package, such as `left-pad` or `@acme/b`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackageName(String);

/// Why a string is not acceptable as the name of a new package.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("package name cannot be empty; set \"name\" in package.json")]
    Empty,
    /// The name is longer than npm allows.
    #[error("package name cannot be longer than 214 characters: {0}")]
    TooLong(String),
    /// The name contains spaces, tabs or other whitespace.
    #[error("package name cannot contain spaces or other whitespace: {0:?}")]
    Whitespace(String),
    /// The name starts with `.`.
    #[error("package name cannot start with a period: {0}")]
    LeadingPeriod(String),
    /// The name starts with `_`.
    #[error("package name cannot start with an underscore: {0}")]
    LeadingUnderscore(String),
    /// The name starts with `-`.
    #[error("package name cannot start with a hyphen: {0}")]
    LeadingHyphen(String),
    /// The name is on npm's exclusion list.
    #[error("{0} is a reserved name and cannot be used for a package; choose another name")]
    Reserved(String),
    /// The name has upper-case letters.
    #[error(
        "package name cannot contain capital letters: {name}; use {lowercase} instead",
        lowercase = .0.to_lowercase(),
        name = .0
    )]
    UpperCase(String),
    /// The part after the scope contains one of `~'!()*`.
    #[error("package name cannot contain any of ~'!()* after the scope: {0}")]
    SpecialCharacter(String),
    /// The name is neither URL-safe nor of the form `@scope/name`.
    #[error(
        "package name can only contain URL-friendly characters, with one optional @scope/ in front: {0}"
    )]
    NotUrlSafe(String),
    /// The scope starts with `.`, which would turn into a relative path.
    #[error("package scope cannot start with a period: {0}")]
    ScopeLeadingPeriod(String),
    /// The part after the scope starts with `.`.
    #[error("package name cannot start with a period after the scope: {0}")]
    ScopedLeadingPeriod(String),
    /// The name passes npm's rules but uses characters outside Packr's alphabet.
    #[error(
        "package name can only use lowercase letters, digits and - . _ ~ (with an optional @scope/ in front): {0}"
    )]
    OutsideAlphabet(String),
}

impl PackageName {
    /// Parses a name for a new package, applying validate-npm-package-name's rules and Packr's alphabet.
    pub fn parse(s: &str) -> Result<PackageName, NameError> {
        let owned = || s.to_owned();
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.chars().count() > MAX_LENGTH {
            return Err(NameError::TooLong(owned()));
        }
        if s.chars().any(char::is_whitespace) {
            return Err(NameError::Whitespace(owned()));
        }
        match s.chars().next() {
            Some('.') => return Err(NameError::LeadingPeriod(owned())),
            Some('_') => return Err(NameError::LeadingUnderscore(owned())),
            Some('-') => return Err(NameError::LeadingHyphen(owned())),
            _ => {}
        }
        let lowercase = s.to_lowercase();
        if RESERVED.contains(&lowercase.as_str()) {
            return Err(NameError::Reserved(owned()));
        }
        // Node core module names (`events`, `punycode`, `buffer`...) are only a warning for npm,
        // and real packages carry them (webpack's polyfills), so a registry must accept them.
        if lowercase != s {
            return Err(NameError::UpperCase(owned()));
        }
        let (scope, bare) = split_scope(s).ok_or_else(|| NameError::NotUrlSafe(owned()))?;
        if bare.contains(['~', '\'', '!', '(', ')', '*']) {
            return Err(NameError::SpecialCharacter(owned()));
        }
        if scope.is_some_and(|scope| scope.starts_with("@.")) {
            return Err(NameError::ScopeLeadingPeriod(owned()));
        }
        if scope.is_some() && bare.starts_with('.') {
            return Err(NameError::ScopedLeadingPeriod(owned()));
        }
        let in_alphabet = |part: &str| part.bytes().all(is_packr_byte);
        let scope_in_alphabet = scope
            .and_then(|scope| scope.strip_prefix('@'))
            .is_none_or(in_alphabet);
        if !in_alphabet(bare) || !scope_in_alphabet {
            return Err(NameError::OutsideAlphabet(owned()));
        }
        Ok(PackageName(owned()))
    }

    /// The full name, scope included, as npm writes it (`@acme/b`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The scope with its `@` (`@acme`), or `None` for an unscoped name.
    pub fn scope(&self) -> Option<&str> {
        self.0.split_once('/').map(|(scope, _)| scope)
    }

    /// The name without its scope (`b` for `@acme/b`), which npm uses in tarball file names.
    pub fn bare(&self) -> &str {
        self.0
            .split_once('/')
            .map_or(self.0.as_str(), |(_, bare)| bare)
    }

    /// The file name npm gives this package's tarball for `version` (`b-2.0.0.tgz`).
    pub fn tarball_file(&self, version: &str) -> String {
        format!("{}-{version}.tgz", self.bare())
    }

    /// The version named by a tarball file name of this package (`b-2.0.0.tgz` gives `2.0.0`).
    ///
    /// Versions contain `-` themselves, so this strips the known prefix instead of splitting.
    pub fn version_from_tarball_file<'f>(&self, file: &'f str) -> Option<&'f str> {
        let version = file
            .strip_prefix(self.bare())?
            .strip_prefix('-')?
            .strip_suffix(".tgz")?;
        (!version.is_empty()).then_some(version)
    }
}

/// Splits a URL-safe name, or an `@scope/name` whose two parts are URL-safe, into scope and bare name.
///
/// This is validate-npm-package-name's `encodeURIComponent` test together with its
/// `^(?:@([^/]+?)[/])?([^/]+?)$` pattern; `None` means the name is not URL-safe.
fn split_scope(name: &str) -> Option<(Option<&str>, &str)> {
    if is_url_component(name) {
        return Some((None, name));
    }
    let (scope, bare) = name.split_once('/')?;
    let url_safe = |part: &str| !part.is_empty() && is_url_component(part);
    (url_safe(scope.strip_prefix('@')?) && url_safe(bare)).then_some((Some(scope), bare))
}

/// Whether `encodeURIComponent` leaves `part` unchanged, i.e. it is only `A-Za-z0-9-_.!~*'()`.
pub(super) fn is_url_component(part: &str) -> bool {
    part.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b))
}

/// Whether a byte belongs to Packr's alphabet for scopes and bare names: `[a-z0-9-._~]`.
fn is_packr_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._~".contains(&b)
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PackageName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PackageName::parse(s)
    }
}

impl serde::Serialize for PackageName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(name: &str) -> NameError {
        match PackageName::parse(name) {
            Ok(parsed) => panic!("{name} should be refused but parsed as {parsed:?}"),
            Err(err) => err,
        }
    }

    #[test]
    fn ordinary_and_scoped_names_are_accepted() {
        for name in [
            "left-pad",
            "@acme/b",
            "@types/node",
            "lodash.merge",
            "@babel/plugin-proposal-private-property-in-object",
            "123numeric",
            "under_score",
            "@acme/_private",
            "a",
        ] {
            let parsed = PackageName::parse(name).unwrap();
            assert_eq!(parsed.as_str(), name);
        }
    }

    #[test]
    fn every_name_in_the_brief_that_must_fail_is_refused() {
        for name in [
            "../x",
            ".x",
            "X",
            "Foo",
            "@acme/",
            "@/x",
            "@acme/../x",
            "a/b",
            "node_modules",
            "a b",
            "%2e%2e",
        ] {
            refused(name);
        }
    }

    #[test]
    fn a_name_starting_with_a_period_is_refused() {
        let err = refused(".x");
        assert_eq!(err, NameError::LeadingPeriod(".x".into()));
        assert_eq!(
            err.to_string(),
            "package name cannot start with a period: .x"
        );
    }

    #[test]
    fn a_name_starting_with_an_underscore_or_hyphen_is_refused() {
        assert_eq!(refused("_x"), NameError::LeadingUnderscore("_x".into()));
        assert_eq!(refused("-x"), NameError::LeadingHyphen("-x".into()));
    }

    #[test]
    fn an_empty_name_is_refused() {
        assert_eq!(refused(""), NameError::Empty);
    }

    #[test]
    fn whitespace_anywhere_is_refused() {
        for name in [" x", "x ", "a b", "a\tb", "a\u{a0}b"] {
            assert!(
                matches!(refused(name), NameError::Whitespace(_)),
                "{name:?}"
            );
        }
    }

    #[test]
    fn reserved_names_are_refused_whatever_their_case() {
        assert_eq!(
            refused("node_modules"),
            NameError::Reserved("node_modules".into())
        );
        assert_eq!(
            refused("FAVICON.ICO"),
            NameError::Reserved("FAVICON.ICO".into())
        );
    }

    #[test]
    fn node_core_module_names_are_accepted_as_npm_accepts_real_packages_with_them() {
        for name in ["events", "punycode", "buffer", "fs", "@acme/fs", "fs-extra"] {
            PackageName::parse(name).unwrap();
        }
    }

    #[test]
    fn upper_case_letters_are_refused_with_a_lowercase_suggestion() {
        assert_eq!(
            refused("Foo").to_string(),
            "package name cannot contain capital letters: Foo; use foo instead"
        );
        assert!(matches!(refused("@Acme/b"), NameError::UpperCase(_)));
    }

    #[test]
    fn names_longer_than_214_characters_are_refused() {
        let longest = "a".repeat(214);
        PackageName::parse(&longest).unwrap();
        assert!(matches!(
            refused(&format!("{longest}a")),
            NameError::TooLong(_)
        ));
    }

    #[test]
    fn special_characters_after_the_scope_are_refused() {
        for name in ["crazy!", "a~b", "it's", "f(x)", "star*", "@acme/a~b"] {
            assert!(
                matches!(refused(name), NameError::SpecialCharacter(_)),
                "{name}"
            );
        }
    }

    #[test]
    fn names_that_are_not_url_safe_are_refused() {
        for name in [
            "a/b",
            "@acme/",
            "@/x",
            "@acme/../x",
            "%2e%2e",
            "@acme",
            "@acme/b@1",
            "a:b",
            "a?b",
        ] {
            assert!(matches!(refused(name), NameError::NotUrlSafe(_)), "{name}");
        }
    }

    #[test]
    fn a_scope_or_scoped_name_starting_with_a_period_is_refused() {
        assert_eq!(
            refused("@acme/.x"),
            NameError::ScopedLeadingPeriod("@acme/.x".into())
        );
        assert_eq!(
            refused("@acme/.."),
            NameError::ScopedLeadingPeriod("@acme/..".into())
        );
        assert_eq!(
            refused("@../x"),
            NameError::ScopeLeadingPeriod("@../x".into())
        );
    }

    #[test]
    fn url_safe_punctuation_in_a_scope_is_outside_packrs_alphabet() {
        for name in ["@a!b/x", "@a*b/x", "@a'b/x", "@a(b)/x"] {
            assert!(
                matches!(refused(name), NameError::OutsideAlphabet(_)),
                "{name}"
            );
        }
        PackageName::parse("@ac~me/b").unwrap();
    }

    #[test]
    fn non_ascii_letters_are_refused() {
        assert!(matches!(refused("café"), NameError::NotUrlSafe(_)));
    }

    #[test]
    fn scope_and_bare_name_are_split_at_the_slash() {
        let scoped = PackageName::parse("@acme/b").unwrap();
        assert_eq!(scoped.scope(), Some("@acme"));
        assert_eq!(scoped.bare(), "b");
        let plain = PackageName::parse("left-pad").unwrap();
        assert_eq!(plain.scope(), None);
        assert_eq!(plain.bare(), "left-pad");
    }

    #[test]
    fn tarball_file_names_use_the_bare_name() {
        let scoped = PackageName::parse("@acme/b").unwrap();
        assert_eq!(scoped.tarball_file("2.0.0"), "b-2.0.0.tgz");
        let plain = PackageName::parse("left-pad").unwrap();
        assert_eq!(
            plain.tarball_file("1.0.0-beta.1"),
            "left-pad-1.0.0-beta.1.tgz"
        );
    }

    #[test]
    fn the_version_is_read_back_from_a_tarball_file_name_even_when_both_contain_hyphens() {
        let name = PackageName::parse("left-pad").unwrap();
        assert_eq!(
            name.version_from_tarball_file("left-pad-1.0.0-beta.1.tgz"),
            Some("1.0.0-beta.1")
        );
        assert_eq!(
            name.version_from_tarball_file("left-pad-1.0.0.tar.gz"),
            None
        );
        assert_eq!(name.version_from_tarball_file("left-1.0.0.tgz"), None);
        assert_eq!(name.version_from_tarball_file("left-pad-.tgz"), None);
        assert_eq!(name.version_from_tarball_file("left-pad1.0.0.tgz"), None);
        let scoped = PackageName::parse("@acme/b").unwrap();
        assert_eq!(
            scoped.version_from_tarball_file("b-2.0.0.tgz"),
            Some("2.0.0")
        );
    }

    #[test]
    fn a_name_displays_and_serializes_as_its_string() {
        let name: PackageName = "@acme/b".parse().unwrap();
        assert_eq!(name.to_string(), "@acme/b");
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"@acme/b\"");
    }
}
