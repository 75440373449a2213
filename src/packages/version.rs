//! Versions and dist-tags: the strict SemVer npm publishes, and tag names npm cannot mistake for ranges.

use std::fmt;
use std::str::FromStr;

use super::name::is_url_component;

/// The longest version string npm accepts (semver's `MAX_LENGTH`).
const MAX_VERSION_LENGTH: usize = 256;

/// The longest dist-tag Packr accepts.
const MAX_TAG_LENGTH: usize = 128;

/// The largest number npm's semver reads in a version (JavaScript's `Number.MAX_SAFE_INTEGER`).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A published version: strict SemVer 2.0 without build metadata, as `npm publish` sends it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(semver::Version);

/// A dist-tag name such as `latest` or `beta`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DistTag(String);

/// Why a version or a dist-tag is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The version is empty.
    #[error("version cannot be empty; set \"version\" in package.json")]
    Empty,
    /// The version is longer than npm allows.
    #[error("version cannot be longer than 256 characters: {0}")]
    TooLong(String),
    /// The version contains whitespace.
    #[error("version cannot contain spaces or other whitespace: {0:?}")]
    Whitespace(String),
    /// The version starts with `v` or `=`, which `semver.clean` would strip.
    #[error("version {version} cannot start with 'v' or '='; publish it as {clean}")]
    Prefix {
        /// The version as sent.
        version: String,
        /// The version without its prefix.
        clean: String,
    },
    /// The version carries `+build` metadata, which npm drops before publishing.
    #[error(
        "version {version} has build metadata, which npm drops before publishing (semver.clean), so two builds would share one version; publish it as {clean}"
    )]
    BuildMetadata {
        /// The version as sent.
        version: String,
        /// The version without its build metadata.
        clean: String,
    },
    /// The version is not SemVer 2.0.
    #[error("version {version} is not valid SemVer 2.0 (MAJOR.MINOR.PATCH[-prerelease]): {reason}")]
    Invalid {
        /// The version as sent.
        version: String,
        /// What the SemVer parser objected to.
        reason: String,
    },
    /// A number in the version is too large for npm's semver, which uses JavaScript numbers.
    #[error(
        "version {0} has a number larger than 9007199254740991, which npm cannot read; use smaller numbers"
    )]
    NumberTooLarge(String),
    /// The dist-tag is empty.
    #[error("dist-tag cannot be empty; use a name such as latest, next or beta")]
    TagEmpty,
    /// The dist-tag is longer than Packr allows.
    #[error("dist-tag cannot be longer than 128 characters: {0}")]
    TagTooLong(String),
    /// The dist-tag has characters that would need escaping in a URL.
    #[error("dist-tag can only contain letters, digits and - _ . ! ~ * ' ( ): {0:?}")]
    TagNotUrlSafe(String),
    /// npm would read the dist-tag as a version range, so `npm install pkg@<tag>` could not reach it.
    #[error(
        "dist-tag {0} is a valid semver range, so npm would read it as a range and not as a tag; use a name such as latest, next or beta"
    )]
    TagIsRange(String),
}

impl Version {
    /// Parses a version as npm publishes it: strict SemVer 2.0, no prefix, no build metadata.
    pub fn parse(s: &str) -> Result<Version, VersionError> {
        let owned = || s.to_owned();
        if s.is_empty() {
            return Err(VersionError::Empty);
        }
        if s.len() > MAX_VERSION_LENGTH {
            return Err(VersionError::TooLong(owned()));
        }
        if s.chars().any(char::is_whitespace) {
            return Err(VersionError::Whitespace(owned()));
        }
        if let Some(clean) = s.strip_prefix(['v', '=']) {
            let clean = clean.trim_start_matches(['v', '=']);
            let clean = clean.split_once('+').map_or(clean, |(clean, _build)| clean);
            return Err(VersionError::Prefix {
                version: owned(),
                clean: clean.to_owned(),
            });
        }
        if let Some((clean, _build)) = s.split_once('+') {
            return Err(VersionError::BuildMetadata {
                version: owned(),
                clean: clean.to_owned(),
            });
        }
        let parsed = semver::Version::parse(s).map_err(|err| VersionError::Invalid {
            version: owned(),
            reason: err.to_string(),
        })?;
        if [parsed.major, parsed.minor, parsed.patch]
            .iter()
            .any(|n| *n > MAX_SAFE_INTEGER)
        {
            return Err(VersionError::NumberTooLarge(owned()));
        }
        Ok(Version(parsed))
    }

    /// The underlying SemVer value, for comparisons and range matching.
    pub fn as_semver(&self) -> &semver::Version {
        &self.0
    }

    /// Whether this is a prerelease such as `1.0.0-beta.1`.
    pub fn is_prerelease(&self) -> bool {
        !self.0.pre.is_empty()
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl DistTag {
    /// Parses a dist-tag name: non-empty, URL-safe, at most 128 characters, and not a semver range.
    pub fn parse(s: &str) -> Result<DistTag, VersionError> {
        if s.is_empty() {
            return Err(VersionError::TagEmpty);
        }
        if s.len() > MAX_TAG_LENGTH {
            return Err(VersionError::TagTooLong(s.to_owned()));
        }
        if !is_url_component(s) {
            return Err(VersionError::TagNotUrlSafe(s.to_owned()));
        }
        if is_npm_range(s) || semver::VersionReq::parse(s).is_ok() {
            return Err(VersionError::TagIsRange(s.to_owned()));
        }
        Ok(DistTag(s.to_owned()))
    }

    /// The tag name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether npm's semver reads a URL-safe `tag` as a range in loose mode, the mode npm-package-arg
/// uses to decide whether `pkg@<spec>` names a range or a tag (loose accepts everything strict does).
///
/// In a URL-safe string the only operator left is `~` (`^ < > = |` and spaces are escaped), so a
/// range is `~? v* X(.X(.X PRERELEASE?)?)?` with `X = x | X | * | digits` (semver's `TILDELOOSE` and
/// `XRANGELOOSE`). That is why `1.x`, `v1`, `~2` and `1.2.3-beta` are ranges while `v7-legacy` and
/// `2024-release` are tags, as a glob@7.2.3 `publishConfig.tag` in the corpus relies on.
fn is_npm_range(tag: &str) -> bool {
    let rest = tag.strip_prefix('~').unwrap_or(tag).trim_start_matches('v');
    let mut parts = rest.splitn(3, '.');
    let (Some(major), minor, patch) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let is_x = |part: &str| {
        matches!(part, "x" | "X" | "*")
            || (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
    };
    if !is_x(major) || !minor.is_none_or(is_x) {
        return false;
    }
    let Some(patch) = patch else { return true };
    let split = match patch.bytes().next() {
        Some(b'x' | b'X' | b'*') => 1,
        _ => patch.bytes().take_while(u8::is_ascii_digit).count(),
    };
    let Some((number, suffix)) = patch.split_at_checked(split) else {
        return false;
    };
    !number.is_empty() && (suffix.is_empty() || is_loose_prerelease(suffix))
}

/// Whether `suffix` is semver's loose prerelease: an optional `-`, then dot-separated `[0-9A-Za-z-]+`.
fn is_loose_prerelease(suffix: &str) -> bool {
    // `-` is itself an identifier character, so the optional leading `-` needs no special case.
    suffix
        .split('.')
        .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

impl fmt::Display for DistTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DistTag {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DistTag::parse(s)
    }
}

impl serde::Serialize for DistTag {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(version: &str) -> VersionError {
        match Version::parse(version) {
            Ok(parsed) => panic!("{version} should be refused but parsed as {parsed}"),
            Err(err) => err,
        }
    }

    fn refused_tag(tag: &str) -> VersionError {
        match DistTag::parse(tag) {
            Ok(parsed) => panic!("{tag} should be refused but parsed as {parsed}"),
            Err(err) => err,
        }
    }

    #[test]
    fn strict_semver_versions_are_accepted() {
        for version in [
            "1.0.0",
            "0.0.0",
            "10.20.30",
            "1.0.0-beta.2",
            "7.21.0-placeholder-for-preset-env.2",
            "1.0.0-0.3.7",
        ] {
            assert_eq!(Version::parse(version).unwrap().to_string(), version);
        }
    }

    #[test]
    fn prereleases_are_recognised() {
        assert!(Version::parse("1.0.0-beta.2").unwrap().is_prerelease());
        assert!(!Version::parse("1.0.0").unwrap().is_prerelease());
    }

    #[test]
    fn versions_compare_as_semver() {
        let older = Version::parse("1.0.0-beta.2").unwrap();
        let newer = Version::parse("1.0.0").unwrap();
        assert!(older < newer);
        assert_eq!(newer.as_semver(), &semver::Version::new(1, 0, 0));
    }

    #[test]
    fn a_leading_v_or_equals_sign_is_refused_with_the_clean_version() {
        let err = refused("v1.0.0");
        assert_eq!(
            err,
            VersionError::Prefix {
                version: "v1.0.0".into(),
                clean: "1.0.0".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "version v1.0.0 cannot start with 'v' or '='; publish it as 1.0.0"
        );
        assert!(matches!(refused("=1.0.0"), VersionError::Prefix { .. }));
    }

    #[test]
    fn build_metadata_is_refused_because_npm_drops_it() {
        let err = refused("1.0.0+build.5");
        assert_eq!(
            err,
            VersionError::BuildMetadata {
                version: "1.0.0+build.5".into(),
                clean: "1.0.0".into()
            }
        );
        assert!(err.to_string().contains("semver.clean"));
    }

    #[test]
    fn whitespace_is_refused() {
        for version in [" 1.0.0", "1.0.0 ", "1. 0.0"] {
            assert!(
                matches!(refused(version), VersionError::Whitespace(_)),
                "{version:?}"
            );
        }
    }

    #[test]
    fn versions_that_are_not_strict_semver_are_refused() {
        for version in [
            "1", "1.0", "1.0.0.0", "01.0.0", "1.0.0-", "1.0.0-01", "latest", "1.x",
        ] {
            assert!(
                matches!(refused(version), VersionError::Invalid { .. }),
                "{version}"
            );
        }
        assert_eq!(refused(""), VersionError::Empty);
    }

    #[test]
    fn versions_longer_than_256_characters_are_refused() {
        let long = format!("1.0.0-{}", "a".repeat(251));
        assert!(matches!(refused(&long), VersionError::TooLong(_)));
        Version::parse(&format!("1.0.0-{}", "a".repeat(250))).unwrap();
    }

    #[test]
    fn numbers_beyond_javascripts_safe_integers_are_refused() {
        assert!(matches!(
            refused("9007199254740992.0.0"),
            VersionError::NumberTooLarge(_)
        ));
        Version::parse("9007199254740991.0.0").unwrap();
    }

    #[test]
    fn a_version_serializes_as_its_string() {
        let version: Version = "1.2.3-rc.1".parse().unwrap();
        assert_eq!(serde_json::to_string(&version).unwrap(), "\"1.2.3-rc.1\"");
    }

    #[test]
    fn ordinary_tags_are_accepted() {
        for tag in [
            "latest",
            "next",
            "beta",
            "v7-legacy",
            "legacy-v3",
            "2024-release",
            "1a",
            "~",
            "canary_2",
            "Beta",
        ] {
            assert_eq!(DistTag::parse(tag).unwrap().as_str(), tag);
        }
    }

    #[test]
    fn tags_that_npm_reads_as_semver_ranges_are_refused() {
        for tag in [
            "1",
            "1.x",
            "1.2",
            "1.2.3",
            "1.2.3-beta",
            "1.2.3beta",
            "1.x.x",
            "v1",
            "vv1.2",
            "~1",
            "~v1.2",
            "*",
            "x",
            "X",
            "01",
            "1.*",
            "1.2.x-rc.1",
        ] {
            assert_eq!(
                refused_tag(tag),
                VersionError::TagIsRange(tag.into()),
                "{tag}"
            );
        }
    }

    #[test]
    fn a_range_tag_error_tells_what_to_use_instead() {
        assert_eq!(
            refused_tag("1.x").to_string(),
            "dist-tag 1.x is a valid semver range, so npm would read it as a range and not as a tag; use a name such as latest, next or beta"
        );
    }

    #[test]
    fn tags_that_are_not_url_safe_are_refused() {
        for tag in ["a b", "a/b", "^1", ">=1", "a%20", "a=b", "a+b", "é"] {
            assert!(
                matches!(refused_tag(tag), VersionError::TagNotUrlSafe(_)),
                "{tag}"
            );
        }
    }

    #[test]
    fn empty_and_overlong_tags_are_refused() {
        assert_eq!(refused_tag(""), VersionError::TagEmpty);
        assert!(matches!(
            refused_tag(&"a".repeat(129)),
            VersionError::TagTooLong(_)
        ));
        DistTag::parse(&"a".repeat(128)).unwrap();
    }

    #[test]
    fn a_tag_displays_and_serializes_as_its_string() {
        let tag: DistTag = "beta".parse().unwrap();
        assert_eq!(tag.to_string(), "beta");
        assert_eq!(serde_json::to_string(&tag).unwrap(), "\"beta\"");
    }
}
